"""Webhook bodies: `{"type", "timestamp", "data"}` as Standard Webhooks recommends.

`data` is a projection of the bus event made for its receiver: ids, titles, scores,
reasons and links only. Never the counterpart's owner, contact or pitch details (summary,
financials): a participant sees another party only as the matcher describes it to them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from shared.events import MatchData
from shared.webhooks.catalogue import TEST_EVENT


class EntityRef(BaseModel):
    kind: str
    id: str


class CounterpartRef(EntityRef):
    title: str


class ReasonView(BaseModel):
    rule: str
    passed: bool
    detail: str
    detail_zh: str = ""


class MatchProposedData(BaseModel):
    match_id: str
    pair_kind: str
    subject: EntityRef
    counterpart: CounterpartRef
    score: float
    components: dict[str, float]
    reasons: list[ReasonView]
    explanation: str
    links: dict[str, str]

    @classmethod
    def from_event(cls, data: MatchData) -> MatchProposedData:
        return cls(
            match_id=data.match_id,
            pair_kind=data.pair_kind,
            subject=EntityRef(kind=data.subject_kind, id=data.subject_id),
            counterpart=CounterpartRef(
                kind=data.counterpart_kind, id=data.counterpart_id, title=data.counterpart_title
            ),
            score=data.score,
            components=data.components,
            # Field by field: a new field on the bus event is not forwarded until added here.
            reasons=[ReasonView.model_validate(reason.model_dump()) for reason in data.reasons],
            explanation=data.explanation,
            links={"matches": f"/v1/matches?subject={data.subject_id}"},
        )


class WebhookTestData(BaseModel):
    endpoint_id: str
    message: str = "This is a test event from salon. / 这是一条来自 salon 的测试事件。"


class WebhookBody(BaseModel):
    type: str
    timestamp: datetime
    data: MatchProposedData | WebhookTestData


def render_body(event_type: str, occurred_at: datetime, data: MatchProposedData | WebhookTestData) -> str:
    """The exact JSON sent (stored once, so every retry signs and sends the same bytes)."""
    return WebhookBody(type=event_type, timestamp=occurred_at, data=data).model_dump_json()


def webhook_test_body(endpoint_id: str, occurred_at: datetime) -> str:
    return render_body(TEST_EVENT, occurred_at, WebhookTestData(endpoint_id=endpoint_id))
