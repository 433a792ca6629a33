"""Re-drives entities stuck before `matched` (e.g. the embedded broker restarted and lost
the events in flight): the database is the source of truth, topics are only transport."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import cast

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.api.intake import submission_event
from shared.events import ENTITY_KINDS, Topic
from shared.models import ENTITY_TABLES, Entity, EntityStatus, OutboxMessage, utcnow
from shared.outbox import enqueue
from shared.settings import Settings

log = logging.getLogger(__name__)


def redrive_stuck(engine: Engine, settings: Settings, *, limit: int = 500) -> int:
    """Enqueue a fresh submission event for each entity stuck longer than the threshold
    whose events have all left the outbox. Returns how many were re-driven."""
    cutoff = utcnow() - timedelta(seconds=settings.reconcile_after_s)
    redriven = 0
    with Session(engine) as session:
        pending = set(session.exec(select(OutboxMessage.key).where(col(OutboxMessage.published_at).is_(None))))
        for kind in ENTITY_KINDS:
            table = ENTITY_TABLES[kind]
            stuck = cast(
                list[Entity],
                session.exec(
                    select(table)
                    .where(col(table.status) != EntityStatus.MATCHED, col(table.updated_at) < cutoff)
                    .limit(limit)
                ).all(),
            )
            for entity in stuck:
                if entity.id in pending:
                    continue
                enqueue(session, settings.topic(Topic.SUBMISSIONS), submission_event(entity, "submitted"))
                entity.updated_at = utcnow()  # wait another full period before the next attempt
                session.add(entity)
                redriven += 1
        session.commit()
    if redriven:
        log.warning("re-drove %d entities stuck before 'matched'", redriven)
    return redriven


def run_reconciler(engine: Engine, settings: Settings, stop: threading.Event) -> None:
    period = max(settings.reconcile_after_s / 4, 1.0)
    while not stop.wait(period):
        try:
            redrive_stuck(engine, settings)
        except Exception:  # retried next period; the API must keep serving
            log.exception("reconciliation failed")
