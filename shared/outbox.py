"""Transactional outbox: events are rows written with their cause, published by a relay.

The relay claims rows with a lease (so several relays may run), publishes them with
`acks=all`, then marks them sent. A crash between publish and mark re-publishes the same
event id later: consumers dedupe by id, so delivery is at-least-once and effect-once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import and_, event, func, insert, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared import metrics
from shared.bus import Publisher
from shared.errors import BusError
from shared.events import Envelope
from shared.models import OutboxMessage, utcnow

log = logging.getLogger(__name__)


def enqueue(session: Session, topic: str, envelope: Envelope) -> None:
    """Add an event to the outbox inside the caller's transaction.

    When that transaction commits, the relays of this process wake at once instead of
    at their next poll: the poll interval would otherwise be added to every event's
    latency. (Relays in other processes still find the row by polling.)
    """
    # created_at given: pydantic then skips the default factory, slow per row (signature check).
    session.add(
        OutboxMessage(
            event_id=envelope.id,
            topic=topic,
            key=envelope.subject,
            payload=envelope.model_dump_json(),
            created_at=utcnow(),
        )
    )
    _wake_relays_on_commit(session)


def enqueue_many(session: Session, events: Sequence[tuple[str, Envelope]]) -> None:
    """`enqueue` for many (topic, event) pairs in one multi-row INSERT, in their order: a
    matcher writes ~40 per entity, and building an ORM object for each was a tenth of its
    writing time."""
    if not events:
        return
    now = utcnow()
    rows = [
        {
            "event_id": envelope.id,
            "topic": topic,
            "key": envelope.subject,
            "payload": envelope.model_dump_json(),
            "created_at": now,
            "attempts": 0,
        }
        for topic, envelope in events
    ]
    session.execute(insert(OutboxMessage), rows)
    _wake_relays_on_commit(session)


def _wake_relays_on_commit(session: Session) -> None:
    session.info[_ROWS_PENDING] = True
    if not session.info.get(_HOOKED):  # once per session: it may commit many transactions
        session.info[_HOOKED] = True
        event.listen(session, "after_commit", _wake_after_commit)
        event.listen(session, "after_soft_rollback", _forget_after_rollback)


_HOOKED = "salon.outbox.hooked"
_ROWS_PENDING = "salon.outbox.rows_pending"
_relay_wakeups: weakref.WeakSet[threading.Event] = weakref.WeakSet()


def _wake_after_commit(session: Session) -> None:
    if session.info.pop(_ROWS_PENDING, False):
        wake_relays()


def _forget_after_rollback(session: Session, _previous_transaction: object) -> None:
    session.info.pop(_ROWS_PENDING, None)  # the rows went with the transaction


def wake_relays() -> None:
    """Make every relay of this process look for new rows now."""
    for wakeup in list(_relay_wakeups):
        wakeup.set()


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
        self._wakeup = threading.Event()
        _relay_wakeups.add(self._wakeup)

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
                metrics.OUTBOX_PUBLISH_FAILURES.inc()
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
            metrics.OUTBOX_PUBLISHED.inc(len(rows))
            self.last_error = None
            return len(rows)

    def run(self, stop: threading.Event) -> None:
        metrics.watch_outbox_backlog(lambda: pending_count(self._engine))  # read when scraped
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
            self._pause(stop, backoff, wakeable=backoff == self._poll_interval_s)

    def _pause(self, stop: threading.Event, seconds: float, *, wakeable: bool) -> None:
        """Wait for the next poll; a commit with outbox rows in this process ends the wait
        early, unless the relay is backing off after a failure."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if wakeable:
                if self._wakeup.wait(min(left, 0.25)):
                    self._wakeup.clear()
                    return
            else:
                stop.wait(min(left, 0.25))

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name=self.name, daemon=True)
        thread.start()
        return thread


def pending_count(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(
            select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.published_at).is_(None))
        ).one()
