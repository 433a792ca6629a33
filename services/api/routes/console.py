"""The organizer console: the page itself (/console), the live queue, decisions, overview.

Every `/v1/console/*` endpoint is for organizers and admins (403 for anyone else); the
page is static and asks for an API key, which it keeps in the tab's sessionStorage.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlmodel import Session, col, func, select

from services.api.deps import SessionDep, SettingsDep, is_staff, require_roles
from services.api.routes.matches import ORGANIZER_VERDICTS, apply_verdict, counterpart_of
from services.api.stream import MatchHub, make_stream_token, read_stream_token
from services.matcher.scoring import explain_reasons
from shared import audit as audit_log
from shared.confidential.service import disclosure_state
from shared.events import ReasonData
from shared.models import (
    ENTITY_TABLES,
    ApiKey,
    Entity,
    Mandate,
    Match,
    MatchStatus,
    Pitch,
    Role,
    Verdict,
    entity_title,
    get_entities,
    get_entity,
)
from shared.sessions import curation, service
from shared.sessions.models import FollowUp, Invitation, InvitationStatus, SalonSession, SessionStatus, public
from shared.sessions.service import SessionRuleError

STATIC = Path(__file__).resolve().parents[1] / "console"
router = APIRouter(prefix="/v1/console", tags=["console"])
pages = APIRouter(include_in_schema=False)
StaffDep = Annotated[ApiKey, Depends(require_roles(Role.ORGANIZER, Role.ADMIN))]
QUEUE_SCAN = 2000  # proposals read per queue request before filters that need both entities


# --- page -------------------------------------------------------------------------------------
@pages.get("/console")
def console_root() -> RedirectResponse:
    return RedirectResponse("/console/")


@pages.get("/console/{asset:path}")
def console_asset(asset: str) -> FileResponse:
    path = (STATIC / (asset or "index.html")).resolve()
    if not path.is_file() or STATIC.resolve() not in path.parents:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    # The page is small and changes with releases: no stale copies after an upgrade.
    return FileResponse(path, headers={"Cache-Control": "no-cache"})


@router.get("/me", summary="Who the key is (organizers and admins only)")
def me(*, caller: StaffDep) -> dict[str, str]:
    return {"owner": caller.owner, "role": caller.role, "name": caller.name}


# --- queue ------------------------------------------------------------------------------------
def _stages(entity: Entity) -> list[str]:
    if isinstance(entity, Pitch):
        return [entity.stage]
    if isinstance(entity, Mandate):
        return list(entity.stages)
    return []


def _side(entity: Entity) -> dict[str, Any]:
    return counterpart_of(entity).model_dump() | {"stages": _stages(entity)}


def queue_item(match: Match, a: Entity, b: Entity, *, detail: bool = False, chinese: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "match_id": match.id,
        "pair_kind": match.pair_kind,
        "score": match.score,
        "status": match.status,
        "created_at": match.created_at.isoformat(),
        "updated_at": match.updated_at.isoformat(),
        "a": _side(a),
        "b": _side(b),
    }
    if detail:
        reasons = [ReasonData.model_validate(reason) for reason in match.reasons]
        item["components"] = match.components
        item["reasons"] = match.reasons
        item["terms"] = match.terms
        item["explanation"] = explain_reasons(match.score, reasons, match.terms, entity_title(b), chinese=False)
        item["explanation_zh"] = explain_reasons(match.score, reasons, match.terms, entity_title(b), chinese=True)
        item["explanation"] = item["explanation_zh" if chinese else "explanation"]
    return item


def _entities(db: Session, matches: list[Match]) -> dict[str, Entity]:
    wanted: dict[str, set[str]] = {}
    for match in matches:
        wanted.setdefault(match.a_kind, set()).add(match.a_id)
        wanted.setdefault(match.b_kind, set()).add(match.b_id)
    found: dict[str, Entity] = {}
    for kind, ids in wanted.items():
        for entity in get_entities(db, kind, list(ids)):
            found[entity.id] = entity
    return found


def _wants(entity: Entity, *, sector: str | None, region: str | None, stage: str | None) -> bool:
    side = _side(entity)
    if sector and not any(sector.lower() in s.lower() for s in [*side["sectors"], *side["sector_codes"]]):
        return False
    if region and region.lower() not in side["region"].lower():
        return False
    return not (stage and stage not in side["stages"])


@router.get("/queue", summary="Proposals to curate, filtered and sorted")
def queue(
    *,
    db: SessionDep,
    caller: StaffDep,
    pair_kind: Annotated[str | None, Query(description="pitch-mandate | pitch-need | mandate-need")] = None,
    sector: Annotated[str | None, Query(description="a sector word or code, on either side")] = None,
    region: Annotated[str | None, Query(description="part of a region name, on either side")] = None,
    stage: Annotated[str | None, Query(description="a stage code, on either side")] = None,
    min_score: Annotated[float, Query(ge=0, le=1)] = 0.0,
    status_: Annotated[str | None, Query(alias="status")] = None,
    sort: Literal["score", "-score", "created", "-created"] = "-score",
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[dict[str, Any]]:
    query = select(Match).where(col(Match.score) >= min_score)
    if pair_kind:
        query = query.where(Match.pair_kind == pair_kind)
    if status_:
        query = query.where(Match.status == status_)
    order = {
        "score": col(Match.score),
        "-score": col(Match.score).desc(),
        "created": col(Match.created_at),
        "-created": col(Match.created_at).desc(),
    }[sort]
    matches = list(db.exec(query.order_by(order, col(Match.id)).limit(QUEUE_SCAN)).all())
    entities = _entities(db, matches)
    items = []
    for match in matches:
        a, b = entities.get(match.a_id), entities.get(match.b_id)
        if a is None or b is None:
            continue
        filters = {"sector": sector, "region": region, "stage": stage}
        if any(filters.values()) and not (_wants(a, **filters) or _wants(b, **filters)):
            continue
        items.append(queue_item(match, a, b))
        if len(items) >= limit:
            break
    return items


def _match(db: Session, match_id: str) -> Match:
    match = db.get(Match, match_id)
    if match is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"match {match_id} not found / 未找到")
    return match


def _decision(row: Any) -> dict[str, Any]:
    return public(row)


@router.get("/queue/{match_id}", summary="One proposal: both sides, reasons, audit trail")
def queue_detail(match_id: str, request: Request, *, db: SessionDep, caller: StaffDep) -> dict[str, Any]:
    match = _match(db, match_id)
    a, b = get_entity(db, match.a_kind, match.a_id), get_entity(db, match.b_kind, match.b_id)
    if a is None or b is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"match {match_id} not found / 未找到")
    chinese = request.headers.get("accept-language", "").lower().startswith("zh")
    state = disclosure_state(db, match)
    return queue_item(match, a, b, detail=True, chinese=chinese) | {
        "audit": [_decision(row) for row in curation.audit_trail(db, [match.id])],
        "disclosure": state.model_dump() if state else None,
    }


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match_ids: Annotated[list[str], Field(min_length=1, max_length=200)]
    verdict: Verdict
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = ""

    @model_validator(mode="after")
    def _rules(self) -> DecisionIn:
        if self.verdict not in ORGANIZER_VERDICTS:
            raise ValueError("organizers shortlist, reject or mark not_relevant / 组织方可入围、拒绝或标记不相关")
        if self.verdict == Verdict.REJECT and not self.reason:
            raise ValueError("a rejection needs a reason / 拒绝需填写理由")
        return self


@router.post("/decisions", summary="Shortlist, reject (with a reason) or mark not relevant; one or many")
def decide(body: DecisionIn, *, db: SessionDep, settings: SettingsDep, caller: StaffDep) -> list[dict[str, Any]]:
    matches = [_match(db, match_id) for match_id in dict.fromkeys(body.match_ids)]
    for match in matches:
        apply_verdict(db, settings, match, body.verdict, body.reason, caller, [match.a_id, match.b_id])
    db.commit()
    entities = _entities(db, matches)
    return [queue_item(m, entities[m.a_id], entities[m.b_id]) for m in matches]


class UndoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match_ids: Annotated[list[str], Field(min_length=1, max_length=200)]


@router.post("/undo", summary="Undo the latest decision on each proposal (restores status and score)")
def undo(body: UndoIn, *, db: SessionDep, settings: SettingsDep, caller: StaffDep) -> list[dict[str, Any]]:
    matches = [_match(db, match_id) for match_id in dict.fromkeys(body.match_ids)]
    try:
        for match in matches:
            undone = curation.undo_last(db, match, actor=caller.owner, actor_role=caller.role, settings=settings)
            audit_log.record(
                db,
                audit_log.Actor.of(caller),
                audit_log.AuditAction.MATCH_UNDO,
                "match",
                match.id,
                decision_id=undone.id,
                undoes=undone.undoes,
                status=[undone.previous_status, undone.status],
                score=[undone.previous_score, undone.score],
            )
    except SessionRuleError as exc:
        db.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    db.commit()
    entities = _entities(db, matches)
    return [queue_item(m, entities[m.a_id], entities[m.b_id]) for m in matches]


@router.get("/audit", summary="Decisions on proposals, newest first: who, when, what")
def audit(
    *, db: SessionDep, caller: StaffDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, Any]]:
    return [_decision(row) for row in curation.audit_trail(db, None, limit)]


# --- overview ---------------------------------------------------------------------------------
@router.get("/overview", summary="Funnel, score distributions and each session's composition")
def overview(*, db: SessionDep, caller: StaffDep) -> dict[str, Any]:
    submissions = sum(db.exec(select(func.count()).select_from(table)).one() for table in ENTITY_TABLES.values())
    by_status = dict(db.exec(select(Match.status, func.count()).group_by(Match.status)).all())
    decided = db.exec(select(func.count()).select_from(Match).where(Match.status == MatchStatus.SHORTLISTED)).one()
    invited = db.exec(select(func.count()).select_from(Invitation).where(col(Invitation.invited_at).is_not(None))).one()
    attended = db.exec(
        select(func.count()).select_from(Invitation).where(Invitation.status == InvitationStatus.ATTENDED)
    ).one()
    outcomes = db.exec(select(func.count()).select_from(FollowUp)).one()
    bins: dict[str, list[int]] = {}
    for pair_kind, score in db.exec(select(Match.pair_kind, Match.score)).all():
        histogram = bins.setdefault(pair_kind, [0] * 10)
        histogram[min(9, max(0, int(score * 10)))] += 1
    roles = service.participant_roles(db)
    sessions = []
    for salon in db.exec(select(SalonSession).where(SalonSession.status != SessionStatus.CANCELLED)).all():
        seated = service.invitations(db, salon, service.SEATED)
        sectors: Counter[str] = Counter()
        for participant in seated:
            sectors.update(_participant_sectors(db, participant.participant))
        sessions.append(
            {
                "id": salon.id,
                "theme": salon.theme,
                "status": salon.status,
                "starts_at": salon.starts_at.isoformat(),
                "roles": dict(Counter(roles.get(i.participant, i.role) for i in seated)),
                "sectors": dict(sectors.most_common(6)),
            }
        )
    return {
        "funnel": [
            {"stage": "submissions", "count": submissions},
            {"stage": "proposals", "count": sum(by_status.values())},
            {"stage": "shortlisted", "count": decided},
            {"stage": "invited", "count": invited},
            {"stage": "attended", "count": attended},
            {"stage": "outcomes", "count": outcomes},
        ],
        "status": by_status,
        "score_histogram": bins,
        "sessions": sessions,
    }


def _participant_sectors(db: Session, owner: str) -> list[str]:
    codes: set[str] = set()
    for table in ENTITY_TABLES.values():
        for row in db.exec(select(table.sector_codes).where(table.owner == owner)).all():
            codes.update(row)
    return sorted(codes)


# --- live stream ------------------------------------------------------------------------------
@router.post("/stream-token", summary="A short-lived token for the event stream (EventSource sends no headers)")
def stream_token(*, settings: SettingsDep, caller: StaffDep) -> dict[str, Any]:
    return {"token": make_stream_token(caller.id, settings.api_key_pepper), "expires_in": 120}


@router.get("/stream", summary="New proposals as Server-Sent Events (`?token=` from /stream-token)")
async def stream(
    request: Request, *, settings: SettingsDep, token: Annotated[str, Query(max_length=300)]
) -> StreamingResponse:
    key_id = read_stream_token(token, settings.api_key_pepper)
    key = None
    if key_id is not None:
        with Session(request.app.state.engine) as db:
            key = db.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or expired stream token / 令牌无效或已过期")
    if not is_staff(key):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role '{key.role}' may not do this / 无此权限")
    hub: MatchHub = request.app.state.match_hub
    return StreamingResponse(_sse(request, hub), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def _sse(request: Request, hub: MatchHub) -> AsyncIterator[str]:
    queue = hub.subscribe()
    try:
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            try:
                item = await asyncio.wait_for(queue.get(), timeout=15)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            yield f"event: {item['type']}\ndata: {json.dumps(item, ensure_ascii=False)}\n\n"
    finally:
        hub.unsubscribe(queue)
