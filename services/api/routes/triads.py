"""GET /v1/triads?pitch=<id>: the best (fund, region) pairs for a pitch, scored jointly."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel
from sqlmodel import col, select

from services.api.deps import CallerDep, SessionDep, SettingsDep, is_staff
from services.api.routes.matches import Counterpart, counterpart_of, reader_language
from services.matcher.main import policy_from
from services.matcher.scoring import explain_reasons
from services.matcher.triads import ScoredSide, best_triads
from shared.events import ReasonData
from shared.models import EntityVector, Mandate, Match, MatchStatus, Need, Pitch, entity_title, get_entities

router = APIRouter(prefix="/v1", tags=["matches"])
SIDES_CONSIDERED = 15  # best proposals per kind that are combined into triads


class TriadPublic(BaseModel):
    rank: int
    score: float
    pair_scores: dict[str, float]
    mandate: Counterpart
    need: Counterpart
    reasons: list[dict[str, Any]]
    explanation: str


def _sides(session: Any, pitch: Pitch, kind: str) -> list[ScoredSide]:
    rows = session.exec(
        select(Match)
        .where(Match.a_id == pitch.id, Match.b_kind == kind)
        .where(col(Match.status).not_in([MatchStatus.REJECTED, MatchStatus.DECLINED]))
        .order_by(col(Match.score).desc())
        .limit(SIDES_CONSIDERED)
    ).all()
    entities = {entity.id: entity for entity in get_entities(session, kind, [row.b_id for row in rows])}
    return [ScoredSide(entity=entities[row.b_id], score=row.score) for row in rows if row.b_id in entities]  # type: ignore[arg-type]


@router.get("/triads", response_model=list[TriadPublic], summary="Best fund + region combinations for a pitch")
def list_triads(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    pitch: Annotated[str, Query(description="id of a pitch")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[TriadPublic]:
    subject = session.get(Pitch, pitch)
    if subject is None or not (is_staff(caller) or subject.owner == caller.owner):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"pitch {pitch} not found / 未找到")
    mandates, needs = _sides(session, subject, "mandate"), _sides(session, subject, "need")
    ids = [side.entity.id for side in (*mandates, *needs)]
    vectors = {
        row.entity_id: np.frombuffer(row.vector, dtype=np.float32)
        for row in session.exec(select(EntityVector).where(col(EntityVector.entity_id).in_(ids))).all()
    }
    triads = best_triads(subject, mandates, needs, vectors=vectors, weights=policy_from(settings).weights, limit=limit)
    chinese = reader_language(request, subject)
    results = []
    for rank, triad in enumerate(triads, start=1):
        assert isinstance(triad.mandate, Mandate) and isinstance(triad.need, Need)
        title = f"{entity_title(triad.mandate)} + {entity_title(triad.need)}"
        reasons = [ReasonData.model_validate(reason.model_dump()) for reason in triad.reasons]
        results.append(
            TriadPublic(
                rank=rank,
                score=triad.score,
                pair_scores=triad.pair_scores,
                mandate=counterpart_of(triad.mandate),
                need=counterpart_of(triad.need),
                reasons=[reason.model_dump() for reason in reasons],
                explanation=explain_reasons(triad.score, reasons, [], title, chinese=chinese),
            )
        )
    return results
