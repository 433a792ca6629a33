"""Ranked counterparts of an entity, with score and reasons."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel
from sqlmodel import col, or_, select

from services.api.deps import CallerDep, SessionDep, is_staff
from shared.events import ENTITY_KINDS, EntityKind
from shared.models import Entity, Mandate, Match, entity_sectors, entity_title, get_entity

router = APIRouter(prefix="/v1", tags=["matches"])


class Counterpart(BaseModel):
    kind: str
    id: str
    title: str
    owner: str
    region: str
    sectors: list[str]
    sector_codes: list[str]


class MatchPublic(BaseModel):
    match_id: str
    pair_kind: str
    rank: int
    score: float
    status: str
    components: dict[str, float]
    reasons: list[dict[str, Any]]
    explanation: str
    counterpart: Counterpart


def _find_subject(session: Any, subject: str) -> Entity | None:
    for kind in ENTITY_KINDS:
        entity = get_entity(session, kind, subject)
        if entity is not None:
            return entity  # type: ignore[no-any-return]
    return None


def _counterpart(entity: Entity) -> Counterpart:
    region = ", ".join(entity.regions) if isinstance(entity, Mandate) else entity.region
    return Counterpart(
        kind=entity.kind,
        id=entity.id,
        title=entity_title(entity),
        owner=entity.owner,
        region=region,
        sectors=list(entity_sectors(entity)),
        sector_codes=list(entity.sector_codes),
    )


@router.get("/matches", response_model=list[MatchPublic], summary="Ranked counterparts of an entity")
def list_matches(
    session: SessionDep,
    caller: CallerDep,
    subject: Annotated[str, Query(description="id of a pitch, mandate or need")],
    kind: Annotated[EntityKind | None, Query(description="only counterparts of this kind")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[MatchPublic]:
    entity = _find_subject(session, subject)
    if entity is None or not (is_staff(caller) or entity.owner == caller.owner):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{subject} not found / 未找到")
    query = select(Match).where(or_(Match.a_id == subject, Match.b_id == subject))
    if kind is not None:
        query = query.where(or_(Match.a_kind == kind, Match.b_kind == kind))
    rows = session.exec(query.order_by(col(Match.score).desc()).limit(limit)).all()
    results: list[MatchPublic] = []
    for match in rows:
        other_kind, other_id = (match.b_kind, match.b_id) if match.a_id == subject else (match.a_kind, match.a_id)
        other = get_entity(session, other_kind, other_id)
        if other is None:
            continue
        results.append(
            MatchPublic(
                match_id=match.id,
                pair_kind=match.pair_kind,
                rank=len(results) + 1,
                score=match.score,
                status=match.status,
                components=match.components,
                reasons=match.reasons,
                explanation=match.explanation_for(subject),
                counterpart=_counterpart(other),
            )
        )
    return results
