"""Entities stuck before `matched` are re-driven from the database, once per period."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from services.api.intake import create_entity
from services.api.reconcile import redrive_stuck
from shared.models import CREATE_MODELS, EntityStatus, OutboxMessage, Pitch, utcnow
from shared.settings import Settings
from tests.payloads import PITCH


def make_pitch(engine, *, status: str, age_s: int, published: bool) -> str:
    settings = Settings()
    with Session(engine, expire_on_commit=False) as session:
        pitch = create_entity(session, settings, "pitch", CREATE_MODELS["pitch"].model_validate(PITCH), owner="o")
        pitch.status = status
        pitch.updated_at = utcnow() - timedelta(seconds=age_s)
        session.add(pitch)
        if published:
            for row in session.exec(select(OutboxMessage).where(OutboxMessage.key == pitch.id)):
                row.published_at = utcnow()
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

    assert redrive_stuck(any_engine, settings) == 2
    assert events_for(any_engine, lost) == 2 and events_for(any_engine, half_way) == 2
    assert [events_for(any_engine, i) for i in (fresh, queued, done)] == [1, 1, 1]
    assert redrive_stuck(any_engine, settings) == 0, "not again before another period passed"
    with Session(any_engine) as session:
        assert session.exec(select(Pitch).where(col(Pitch.id) == lost)).one().status == EntityStatus.ACCEPTED
