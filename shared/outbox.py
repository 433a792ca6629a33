"""Transactional outbox: events are rows written with their cause, published by a relay.

The relay claims rows with a lease (so several relays may run), publishes them with
`acks=all`, then marks them sent. A crash between publish and mark re-publishes the same
event id later: consumers dedupe by id, so delivery is at-least-once and effect-once.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.bus import Publisher
from shared.errors import BusError
from shared.events import Envelope
from shared.models import OutboxMessage, utcnow

log = logging.getLogger(__name__)


def enqueue(session: Session, topic: str, envelope: Envelope) -> None:
    """Add an event to the outbox inside the caller's transaction."""
    session.add(
        OutboxMessage(event_id=envelope.id, topic=topic, key=envelope.subject, payload=envelope.model_dump_json())
    )


class OutboxRelay:
    def __init__(
        self,
        engine: Engine,
        publisher: Publisher,
        *,
        batch_size: int = 500,
        lease_s: float = 30.0,
        poll_interval_s: float = 0.2,
        name: str | None = None,
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._batch_size = batch_size
        self._lease = timedelta(seconds=lease_s)
        self._poll_interval_s = poll_interval_s
        self.name = name or f"relay-{uuid.uuid4().hex[:8]}"
        self.published = 0
        self.last_error: str | None = None

    def relay_once(self) -> int:
        """Claim, publish and mark one batch; returns how many events were published."""
        now = utcnow()
        with Session(self._engine) as session:
            candidates = (
                select(OutboxMessage.id)
                .where(
                    col(OutboxMessage.published_at).is_(None),
                    or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now),
                )
                .order_by(col(OutboxMessage.id))
                .limit(self._batch_size)
            )
            ids = list(session.exec(candidates))
            if not ids:
                return 0
            # Claim only rows still unclaimed (another relay may have raced us).
            session.execute(
                update(OutboxMessage)
                .where(
                    and_(
                        col(OutboxMessage.id).in_(ids),
                        col(OutboxMessage.published_at).is_(None),
                        or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now),
                    )
                )
                .values(claimed_by=self.name, claimed_until=now + self._lease)
            )
            session.commit()
            rows = list(
                session.exec(
                    select(OutboxMessage)
                    .where(col(OutboxMessage.id).in_(ids), OutboxMessage.claimed_by == self.name)
                    .where(col(OutboxMessage.published_at).is_(None))
                    .order_by(col(OutboxMessage.id))
                )
            )
            if not rows:
                return 0
            try:
                self._publisher.publish_raw([(row.topic, row.key.encode(), row.payload.encode(), []) for row in rows])
            except BusError as exc:
                self.last_error = str(exc)
                for row in rows:
                    row.attempts += 1
                    row.last_error = str(exc)[:500]
                    row.claimed_until = None
                    session.add(row)
                session.commit()
                raise
            sent_at = utcnow()
            session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_([row.id for row in rows]))
                .values(published_at=sent_at, claimed_until=None)
            )
            session.commit()
            self.published += len(rows)
            self.last_error = None
            return len(rows)

    def run(self, stop: threading.Event) -> None:
        backoff = self._poll_interval_s
        while not stop.is_set():
            try:
                sent = self.relay_once()
                backoff = self._poll_interval_s
                if sent:
                    continue
            except BusError as exc:
                log.warning("outbox relay %s: broker unavailable, will retry: %s", self.name, exc)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("outbox relay %s failed; retrying", self.name)
                backoff = min(backoff * 2, 5.0)
            stop.wait(backoff)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name=self.name, daemon=True)
        thread.start()
        return thread


def pending_count(engine: Engine) -> int:
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage.id).where(col(OutboxMessage.published_at).is_(None)))
        return len(list(rows))
