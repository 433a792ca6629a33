"""Accepting a submission: the entity row and its event commit in one transaction."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from shared.events import EntityKind, Envelope, SubmissionData, Topic
from shared.models import (
    CREATE_MODELS,
    ENTITY_TABLES,
    PUBLIC_MODELS,
    Entity,
    EntityStatus,
    entity_sectors,
    entity_text,
    utcnow,
)
from shared.outbox import enqueue
from shared.settings import Settings
from shared.taxonomy import load_taxonomy


def _columns(kind: str, body: Any) -> dict[str, Any]:
    values: dict[str, Any] = body.model_dump(mode="json")
    if kind == "need":
        values["resource_elements"] = [dict(element) for element in values.get("resource_elements", [])]
    return values


def submission_event(entity: Entity, verb: str) -> Envelope:
    public = PUBLIC_MODELS[entity.kind].model_validate(entity, from_attributes=True)
    kind: EntityKind = entity.kind  # type: ignore[assignment]
    return Envelope.wrap(
        f"{entity.kind}.{verb}",
        entity.id,
        SubmissionData(
            kind=kind,
            entity_id=entity.id,
            version=entity.version,
            owner=entity.owner,
            text=entity_text(entity),
            fields=public.model_dump(mode="json"),
        ),
    )


def create_entity(session: Session, settings: Settings, kind: str, body: Any, *, owner: str) -> Entity:
    assert isinstance(body, CREATE_MODELS[kind])
    entity = ENTITY_TABLES[kind](**_columns(kind, body), owner=owner)
    entity.sector_codes = load_taxonomy().codes_for(entity_sectors(entity))
    session.add(entity)
    session.flush()
    enqueue(session, settings.topic(Topic.SUBMISSIONS), submission_event(entity, "submitted"))
    session.commit()
    return entity


def replace_entity(session: Session, settings: Settings, entity: Entity, body: Any) -> Entity:
    for name, value in _columns(entity.kind, body).items():
        setattr(entity, name, value)
    entity.sector_codes = load_taxonomy().codes_for(entity_sectors(entity))
    entity.version += 1
    entity.status = EntityStatus.ACCEPTED
    entity.updated_at = utcnow()
    session.add(entity)
    session.flush()
    enqueue(session, settings.topic(Topic.SUBMISSIONS), submission_event(entity, "updated"))
    session.commit()
    return entity
