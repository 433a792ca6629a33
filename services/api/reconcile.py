"""Re-drives entities stuck before `matched` (e.g. the embedded broker restarted and lost
the events in flight): the database is the source of truth, topics are only transport."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import and_, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.api.intake import submission_event
from shared import metrics
from shared.events import ENTITY_KINDS, Topic
from shared.models import ENTITY_TABLES, Entity, EntityStatus, OutboxMessage, ServiceStatus, utcnow
from shared.outbox import enqueue
from shared.settings import Settings

log = logging.getLogger(__name__)
PIPELINE_CONSUMERS = ("embedder", "matcher")
HEARTBEAT_STALE_S = 15.0  # heartbeats come every 2 s
LAG_STALE_S = 20.0  # consumers measure their lag every 5 s, between batches
BACKLOG_PATIENCE = 10


def pipeline_backlog(engine: Engine, *, consumers: tuple[str, ...] = PIPELINE_CONSUMERS) -> int | None:
    """Events the pipeline's consumers have yet to commit, from their heartbeats (each process
    reports the lag of the partitions it owns, with when it measured it; replicas are `name-N`).

    None when no process reports a lag at all (then only the clock decides). A consumer that
    has no recent measurement (broker away, group re-forming after a restart) or whose
    processes own no partition counts as a backlog of at least 1: what it is about to consume
    is not known, so nothing can be called lost yet.
    """
    now = utcnow()
    total = 0
    with Session(engine) as session:
        rows = session.exec(select(ServiceStatus)).all()
    reports = [row for row in rows if "lag" in row.detail and row.name.split("-", 1)[0] in consumers]
    if not reports:
        return None
    for consumer in consumers:
        fresh = [
            row
            for row in reports
            if (row.name == consumer or row.name.startswith(f"{consumer}-"))
            and row.state == "ready"
            and (now - _aware(row.updated_at)).total_seconds() <= HEARTBEAT_STALE_S
        ]
        measured = [row for row in fresh if now.timestamp() - row.detail.get("lag_measured_at", 0) <= LAG_STALE_S]
        owning = [row for row in measured if row.detail.get("partitions") != []]
        total += sum(int(row.detail["lag"]) for row in measured) + (0 if owning else 1)
    return total


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def redrive_stuck(engine: Engine, settings: Settings, *, limit: int = 500) -> int:
    """Enqueue a fresh submission event for each entity stuck longer than the threshold
    whose events have all left the outbox. Returns how many were re-driven.

    The clock starts when the entity's last event left the outbox, not when it was
    accepted: after a broker outage the backlog is published all at once, and an entity
    still queued behind it in the topic is slow, not lost (re-driving it would only
    double the work while the pipeline catches up). For the same reason, while the embedder
    or the matcher reports a backlog (or cannot tell), only entities stuck BACKLOG_PATIENCE
    times longer are re-driven: a slow pipeline fed re-drives only gets slower, but a
    pipeline that never reports again must not keep anything stuck forever.
    """
    backlog = pipeline_backlog(engine)
    patience = settings.reconcile_after_s * (BACKLOG_PATIENCE if backlog else 1)
    if backlog:
        log.info("the pipeline has %d events to consume: re-driving only what is stuck > %d s", backlog, patience)
    cutoff = utcnow() - timedelta(seconds=patience)
    # Keys with an event still in the outbox, or whose submission left it within the period.
    in_flight = select(OutboxMessage.key).where(
        or_(
            col(OutboxMessage.published_at).is_(None),
            and_(
                col(OutboxMessage.topic) == settings.topic(Topic.SUBMISSIONS),
                col(OutboxMessage.published_at) >= cutoff,
            ),
        )
    )
    redriven = 0
    with Session(engine) as session:
        for kind in ENTITY_KINDS:
            table = ENTITY_TABLES[kind]
            stuck = cast(
                list[Entity],
                session.exec(
                    select(table)
                    .where(
                        col(table.status) != EntityStatus.MATCHED,
                        col(table.updated_at) < cutoff,
                        col(table.id).not_in(in_flight),  # in SQL, so in-flight ones never crowd out the limit
                    )
                    .order_by(col(table.updated_at))
                    .limit(limit)
                ).all(),
            )
            for entity in stuck:
                enqueue(session, settings.topic(Topic.SUBMISSIONS), submission_event(entity, "submitted"))
                entity.updated_at = utcnow()  # wait another full period before the next attempt
                session.add(entity)
                redriven += 1
        session.commit()
    metrics.RECONCILER_REDRIVEN.inc(redriven)
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
