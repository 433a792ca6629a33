"""The no-data-lost ledger counts what the database holds, wherever its id chunks fall."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.bench.corpus import submission_bodies, variant_entity
from services.bench.ledger import MATCHER_INBOX, count_ledger
from shared.db import init_db, make_engine
from shared.events import Envelope, MatchData
from shared.models import Entity, EntityStatus, EntityVector, Match, MatchStatus, OutboxMessage, ProcessedEvent, utcnow

TOPIC = "salon.matches"
OWNER = "ledger-owner"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    init_db(engine)
    return engine


def _store_matched(engine: Engine, pairs: int) -> tuple[dict[str, str], list[Match]]:
    """`pairs` pitch↔mandate matches, each side stored, vectorised, proposed and published once."""
    bodies = {kind: [] for kind in ("pitch", "mandate")}  # type: dict[str, list[dict[str, object]]]
    for kind, body, _ in islice(submission_bodies(seed=3), 400):
        if kind in bodies and len(bodies[kind]) < pairs:
            bodies[kind].append(body)
    accepted: dict[str, str] = {}
    matches: list[Match] = []
    with Session(engine) as session:
        entities: dict[str, list[Entity]] = {kind: [] for kind in bodies}
        for kind, kind_bodies in bodies.items():
            for body in kind_bodies:
                entity = variant_entity(kind, body, owner=OWNER)
                entity.status = EntityStatus.MATCHED
                session.add(entity)
                session.add(
                    EntityVector(
                        entity_id=entity.id,
                        kind=kind,
                        version=1,
                        model="test",
                        dim=4,
                        vector=np.zeros(4, dtype=np.float32).tobytes(),
                    )
                )
                session.add(ProcessedEvent(consumer=MATCHER_INBOX, event_id=f"{kind}:{entity.id}@v{entity.version}"))
                entities[kind].append(entity)
                accepted[entity.id] = kind
        for pitch, mandate in zip(entities["pitch"], entities["mandate"], strict=True):
            match = Match(
                pair_kind="pitch-mandate",
                a_kind="pitch",
                a_id=pitch.id,
                a_owner=OWNER,
                b_kind="mandate",
                b_id=mandate.id,
                b_owner=OWNER,
                score=0.5,
                status=MatchStatus.PROPOSED,
            )
            session.add(match)
            matches.append(match)
            for side in (pitch, mandate):
                _publish_proposal(session, match, side.id)
        session.commit()
        for match in matches:
            session.refresh(match)
    return accepted, matches


def _publish_proposal(session: Session, match: Match, subject_id: str) -> None:
    subject_kind, counterpart_kind = ("pitch", "mandate") if subject_id == match.a_id else ("mandate", "pitch")
    counterpart_id = match.b_id if subject_id == match.a_id else match.a_id
    data = MatchData(
        match_id=match.id,
        pair_kind=match.pair_kind,
        subject_kind=subject_kind,
        subject_id=subject_id,
        subject_owner=OWNER,
        counterpart_kind=counterpart_kind,
        counterpart_id=counterpart_id,
        counterpart_owner=OWNER,
        counterpart_title="",
        score=match.score,
        components={},
        reasons=[],
        explanation="",
    )
    envelope = Envelope.wrap("match.proposed", subject_id, data)
    session.add(
        OutboxMessage(
            event_id=envelope.id,
            topic=TOPIC,
            key=subject_id,
            payload=envelope.model_dump_json(),
            published_at=utcnow(),
        )
    )


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 500])
def test_a_match_whose_sides_fall_in_two_chunks_is_counted_once(engine: Engine, chunk_size: int) -> None:
    accepted, matches = _store_matched(engine, pairs=3)

    ledger = count_ledger(engine, accepted, [OWNER], matches_topic=TOPIC, chunk_size=chunk_size)

    assert ledger.problems() == []
    assert (ledger.accepted, ledger.vectors, ledger.match_sets, ledger.proposals) == (6, 6, 6, 2 * len(matches))
    assert (ledger.missing_proposals, ledger.duplicate_proposals) == (0, 0)


@pytest.mark.parametrize("chunk_size", [1, 500])
def test_a_missing_and_a_duplicate_proposal_are_both_counted(engine: Engine, chunk_size: int) -> None:
    accepted, matches = _store_matched(engine, pairs=3)
    with Session(engine) as session:
        # One side's event lost, another side's event sent twice under two ids.
        lost = session.get(OutboxMessage, 1)
        assert lost is not None
        session.delete(lost)
        _publish_proposal(session, matches[1], matches[1].b_id)
        session.commit()

    ledger = count_ledger(engine, accepted, [OWNER], matches_topic=TOPIC, chunk_size=chunk_size)

    assert (ledger.missing_proposals, ledger.duplicate_proposals) == (1, 1)
    assert ledger.problems() == ["duplicate_proposals=1", "missing_proposals=1"]
