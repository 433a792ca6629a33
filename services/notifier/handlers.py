"""Match events → the participant's notification inbox and their webhook endpoints."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from shared.db import claim_event, transaction
from shared.events import Envelope, MatchData
from shared.models import Notification, utcnow
from shared.webhooks.payloads import MatchProposedData, render_body
from shared.webhooks.queue import queue_for_owner

CONSUMER = "notifier"


def handle_match_event(envelope: Envelope, *, engine: Engine, wake: Callable[[], None] | None = None) -> bool:
    """Store the proposal in the subject owner's inbox and queue it for each of their
    subscribed webhook endpoints, all in one transaction, once; False for a duplicate.

    `wake` tells the in-process delivery worker that messages are waiting.
    """
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
        queued = queue_for_owner(
            session,
            owner=data.subject_owner,
            event_id=envelope.id,
            event_type=envelope.type,
            body=render_body(envelope.type, envelope.occurred_at, MatchProposedData.from_event(data)),
            occurred_at=envelope.occurred_at,
            now=utcnow(),
        )
    if queued and wake is not None:
        wake()
    return True
