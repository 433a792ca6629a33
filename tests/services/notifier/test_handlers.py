"""The notifier: one inbox entry per recipient and event, only what the recipient may see."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from services.notifier.handlers import handle_match_event
from shared.events import Envelope, MatchData
from shared.models import Notification, utcnow
from shared.webhooks.endpoints import new_endpoint
from shared.webhooks.models import EndpointState, MessageStatus, WebhookMessage, message_id_for


def proposal() -> Envelope:
    return Envelope.wrap(
        "match.proposed",
        "pitch-1",
        MatchData(
            match_id="m1",
            pair_kind="pitch-mandate",
            subject_kind="pitch",
            subject_id="pitch-1",
            subject_owner="enterprise",
            counterpart_kind="mandate",
            counterpart_id="mandate-1",
            counterpart_owner="fund",
            counterpart_title="龙江新材料基金",
            score=0.7,
            components={},
            reasons=[],
            explanation="与「龙江新材料基金」匹配度 0.70。",
        ),
    )


def test_a_proposal_lands_once_in_the_subject_owners_inbox(any_engine):
    event = proposal()
    assert handle_match_event(event, engine=any_engine) is True
    assert handle_match_event(event, engine=any_engine) is False
    with Session(any_engine) as session:
        [row] = session.exec(select(Notification)).all()
    assert row.recipient == "enterprise" and row.event_id == event.id
    assert row.payload["counterpart_title"] == "龙江新材料基金"
    assert "counterpart_owner" not in row.payload


# --- webhooks ----------------------------------------------------------------------------
def subscribe(engine, owner: str, *, event_types=("match.proposed",), state=EndpointState.ACTIVE) -> str:
    endpoint, _ = new_endpoint(
        owner=owner,
        url="https://hooks.example.com/salon",
        event_types=list(event_types),
        description="",
        pepper="handler-test-pepper-0123456789",
        now=utcnow(),
    )
    endpoint.state = state
    with Session(engine) as session:
        session.add(endpoint)
        session.commit()
        return endpoint.id


def test_a_proposal_is_queued_once_for_each_subscribed_endpoint_of_its_recipient(any_engine):
    wanted = subscribe(any_engine, "enterprise")
    paused = subscribe(any_engine, "enterprise", state=EndpointState.PAUSED)
    subscribe(any_engine, "enterprise", event_types=("session.invited",))
    subscribe(any_engine, "enterprise", state=EndpointState.DISABLED)
    subscribe(any_engine, "fund")  # the counterpart's owner gets its own event, not this one
    woken: list[bool] = []
    event = proposal()

    assert handle_match_event(event, engine=any_engine, wake=lambda: woken.append(True)) is True
    assert handle_match_event(event, engine=any_engine, wake=lambda: woken.append(True)) is False

    with Session(any_engine) as session:
        messages = session.exec(select(WebhookMessage)).all()
    assert {m.endpoint_id for m in messages} == {wanted, paused}
    assert {m.id for m in messages} == {message_id_for(event.id, wanted), message_id_for(event.id, paused)}
    assert all(m.status == MessageStatus.PENDING and m.event_id == event.id for m in messages)
    body = json.loads(messages[0].body)
    assert body["type"] == "match.proposed"
    assert body["data"]["counterpart"] == {"kind": "mandate", "id": "mandate-1", "title": "龙江新材料基金"}
    assert "fund" not in messages[0].body, "the counterpart's owner is not the receiver's business"
    assert woken == [True]


def test_inbox_row_and_webhook_messages_commit_together(sqlite_engine, monkeypatch):
    subscribe(sqlite_engine, "enterprise")

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("services.notifier.handlers.queue_for_owner", broken)
    with pytest.raises(RuntimeError):
        handle_match_event(proposal(), engine=sqlite_engine)
    with Session(sqlite_engine) as session:
        assert session.exec(select(Notification)).all() == []
        assert session.exec(select(WebhookMessage)).all() == []
