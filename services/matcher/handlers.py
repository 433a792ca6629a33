"""Vectors → stored vectors, scored proposals and `match.proposed` events (via the outbox)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, and_, col, or_, select

from services.matcher.ranking import Candidate, MatchPolicy, Ranker, lexical_similarity
from services.matcher.scoring import Scored, explain, is_chinese, pair_kind
from services.matcher.signals import activity_from_db, feedback_penalties
from services.matcher.state import MatcherState
from shared import faults, metrics
from shared.db import already_handled, claim_event, transaction
from shared.errors import PoisonMessageError
from shared.events import ENTITY_KINDS, Envelope, MatchData, VectorData, derived_event_id
from shared.models import (
    Entity,
    EntityStatus,
    EntityVector,
    Match,
    MatchStatus,
    entity_text,
    entity_title,
    get_entity,
    new_id,
    utcnow,
)
from shared.outbox import enqueue_many

log = logging.getLogger(__name__)
CONSUMER = "matcher"
DUPLICATE_COSINE = 0.95
DUPLICATE_LEXICAL = 0.9


def handle_vector(
    envelope: Envelope,
    *,
    engine: Engine,
    state: MatcherState,
    policy: MatchPolicy,
    matches_topic: str,
    before_match: Callable[[], object] | None = None,
) -> int:
    """Store the vector, propose the best counterparts of the other kinds, and publish.

    Two transactions, so the status a user sees moves accepted → embedded → matched:
    1. the vector and status `embedded` (an idempotent upsert: safe to repeat);
    2. the proposals, status `matched`, the outbox events and the inbox row, all or nothing.
    A crash between them re-delivers the event, which repeats 1 and completes 2. The
    in-memory indices learn the vector only after both commits. Returns the proposals stored.

    The inbox row is keyed by entity version, not by event id: a submission re-driven by the
    reconciler carries a new event id, and must not propose the same version a second time.

    `before_match` runs after 1 commits and before 2 ranks: a matcher replica catches its
    index up there (services/matcher/replica.py), so of two entities stored concurrently on
    two replicas at least the later-stored one sees the other.
    """
    data: VectorData = envelope.payload()
    if data.dim != state.dim:
        raise PoisonMessageError(f"vector of dim {data.dim} from model {data.model}; the index holds dim {state.dim}")
    vector = np.asarray(data.vector, dtype=np.float32)
    done_key = matched_version_key(data)
    with transaction(engine) as session:
        # (The event id too: inbox rows written before keys were per version.)
        if already_handled(session, CONSUMER, done_key) or already_handled(session, CONSUMER, envelope.id):
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
    faults.reach("between_phases")
    if before_match is not None:
        before_match()
    with transaction(engine) as session:
        # Rank first, write after: on SQLite the first write takes the database's write lock,
        # and the API and the outbox relays would wait for it while this entity is ranked.
        if already_handled(session, CONSUMER, done_key):
            return 0
        entity = _current_entity(session, data)
        if entity is None:
            return 0
        text = entity_text(entity)
        duplicate_of = find_duplicate(state, entity, vector, text, vector_id=vector_id)
        proposals = [] if duplicate_of else _propose(session, entity, vector, text, state=state, policy=policy)
        if not claim_event(session, CONSUMER, done_key):
            return 0
        if _version_now(session, entity) != entity.version:
            log.info("%s %s changed while it was ranked; its new version is matched instead", entity.kind, entity.id)
            return 0
        entity.duplicate_of = duplicate_of
        if entity.duplicate_of:
            log.info("%s %s duplicates %s: not matched again", entity.kind, entity.id, entity.duplicate_of)
        matches = _upsert_matches(session, entity, proposals)
        if entity.version > 1:
            _drop_stale_proposals(session, entity, keep={match.id for match in matches})
        enqueue_many(
            session,
            [
                (matches_topic, _proposal_event(match, side, other, scored))
                for match, (candidate, scored) in zip(matches, proposals, strict=True)
                for side, other in ((entity, candidate.entity), (candidate.entity, entity))
            ],
        )
        entity.status = EntityStatus.MATCHED
        entity.updated_at = utcnow()
        session.add(entity)
    state.add(entity, vector_id, vector, version=data.version)
    metrics.MATCH_PROPOSALS.inc(len(matches))
    return len(matches)


def matched_version_key(data: VectorData) -> str:
    """The matcher's inbox key: one set of proposals per entity version, whichever event carries it."""
    return f"{data.kind}:{data.entity_id}@v{data.version}"


def _version_now(session: Session, entity: Entity) -> int | None:
    """The entity's stored version, read afresh (inside the write transaction)."""
    table = type(entity)
    return session.exec(select(table.version).where(table.id == entity.id)).first()


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
    ranker = Ranker(
        policy,
        fetch_entities=partial(state.entities.fetch, session),
        fetch_activity=partial(activity_from_db, session),
        fetch_penalties=partial(feedback_penalties, session, state),
    )
    proposals: list[tuple[Candidate, Scored]] = []
    for kind in ENTITY_KINDS:
        if kind != entity.kind:
            proposals.extend(ranker.rank(entity, vector, text, state.kinds[kind]))
    return proposals


def find_duplicate(
    state: MatcherState, entity: Entity, vector: np.ndarray, text: str, *, vector_id: int | None = None
) -> str | None:
    """An earlier entity of the same kind and owner-independent content that this one repeats.

    Both signals must agree: near-identical wording (BM25 against itself) and meaning
    (cosine), so two different Chinese texts that the English-only model confuses are not
    flagged. Only an entity stored earlier (smaller vector id) counts as the original, so two
    matcher replicas that each see the other's copy never flag both.
    """
    index = state.kinds[entity.kind]
    hits = [(vid, cos) for vid, cos in index.vectors.search(vector, 5)[0] if cos >= DUPLICATE_COSINE]
    if not hits:
        return None
    lexical = lexical_similarity(index, text, [vid for vid, _ in hits])
    for vid, _ in hits:
        other = index.entity_of.get(vid)
        if vector_id is not None and vid > vector_id:
            continue
        if other and other != entity.id and lexical.get(vid, 0.0) >= DUPLICATE_LEXICAL:
            return other
    return None


def _drop_stale_proposals(session: Session, entity: Entity, *, keep: set[str]) -> None:
    """After an update, proposals the new version no longer earns go (decided ones stay)."""
    for match in session.exec(
        select(Match).where(or_(Match.a_id == entity.id, Match.b_id == entity.id), Match.status == MatchStatus.PROPOSED)
    ).all():
        if match.id not in keep:
            session.delete(match)


@dataclass(frozen=True)
class StoredMatch:
    """What the events about a stored proposal need of its `Match` row."""

    id: str
    pair_kind: str


def _upsert_matches(session: Session, entity: Entity, proposals: list[tuple[Candidate, Scored]]) -> list[StoredMatch]:
    """One `Match` row per proposal, in the proposals' order: pairs proposed before are
    updated, new ones inserted in one multi-row INSERT (building and flushing ~20 ORM objects
    per event was a tenth of a matcher's time)."""
    order = {"pitch": 0, "mandate": 1, "need": 2}
    others = [candidate.entity.id for candidate, _ in proposals]
    existing = (
        {
            (match.a_id, match.b_id): match
            for match in session.exec(
                select(Match).where(
                    or_(
                        and_(Match.a_id == entity.id, col(Match.b_id).in_(others)),
                        and_(col(Match.a_id).in_(others), Match.b_id == entity.id),
                    )
                )
            ).all()
        }
        if others
        else {}
    )
    stored: list[StoredMatch] = []
    new_rows: list[dict[str, Any]] = []
    now = utcnow()
    for candidate, scored in proposals:
        a, b = sorted((entity, candidate.entity), key=lambda e: order[e.kind])
        reasons = [reason.model_dump() for reason in scored.reasons]
        terms = scored.matched_terms[:10]
        match = existing.get((a.id, b.id))
        if match is not None:
            match.score, match.components, match.reasons, match.terms = scored.score, scored.components, reasons, terms
            match.updated_at = now
            session.add(match)
            stored.append(StoredMatch(match.id, match.pair_kind))
            continue
        proposal = StoredMatch(new_id(), pair_kind(a.kind, b.kind))
        row = {
            "id": proposal.id,
            "pair_kind": proposal.pair_kind,
            "a_kind": a.kind,
            "a_id": a.id,
            "a_owner": a.owner,
            "b_kind": b.kind,
            "b_id": b.id,
            "b_owner": b.owner,
            "score": scored.score,
            "components": scored.components,
            "reasons": reasons,
            "terms": terms,
            "status": MatchStatus.PROPOSED,
            "created_at": now,
            "updated_at": now,
        }
        new_rows.append(row)
        stored.append(proposal)
    session.flush()  # the updates first, in the order the ORM keeps
    if new_rows:
        session.execute(insert(Match), new_rows)
    return stored


def _explanation(scored: Scored, *, reader: Entity, other: Entity) -> str:
    return explain(scored, entity_title(other), chinese=is_chinese(entity_text(reader)))


def _proposal_event(match: StoredMatch, side: Entity, other: Entity, scored: Scored) -> Envelope:
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
        explanation=_explanation(scored, reader=side, other=other),
    )
    # Keyed by the pair's versions, not by the cause: when two matcher replicas each propose
    # the same pair (their entities were stored concurrently), both write the same event ids
    # and consumers dedupe; a new version of either side is news and gets new ids.
    versions = f"{side.id}@v{side.version}:{other.id}@v{other.version}"
    event_id = derived_event_id(match.id, f"match.proposed:{versions}")
    return Envelope.wrap("match.proposed", side.id, data, event_id=event_id)
