"""The notifier: one inbox entry per recipient and event, only what the recipient may see."""

from __future__ import annotations

from sqlmodel import Session, select

from services.notifier.handlers import handle_match_event
from shared.events import Envelope, MatchData
from shared.models import Notification


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
