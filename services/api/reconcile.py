"""Re-drives what a broker lost (e.g. the embedded broker restarted and dropped the events in
flight): the database is the source of truth, topics are only transport.

* entities stuck before `matched` get a fresh submission event (`redrive_stuck`);
* `match.proposed` events that the notifier never saw are published again under their own
  ids (`redrive_unnotified`), so their inbox entries and webhooks are not lost either.

It also deletes outbox rows published long ago (`prune_outbox`): every submission leaves ~40
of them, and once published and past the re-drive window nothing reads them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import and_, delete, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.api.intake import submission_event
from shared import metrics
from shared.events import ENTITY_KINDS, Topic
from shared.models import (
    ENTITY_TABLES,
    Entity,
    EntityStatus,
    OutboxMessage,
    ProcessedEvent,
    ServiceStatus,
    utcnow,
)
from shared.outbox import enqueue
from shared.settings import Settings

log = logging.getLogger(__name__)
PIPELINE_CONSUMERS = ("embedder", "matcher")
HEARTBEAT_STALE_S = 15.0  # heartbeats come every 2 s
LAG_STALE_S = 20.0  # consumers measure their lag every 5 s, between batches
BACKLOG_PATIENCE = 10
NOTIFIER = "notifier"  # services.notifier.handlers.CONSUMER: its inbox rows are what it saw
NOTIFY_WINDOW = timedelta(hours=1)  # events older than this are not published again
NOTIFY_MAX_ATTEMPTS = 5  # outbox attempts (failed publishes and re-drives) after which an event is left


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
        fresh = _running(reports, consumer, now)
        measured = [row for row in fresh if now.timestamp() - row.detail.get("lag_measured_at", 0) <= LAG_STALE_S]
        owning = [row for row in measured if row.detail.get("partitions") != []]
        total += sum(int(row.detail["lag"]) for row in measured) + (0 if owning else 1)
    return total


def _running(rows: Sequence[ServiceStatus], consumer: str, now: datetime) -> list[ServiceStatus]:
    """The rows of `consumer`'s processes (replicas are `name-N`) that are ready and sent a
    heartbeat within HEARTBEAT_STALE_S."""
    return [
        row
        for row in rows
        if (row.name == consumer or row.name.startswith(f"{consumer}-"))
        and row.state == "ready"
        and (now - _aware(row.updated_at)).total_seconds() <= HEARTBEAT_STALE_S
    ]


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


def caught_up_at(engine: Engine, consumer: str) -> datetime | None:
    """When every running process of `consumer` last measured a lag of 0 (the earliest of
    their measurements); None if one is behind, has no recent measurement, none owns a
    partition, or none is running (no heartbeat within HEARTBEAT_STALE_S).

    A lag of 0 measured at T means every record published before T had been fetched; one
    that a dead process reported stays at its old T, so nothing published since counts."""
    now = utcnow()
    with Session(engine) as session:
        running = _running(session.exec(select(ServiceStatus)).all(), consumer, now)
    if not running or not any(row.detail.get("partitions") for row in running):
        return None
    measured: list[float] = []
    for row in running:
        at = row.detail.get("lag_measured_at", 0)
        if row.detail.get("lag") != 0 or now.timestamp() - at > LAG_STALE_S:
            return None
        measured.append(at)
    return datetime.fromtimestamp(min(measured), UTC)


def redrive_unnotified(engine: Engine, settings: Settings, *, limit: int = 1000) -> int:
    """Publish again the `match.proposed` events the notifier has not handled although they
    left the outbox more than `reconcile_after_s` ago. Returns how many.

    The matcher commits its proposals and their events together, so a proposal is never
    lost; but a broker that drops an event after acknowledging it (the embedded broker
    after a restart) would leave the participant without the inbox entry and the webhook.
    The notifier records every event it handles (its inbox, keyed by event id), so the gap
    is visible in the database. The event goes out again under its own id: a notifier that
    did see it after all skips it. Only events published `reconcile_after_s` before the
    running notifiers last reported having fetched everything (`caught_up_at`: else the event
    may just be queued, or the notifier down), created within NOTIFY_WINDOW, and at
    most NOTIFY_MAX_ATTEMPTS times per event: a poison event in the dead-letter topic is
    not sent round for ever.
    """
    fetched_by = caught_up_at(engine, NOTIFIER)
    if fetched_by is None:
        return 0
    now = utcnow()
    # Fetched by then and given reconcile_after_s to be handled: not handled means lost.
    cutoff = min(fetched_by, now) - timedelta(seconds=settings.reconcile_after_s)
    # Correlated on the inbox's primary key (consumer, event id): no scan of everything seen.
    seen = (
        select(ProcessedEvent.event_id)
        .where(ProcessedEvent.consumer == NOTIFIER, ProcessedEvent.event_id == OutboxMessage.event_id)
        .exists()
    )
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(
                # published_at ≥ created_at: the first bound lets its index narrow the search.
                col(OutboxMessage.published_at) >= now - NOTIFY_WINDOW,
                col(OutboxMessage.published_at) < cutoff,
                col(OutboxMessage.created_at) >= now - NOTIFY_WINDOW,
                OutboxMessage.topic == settings.topic(Topic.MATCHES),
                col(OutboxMessage.attempts) < NOTIFY_MAX_ATTEMPTS,
                col(OutboxMessage.payload).contains('"type":"match.proposed"'),
                ~seen,
            )
            .order_by(col(OutboxMessage.id))
            .limit(limit)
        ).all()
        for row in rows:
            row.published_at = None  # the relays publish it again
            row.attempts += 1
            row.last_error = "re-driven: the notifier had not handled it"
            session.add(row)
        session.commit()
    if rows:
        metrics.NOTIFICATIONS_REDRIVEN.inc(len(rows))
        log.warning("re-published %d match events the notifier had not handled", len(rows))
    return len(rows)


def prune_outbox(engine: Engine, settings: Settings, *, limit: int = 5000) -> int:
    """Delete up to `limit` rows published more than `outbox_retention_hours` ago, oldest
    first; unpublished rows are never deleted. Returns how many (short transactions: the
    next period takes the next batch)."""
    cutoff = utcnow() - timedelta(hours=settings.outbox_retention_hours)
    with Session(engine) as session:
        ids = session.exec(
            select(OutboxMessage.id)
            .where(col(OutboxMessage.published_at) < cutoff)
            .order_by(col(OutboxMessage.id))
            .limit(limit)
        ).all()
        if not ids:
            return 0
        session.execute(delete(OutboxMessage).where(col(OutboxMessage.id).in_(ids)))
        session.commit()
    metrics.OUTBOX_PRUNED.inc(len(ids))
    log.info("deleted %d outbox rows published before %s", len(ids), cutoff.isoformat())
    return len(ids)


def run_reconciler(engine: Engine, settings: Settings, stop: threading.Event) -> None:
    period = max(settings.reconcile_after_s / 4, 1.0)
    while not stop.wait(period):
        for step in (redrive_stuck, redrive_unnotified, prune_outbox):
            try:
                step(engine, settings)
            except Exception:  # retried next period; the API must keep serving
                log.exception("reconciliation step %s failed", step.__name__)
