"""POST/GET/PUT for pitches, mandates and needs (one router per kind, same rules)."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel
from sqlmodel import Session, col, select

from services.api.deps import CallerDep, SessionDep, SettingsDep, is_staff
from services.api.intake import create_entity, replace_entity
from shared.audit import Actor
from shared.models import (
    ENTITY_TABLES,
    SUBMITTER_ROLE,
    ApiKey,
    Entity,
    MandateCreate,
    MandatePublic,
    NeedCreate,
    NeedPublic,
    PitchCreate,
    PitchPublic,
    get_entity,
)


class Accepted(BaseModel):
    id: str
    kind: str
    status: str
    version: int
    links: dict[str, str]


def visible_entity(session: Session, caller: ApiKey, kind: str, entity_id: str) -> Entity:
    """The entity if the caller may see it; 404 otherwise (never confirms existence)."""
    entity = get_entity(session, kind, entity_id)
    if entity is None or not (is_staff(caller) or entity.owner == caller.owner):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{kind} {entity_id} not found / 未找到")
    return entity


def _check_submitter(caller: ApiKey, kind: str) -> None:
    if not (is_staff(caller) or caller.role == SUBMITTER_ROLE[kind].value):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role '{caller.role}' cannot submit a {kind}; that is for {SUBMITTER_ROLE[kind].value} keys / 无权提交",
        )


def _accepted(entity: Entity, plural: str) -> Accepted:
    return Accepted(
        id=entity.id,
        kind=entity.kind,
        status=entity.status,
        version=entity.version,
        links={"self": f"/v1/{plural}/{entity.id}", "matches": f"/v1/matches?subject={entity.id}"},
    )


def build_router(kind: str, plural: str, create_model: Any, public_model: Any) -> APIRouter:
    router = APIRouter(prefix=f"/v1/{plural}", tags=[plural])
    table = ENTITY_TABLES[kind]

    @router.post(
        "",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary=f"Submit a {kind}; it is embedded and matched asynchronously",
    )
    def submit(body: create_model, session: SessionDep, settings: SettingsDep, caller: CallerDep) -> Accepted:  # type: ignore[valid-type]
        _check_submitter(caller, kind)
        entity = create_entity(session, settings, kind, body, owner=caller.owner, actor=Actor.of(caller))
        return _accepted(entity, plural)

    @router.get("", response_model=list[public_model], summary=f"List {plural} the caller may see")
    def list_entities(
        session: SessionDep,
        caller: CallerDep,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Any:
        query = select(table).order_by(col(table.created_at).desc()).offset(offset).limit(limit)
        if not is_staff(caller):
            query = query.where(table.owner == caller.owner)
        return session.exec(query).all()

    @router.get("/{entity_id}", response_model=public_model, summary=f"A {kind} with its processing status")
    def read_entity(entity_id: str, session: SessionDep, caller: CallerDep) -> Any:
        return visible_entity(session, caller, kind, entity_id)

    @router.put(
        "/{entity_id}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary=f"Replace a {kind}; it is re-embedded and re-matched",
    )
    def replace(
        entity_id: str, body: create_model, session: SessionDep, settings: SettingsDep, caller: CallerDep
    ) -> Accepted:  # type: ignore[valid-type]
        entity = visible_entity(session, caller, kind, entity_id)
        _check_submitter(caller, kind)
        return _accepted(replace_entity(session, settings, entity, body, actor=Actor.of(caller)), plural)

    return router


routers = [
    build_router("pitch", "pitches", PitchCreate, PitchPublic),
    build_router("mandate", "mandates", MandateCreate, MandatePublic),
    build_router("need", "needs", NeedCreate, NeedPublic),
]
