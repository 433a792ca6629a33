"""Match events → each participant's notification inbox (webhook delivery builds on this)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from shared.db import claim_event, transaction
from shared.events import Envelope, MatchData
from shared.models import Notification

CONSUMER = "notifier"


def handle_match_event(envelope: Envelope, *, engine: Engine) -> bool:
    """Store the proposal in the subject owner's inbox once; False for a duplicate."""
    data: MatchData = envelope.payload()
    with transaction(engine) as session:
        if not claim_event(session, CONSUMER, envelope.id):
            return False
        session.add(
            Notification(
                recipient=data.subject_owner,
                event_id=envelope.id,
                type=envelope.type,
                subject=data.subject_id,
                # Only what the recipient may see: ids, the counterpart's title, score, reasons.
                payload={
                    "match_id": data.match_id,
                    "pair_kind": data.pair_kind,
                    "subject_id": data.subject_id,
                    "counterpart_kind": data.counterpart_kind,
                    "counterpart_id": data.counterpart_id,
                    "counterpart_title": data.counterpart_title,
                    "score": data.score,
                    "explanation": data.explanation,
                },
            )
        )
    return True
