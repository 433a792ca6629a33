"""Vectors → stored vectors, scored proposals and `match.proposed` events (via the outbox)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.matcher.scoring import Scored, Weights, explain, is_chinese, pair_kind, score_pair
from services.matcher.state import MatcherState
from shared.db import already_handled, claim_event, transaction
from shared.errors import PoisonMessageError
from shared.events import ENTITY_KINDS, Envelope, MatchData, VectorData, derived_event_id
from shared.models import (
    Entity,
    EntityStatus,
    EntityVector,
    Match,
    entity_text,
    entity_title,
    get_entities,
    get_entity,
    utcnow,
)
from shared.outbox import enqueue

log = logging.getLogger(__name__)
CONSUMER = "matcher"


@dataclass(frozen=True)
class MatchPolicy:
    top_k: int = 10
    min_score: float = 0.12
    weights: Weights = field(default_factory=Weights)
    candidate_pool: int = 50  # dense and lexical candidates per kind, before scoring


@dataclass
class Candidate:
    entity: Entity
    vector_id: int
    cosine: float
    lexical: float
    matched_terms: list[str]


def handle_vector(
    envelope: Envelope, *, engine: Engine, state: MatcherState, policy: MatchPolicy, matches_topic: str
) -> int:
    """Store the vector, propose the best counterparts of the other kinds, and publish.

    Two transactions, so the status a user sees moves accepted → embedded → matched:
    1. the vector and status `embedded` (an idempotent upsert: safe to repeat);
    2. the proposals, status `matched`, the outbox events and the inbox row, all or nothing.
    A crash between them re-delivers the event, which repeats 1 and completes 2. The
    in-memory indices learn the vector only after both commits. Returns the proposals stored.
    """
    data: VectorData = envelope.payload()
    if data.dim != state.dim:
        raise PoisonMessageError(f"vector of dim {data.dim} from model {data.model}; the index holds dim {state.dim}")
    vector = np.asarray(data.vector, dtype=np.float32)
    with transaction(engine) as session:
        if already_handled(session, CONSUMER, envelope.id):
            return 0
        entity = _current_entity(session, data)
        if entity is None:
            return 0
        stored = _store_vector(session, data, vector)
        if entity.status == EntityStatus.ACCEPTED:
            entity.status = EntityStatus.EMBEDDED
            session.add(entity)
        vector_id = stored.id
    assert vector_id is not None
    with transaction(engine) as session:
        if not claim_event(session, CONSUMER, envelope.id):
            return 0
        entity = _current_entity(session, data)
        if entity is None:
            return 0
        text = entity_text(entity)
        proposals = _propose(session, entity, vector, text, state=state, policy=policy)
        matches = [_upsert_match(session, entity, candidate, scored) for candidate, scored in proposals]
        for match, (candidate, scored) in zip(matches, proposals, strict=True):
            for side, other in ((entity, candidate.entity), (candidate.entity, entity)):
                _enqueue_proposal(session, matches_topic, envelope, match, side, other, scored)
        entity.status = EntityStatus.MATCHED
        entity.updated_at = utcnow()
        session.add(entity)
    state.add(data.kind, vector_id, entity.id, vector, text)
    return len(matches)


def _current_entity(session: Session, data: VectorData) -> Entity | None:
    """The entity this vector belongs to; None if the vector is of a superseded version."""
    entity = get_entity(session, data.kind, data.entity_id)
    if entity is None:
        raise PoisonMessageError(f"{data.kind} {data.entity_id} is not in the database")
    if entity.version > data.version:
        log.info("skipping stale vector for %s v%d (now v%d)", entity.id, data.version, entity.version)
        return None
    return entity


def _store_vector(session: Session, data: VectorData, vector: np.ndarray) -> EntityVector:
    row = session.exec(select(EntityVector).where(EntityVector.entity_id == data.entity_id)).first()
    if row is None:
        row = EntityVector(
            entity_id=data.entity_id,
            kind=data.kind,
            version=data.version,
            model=data.model,
            dim=data.dim,
            vector=vector.tobytes(),
        )
    else:
        row.version, row.model, row.dim, row.vector = data.version, data.model, data.dim, vector.tobytes()
        row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return row


def _propose(
    session: Session,
    entity: Entity,
    vector: np.ndarray,
    text: str,
    *,
    state: MatcherState,
    policy: MatchPolicy,
) -> list[tuple[Candidate, Scored]]:
    proposals: list[tuple[Candidate, Scored]] = []
    for kind in ENTITY_KINDS:
        if kind == entity.kind:
            continue
        index = state.kinds[kind]
        dense_hits = dict(index.vectors.search(vector, policy.candidate_pool)[0])
        lexical_hits = dict(index.lexical.search(text, policy.candidate_pool))
        pool = set(dense_hits) | set(lexical_hits)
        if not pool:
            continue
        # Scores for candidates found by only one retriever are filled in from the other.
        missing_dense = [vid for vid in pool if vid not in dense_hits]
        if missing_dense:
            dense_hits.update(_cosines(session, vector, missing_dense))
        lexical_raw = index.lexical.scores(text, pool)
        self_score = index.lexical.self_score(text) or 1.0
        wanted = [index.entity_of[vid] for vid in pool if vid in index.entity_of]
        by_id = {e.id: e for e in get_entities(session, kind, wanted)}
        scored: list[tuple[Candidate, Scored]] = []
        for vid in pool:
            counterpart = by_id.get(index.entity_of.get(vid, ""))
            if counterpart is None or counterpart.owner == entity.owner:
                continue
            candidate = Candidate(
                entity=counterpart,
                vector_id=vid,
                cosine=float(dense_hits.get(vid, 0.0)),
                lexical=min(1.0, lexical_raw.get(vid, 0.0) / self_score) ** 0.5,
                matched_terms=index.lexical.matched_terms(text, vid),
            )
            result = score_pair(
                entity,
                counterpart,
                cosine=candidate.cosine,
                lexical=candidate.lexical,
                matched_terms=candidate.matched_terms,
                weights=policy.weights,
            )
            if not result.gated and result.score >= policy.min_score:
                scored.append((candidate, result))
        scored.sort(key=lambda item: -item[1].score)
        proposals.extend(scored[: policy.top_k])
    return proposals


def _cosines(session: Session, vector: np.ndarray, vector_ids: list[int]) -> dict[int, float]:
    rows = session.exec(select(EntityVector).where(col(EntityVector.id).in_(vector_ids))).all()
    return {
        row.id: float(np.dot(vector, np.frombuffer(row.vector, dtype=np.float32)))
        for row in rows
        if row.id is not None and row.dim == vector.shape[0]
    }


def _upsert_match(session: Session, entity: Entity, candidate: Candidate, scored: Scored) -> Match:
    order = {"pitch": 0, "mandate": 1, "need": 2}
    a, b = sorted((entity, candidate.entity), key=lambda e: order[e.kind])
    match = session.exec(select(Match).where(Match.a_id == a.id, Match.b_id == b.id)).first()
    if match is None:
        match = Match(
            pair_kind=pair_kind(a.kind, b.kind),
            a_kind=a.kind,
            a_id=a.id,
            a_owner=a.owner,
            b_kind=b.kind,
            b_id=b.id,
            b_owner=b.owner,
            score=scored.score,
        )
    match.score = scored.score
    match.components = scored.components
    match.reasons = [reason.model_dump() for reason in scored.reasons]
    match.explanation_a = _explanation(scored, reader=a, other=b)
    match.explanation_b = _explanation(scored, reader=b, other=a)
    match.updated_at = utcnow()
    session.add(match)
    session.flush()
    return match


def _explanation(scored: Scored, *, reader: Entity, other: Entity) -> str:
    return explain(scored, entity_title(other), chinese=is_chinese(entity_text(reader)))


def _enqueue_proposal(
    session: Session, topic: str, cause: Envelope, match: Match, side: Entity, other: Entity, scored: Scored
) -> None:
    data = MatchData(
        match_id=match.id,
        pair_kind=match.pair_kind,
        subject_kind=side.kind,  # type: ignore[arg-type]
        subject_id=side.id,
        subject_owner=side.owner,
        counterpart_kind=other.kind,  # type: ignore[arg-type]
        counterpart_id=other.id,
        counterpart_owner=other.owner,
        counterpart_title=entity_title(other),
        score=scored.score,
        components=scored.components,
        reasons=scored.reasons,
        explanation=match.explanation_for(side.id),
    )
    event_id = derived_event_id(cause.id, f"match.proposed:{match.id}:{side.id}")
    enqueue(session, topic, Envelope.wrap("match.proposed", side.id, data, event_id=event_id))
