"""The matcher's handler without Kafka: real SQLite/PostgreSQL, a deterministic encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from embeddings import HashingEncoder
from services.api.intake import create_entity
from services.matcher.handlers import handle_vector
from services.matcher.ranking import MatchPolicy
from services.matcher.state import MatcherState
from shared.errors import PoisonMessageError
from shared.events import Envelope, MatchData, VectorData
from shared.models import CREATE_MODELS, ENTITY_TABLES, EntityVector, Match, OutboxMessage, entity_text
from shared.settings import Settings
from tests.payloads import MANDATE, NEED, PITCH

ENCODER = HashingEncoder(dim=64)
TOPIC = "salon.matches"


@pytest.fixture
def state(tmp_path: Path) -> MatcherState:
    return MatcherState(ENCODER.dim, tmp_path / "index")


def submit(engine, kind: str, body: dict, owner: str):
    with Session(engine, expire_on_commit=False) as session:
        return create_entity(session, Settings(), kind, CREATE_MODELS[kind].model_validate(body), owner=owner)


def vector_event(entity, *, version: int | None = None, dim: int = ENCODER.dim) -> Envelope:
    vector = ENCODER.encode([entity_text(entity)])[0]
    if dim != ENCODER.dim:
        vector = vector[:dim]
    return Envelope.wrap(
        "vector.computed",
        entity.id,
        VectorData(
            kind=entity.kind,
            entity_id=entity.id,
            version=version or entity.version,
            model=ENCODER.model_name,
            dim=dim,
            vector=vector.tolist(),
            source_event_id=Envelope(type="x", subject="s", data={}).id,
        ),
    )


def handle(envelope: Envelope, engine, state) -> int:
    return handle_vector(envelope, engine=engine, state=state, policy=MatchPolicy(min_score=0.05), matches_topic=TOPIC)


def match_events(engine) -> list[Envelope]:
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.topic == TOPIC)).all()
    return [Envelope.model_validate_json(row.payload) for row in rows]


def test_three_kinds_meet_and_each_side_gets_an_event(any_engine, state):
    need = submit(any_engine, "need", NEED, "鹤岗市人民政府")
    mandate = submit(any_engine, "mandate", MANDATE, "龙江基金")
    pitch = submit(any_engine, "pitch", PITCH, "鹤岗碳材")
    assert handle(vector_event(need), any_engine, state) == 0, "nothing to match yet"
    assert handle(vector_event(mandate), any_engine, state) == 1
    assert handle(vector_event(pitch), any_engine, state) == 2

    with Session(any_engine) as session:
        assert session.get(ENTITY_TABLES["pitch"], pitch.id).status == "matched"
        assert len(session.exec(select(EntityVector)).all()) == 3
        pairs = {(m.pair_kind, m.a_id, m.b_id) for m in session.exec(select(Match)).all()}
    assert pairs == {
        ("mandate-need", mandate.id, need.id),
        ("pitch-mandate", pitch.id, mandate.id),
        ("pitch-need", pitch.id, need.id),
    }
    proposals: list[MatchData] = [event.payload() for event in match_events(any_engine)]
    assert sorted((p.subject_id, p.counterpart_id) for p in proposals) == sorted(
        [
            (mandate.id, need.id),
            (need.id, mandate.id),
            (pitch.id, mandate.id),
            (mandate.id, pitch.id),
            (pitch.id, need.id),
            (need.id, pitch.id),
        ]
    )
    pitch_to_mandate = next(p for p in proposals if p.subject_id == pitch.id and p.counterpart_id == mandate.id)
    rules = {reason.rule: reason for reason in pitch_to_mandate.reasons}
    assert rules["stage"].passed and rules["ticket_size"].passed and rules["exclusions"].passed
    assert rules["sector_overlap"].passed and "new_materials" not in rules["sector_overlap"].detail
    assert rules["lexical_similarity"].passed and "石墨" in rules["lexical_similarity"].detail
    assert pitch_to_mandate.explanation.startswith("与「")


def test_a_redelivered_vector_changes_nothing(sqlite_engine, state):
    mandate = submit(sqlite_engine, "mandate", MANDATE, "fund")
    pitch = submit(sqlite_engine, "pitch", PITCH, "enterprise")
    handle(vector_event(mandate), sqlite_engine, state)
    event = vector_event(pitch)
    assert handle(event, sqlite_engine, state) == 1
    before = len(match_events(sqlite_engine))
    assert handle(event, sqlite_engine, state) == 0
    assert len(match_events(sqlite_engine)) == before


def test_a_redriven_submission_of_a_matched_version_proposes_nothing_again(any_engine, state):
    """The reconciler re-drives with a fresh event id; the same version must not be proposed twice."""
    mandate = submit(any_engine, "mandate", MANDATE, "fund")
    pitch = submit(any_engine, "pitch", PITCH, "enterprise")
    handle(vector_event(mandate), any_engine, state)
    assert handle(vector_event(pitch), any_engine, state) == 1
    before = len(match_events(any_engine))
    redriven = vector_event(pitch)  # a new event id for the same entity version
    assert handle(redriven, any_engine, state) == 0
    assert len(match_events(any_engine)) == before


def test_a_stale_version_is_skipped(sqlite_engine, state):
    pitch = submit(sqlite_engine, "pitch", PITCH, "enterprise")
    with Session(sqlite_engine) as session:
        row = session.get(ENTITY_TABLES["pitch"], pitch.id)
        row.version = 2
        session.add(row)
        session.commit()
    assert handle(vector_event(pitch, version=1), sqlite_engine, state) == 0
    with Session(sqlite_engine) as session:
        assert session.exec(select(EntityVector)).all() == []


def test_poison_vectors_are_refused(sqlite_engine, state):
    pitch = submit(sqlite_engine, "pitch", PITCH, "enterprise")
    with pytest.raises(PoisonMessageError, match="dim"):
        handle(vector_event(pitch, dim=32), sqlite_engine, state)
    with Session(sqlite_engine) as session:
        session.delete(session.get(ENTITY_TABLES["pitch"], pitch.id))
        session.commit()
    with pytest.raises(PoisonMessageError, match="not in the database"):
        handle(vector_event(pitch), sqlite_engine, state)


def test_declared_exclusions_and_stage_are_hard_gates(sqlite_engine, state):
    excluding = submit(sqlite_engine, "mandate", {**MANDATE, "exclusions": ["石墨"]}, "fund-a")
    late_stage = submit(sqlite_engine, "mandate", {**MANDATE, "fund_name": "后期基金", "stages": ["pre_ipo"]}, "fund-b")
    handle(vector_event(excluding), sqlite_engine, state)
    handle(vector_event(late_stage), sqlite_engine, state)
    pitch = submit(sqlite_engine, "pitch", PITCH, "enterprise")
    assert handle(vector_event(pitch), sqlite_engine, state) == 0


def test_participants_are_not_matched_with_themselves(sqlite_engine, state):
    mandate = submit(sqlite_engine, "mandate", MANDATE, "same-owner")
    handle(vector_event(mandate), sqlite_engine, state)
    pitch = submit(sqlite_engine, "pitch", PITCH, "same-owner")
    assert handle(vector_event(pitch), sqlite_engine, state) == 0


def test_state_rebuilds_from_the_database_then_from_its_snapshot(sqlite_engine, state, tmp_path):
    for kind, body in (("need", NEED), ("mandate", MANDATE), ("pitch", PITCH)):
        handle(vector_event(submit(sqlite_engine, kind, body, kind)), sqlite_engine, state)
    fresh = MatcherState(ENCODER.dim, tmp_path / "index")
    assert fresh.rebuild(sqlite_engine) == {"pitch": "database", "mandate": "database", "need": "database"}
    assert fresh.sizes() == {"pitch": 1, "mandate": 1, "need": 1}
    fresh.snapshot()
    again = MatcherState(ENCODER.dim, tmp_path / "index")
    assert again.rebuild(sqlite_engine) == {"pitch": "snapshot", "mandate": "snapshot", "need": "snapshot"}
    query = ENCODER.encode([entity_text(submit(sqlite_engine, "pitch", PITCH, "x"))])[0]
    assert again.kinds["pitch"].vectors.search(query, 1) == fresh.kinds["pitch"].vectors.search(query, 1)


def test_a_crash_after_embedding_leaves_status_embedded_and_redelivery_completes(sqlite_engine, state, monkeypatch):
    import services.matcher.handlers as handlers

    mandate = submit(sqlite_engine, "mandate", MANDATE, "fund")
    handle(vector_event(mandate), sqlite_engine, state)
    pitch = submit(sqlite_engine, "pitch", PITCH, "enterprise")
    event = vector_event(pitch)

    def crash(*args, **kwargs):
        raise RuntimeError("killed between the two transactions")

    with monkeypatch.context() as patch:
        patch.setattr(handlers, "_propose", crash)
        with pytest.raises(RuntimeError):
            handle(event, sqlite_engine, state)
    with Session(sqlite_engine) as session:
        assert session.get(ENTITY_TABLES["pitch"], pitch.id).status == "embedded"
        assert session.exec(select(Match)).all() == []

    assert handle(event, sqlite_engine, state) == 1
    with Session(sqlite_engine) as session:
        assert session.get(ENTITY_TABLES["pitch"], pitch.id).status == "matched"
        assert len(session.exec(select(EntityVector)).all()) == 2


def test_ranking_holds_no_write_lock_and_a_version_changed_meanwhile_is_left_alone(sqlite_engine, state, monkeypatch):
    """The matcher ranks before its first write, so on SQLite the API can write meanwhile; an
    update committed during the ranking wins (its own vector event matches the new version)."""
    import sqlite3

    from services.matcher import handlers

    mandate = submit(sqlite_engine, "mandate", MANDATE, "fund")
    handle(vector_event(mandate), sqlite_engine, state)
    pitch = submit(sqlite_engine, "pitch", PITCH, "enterprise")
    database = str(sqlite_engine.url.database)
    ranked = handlers._propose

    def ranking_while_the_api_updates(*args, **kwargs):
        other = sqlite3.connect(database, timeout=0.1)  # fails fast if a write lock were held
        other.execute("UPDATE pitch SET version = version + 1, status = 'accepted' WHERE id = ?", (pitch.id,))
        other.commit()
        other.close()
        return ranked(*args, **kwargs)

    monkeypatch.setattr(handlers, "_propose", ranking_while_the_api_updates)
    assert handle(vector_event(pitch), sqlite_engine, state) == 0
    with Session(sqlite_engine) as session:
        stored = session.get(ENTITY_TABLES["pitch"], pitch.id)
        assert stored is not None and stored.version == 2 and stored.status == "accepted"
        assert session.exec(select(Match).where(Match.a_id == pitch.id)).all() == []
