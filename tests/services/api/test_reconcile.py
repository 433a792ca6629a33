"""Entities stuck before `matched` are re-driven from the database, once per period."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from sqlmodel import Session, col, select

from services.api.intake import create_entity
from services.api.reconcile import pipeline_backlog, prune_outbox, redrive_stuck, redrive_unnotified
from shared.events import Topic
from shared.models import CREATE_MODELS, EntityStatus, OutboxMessage, Pitch, ProcessedEvent, ServiceStatus, utcnow
from shared.settings import Settings
from tests.payloads import PITCH


def make_pitch(engine, *, status: str, age_s: int, published: bool, published_age_s: int | None = None) -> str:
    settings = Settings()
    with Session(engine, expire_on_commit=False) as session:
        pitch = create_entity(session, settings, "pitch", CREATE_MODELS["pitch"].model_validate(PITCH), owner="o")
        pitch.status = status
        pitch.updated_at = utcnow() - timedelta(seconds=age_s)
        session.add(pitch)
        if published:
            for row in session.exec(select(OutboxMessage).where(OutboxMessage.key == pitch.id)):
                row.published_at = utcnow() - timedelta(seconds=age_s if published_age_s is None else published_age_s)
                session.add(row)
        session.commit()
        return pitch.id


def events_for(engine, entity_id: str) -> int:
    with Session(engine) as session:
        return len(session.exec(select(OutboxMessage).where(OutboxMessage.key == entity_id)).all())


def test_only_old_unmatched_entities_without_pending_events_are_redriven(any_engine):
    settings = Settings(reconcile_after_s=60)
    lost = make_pitch(any_engine, status=EntityStatus.ACCEPTED, age_s=600, published=True)
    half_way = make_pitch(any_engine, status=EntityStatus.EMBEDDED, age_s=600, published=True)
    fresh = make_pitch(any_engine, status=EntityStatus.ACCEPTED, age_s=5, published=True)
    queued = make_pitch(any_engine, status=EntityStatus.ACCEPTED, age_s=600, published=False)
    done = make_pitch(any_engine, status=EntityStatus.MATCHED, age_s=600, published=True)
    # Accepted long ago, but its event only just left the outbox (the broker was away): still in the topic.
    backlog = make_pitch(any_engine, status=EntityStatus.ACCEPTED, age_s=600, published=True, published_age_s=5)

    assert redrive_stuck(any_engine, settings) == 2
    assert events_for(any_engine, lost) == 2 and events_for(any_engine, half_way) == 2
    assert [events_for(any_engine, i) for i in (fresh, queued, done, backlog)] == [1, 1, 1, 1]
    assert redrive_stuck(any_engine, settings) == 0, "not again before another period passed"
    with Session(any_engine) as session:
        assert session.exec(select(Pitch).where(col(Pitch.id) == lost)).one().status == EntityStatus.ACCEPTED


def report(
    engine, name: str, *, lag: int, age_s: float = 0, measured_age_s: float = 1, partitions: list[str] | None = None
) -> None:
    """A heartbeat row as a consumer process writes it."""
    with Session(engine) as session:
        row = session.get(ServiceStatus, name) or ServiceStatus(name=name, state="ready")
        row.state = "ready"
        row.detail = {
            "lag": lag,
            "lag_measured_at": int(utcnow().timestamp() - measured_age_s),
            "partitions": ["t:0"] if partitions is None else partitions,
        }
        row.updated_at = utcnow() - timedelta(seconds=age_s)
        session.add(row)
        session.commit()


def test_while_the_pipeline_reports_a_backlog_only_the_long_stuck_are_redriven(any_engine):
    settings = Settings(reconcile_after_s=60)
    lost = make_pitch(any_engine, status=EntityStatus.ACCEPTED, age_s=300, published=True)
    report(any_engine, "embedder", lag=0)
    report(any_engine, "matcher", lag=250)  # slow, not lost: the entity may be among those 250
    assert pipeline_backlog(any_engine) == 250
    assert redrive_stuck(any_engine, settings) == 0 and events_for(any_engine, lost) == 1

    report(any_engine, "matcher", lag=0, partitions=[])  # re-joining its group: it owns nothing yet
    assert pipeline_backlog(any_engine) == 1
    report(any_engine, "matcher", lag=0, measured_age_s=120)  # the broker is away: no recent measurement
    assert pipeline_backlog(any_engine) == 1
    assert redrive_stuck(any_engine, settings) == 0

    report(any_engine, "matcher", lag=0)  # caught up and still not matched: lost
    assert pipeline_backlog(any_engine) == 0
    assert redrive_stuck(any_engine, settings) == 1 and events_for(any_engine, lost) == 2

    # However busy the pipeline says it is, nothing stays stuck for ever (here: > 10 periods).
    report(any_engine, "matcher", lag=250)
    forgotten = make_pitch(any_engine, status=EntityStatus.ACCEPTED, age_s=900, published=True)
    assert redrive_stuck(any_engine, settings) == 1 and events_for(any_engine, forgotten) == 2


def test_when_no_consumer_reports_its_lag_the_clock_alone_decides(any_engine):
    with Session(any_engine) as session:  # consumers that do not report a lag (older versions)
        session.add(ServiceStatus(name="embedder", state="ready", detail={"handled": 3}))
        session.add(ServiceStatus(name="matcher", state="ready", detail={"handled": 3}))
        session.commit()
    assert pipeline_backlog(any_engine) is None
    make_pitch(any_engine, status=EntityStatus.ACCEPTED, age_s=600, published=True)
    assert redrive_stuck(any_engine, Settings(reconcile_after_s=60)) == 1


# --- match events the notifier never saw --------------------------------------------------------
def match_event(engine, *, age_s: float, published_age_s: float | None, attempts: int = 0) -> str:
    """A `match.proposed` outbox row, created `age_s` ago and published `published_age_s` ago."""
    event_id = str(uuid.uuid4())
    payload = json.dumps({"id": event_id, "type": "match.proposed", "subject": "p", "data": {}}, separators=(",", ":"))
    with Session(engine) as session:
        session.add(
            OutboxMessage(
                event_id=event_id,
                topic=Settings().topic(Topic.MATCHES),
                key="p",
                payload=payload,
                created_at=utcnow() - timedelta(seconds=age_s),
                published_at=None if published_age_s is None else utcnow() - timedelta(seconds=published_age_s),
                attempts=attempts,
            )
        )
        session.commit()
    return event_id


def notified(engine, event_id: str) -> None:
    with Session(engine) as session:
        session.add(ProcessedEvent(consumer="notifier", event_id=event_id))
        session.commit()


def waiting_to_publish(engine, event_id: str) -> bool:
    with Session(engine) as session:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.event_id == event_id)).one()
        return row.published_at is None


def test_match_events_a_running_notifier_never_handled_are_published_again(any_engine):
    settings = Settings(reconcile_after_s=60)
    report(any_engine, "notifier", lag=0)
    swallowed = match_event(any_engine, age_s=300, published_age_s=300)
    handled = match_event(any_engine, age_s=300, published_age_s=300)
    notified(any_engine, handled)
    in_flight = match_event(any_engine, age_s=10, published_age_s=10)  # may still be on its way
    too_old = match_event(any_engine, age_s=2 * 3600, published_age_s=2 * 3600)
    given_up = match_event(any_engine, age_s=300, published_age_s=300, attempts=5)  # e.g. a dead letter

    assert redrive_unnotified(any_engine, settings) == 1
    assert waiting_to_publish(any_engine, swallowed)
    assert not any(waiting_to_publish(any_engine, i) for i in (handled, in_flight, too_old, given_up))
    with Session(any_engine) as session:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.event_id == swallowed)).one()
        assert row.attempts == 1 and "notifier" in (row.last_error or "")
    assert redrive_unnotified(any_engine, settings) == 0, "queued again already: not twice"


def test_match_events_are_not_published_again_without_a_notifier_or_while_it_is_behind(any_engine):
    settings = Settings(reconcile_after_s=60)
    swallowed = match_event(any_engine, age_s=300, published_age_s=300)
    assert redrive_unnotified(any_engine, settings) == 0, "no notifier runs: nobody is waiting for it"

    report(any_engine, "notifier-2", lag=0, age_s=60)  # its heartbeat stopped a minute ago
    assert redrive_unnotified(any_engine, settings) == 0
    report(any_engine, "notifier-2", lag=40)  # running, 40 events behind: the event may be among them
    assert redrive_unnotified(any_engine, settings) == 0
    report(any_engine, "notifier-2", lag=0)
    assert redrive_unnotified(any_engine, settings) == 1 and waiting_to_publish(any_engine, swallowed)


def test_only_events_published_before_the_notifier_last_caught_up_count_as_missed(any_engine):
    """A killed notifier's heartbeat row still looks fresh for a few seconds; the events it did
    not get to are queued, not lost, and must not be sent round again."""
    settings = Settings(reconcile_after_s=60)
    report(any_engine, "notifier", lag=0, measured_age_s=15)  # its last measurement, just before it died
    queued = match_event(any_engine, age_s=70, published_age_s=70)  # after that measurement − 60 s
    missed = match_event(any_engine, age_s=80, published_age_s=80)  # fetched by then, yet not handled
    assert redrive_unnotified(any_engine, settings) == 1
    assert waiting_to_publish(any_engine, missed) and not waiting_to_publish(any_engine, queued)


# --- outbox retention ---------------------------------------------------------------------------
def outbox_ids(engine) -> set[str]:
    with Session(engine) as session:
        return set(session.exec(select(OutboxMessage.event_id)).all())


def test_only_rows_published_before_the_retention_are_deleted_oldest_first(any_engine):
    day = 24 * 3600
    old = [match_event(any_engine, age_s=9 * day, published_age_s=(8 * day) - n) for n in range(3)]
    recent = match_event(any_engine, age_s=2 * day, published_age_s=2 * day)
    never_published = match_event(any_engine, age_s=30 * day, published_age_s=None)
    settings = Settings(outbox_retention_hours=7 * 24)
    assert prune_outbox(any_engine, settings, limit=2) == 2  # a batch at a time
    assert outbox_ids(any_engine) == {old[2], recent, never_published}
    assert prune_outbox(any_engine, settings) == 1
    assert prune_outbox(any_engine, settings) == 0
    assert outbox_ids(any_engine) == {recent, never_published}
    assert prune_outbox(any_engine, Settings(outbox_retention_hours=24)) == 1
    assert outbox_ids(any_engine) == {never_published}, "an event not yet published is never deleted"
