"""Accepting a submission: the entity row and its event commit in one transaction."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from shared import audit
from shared.confidential import service as confidential
from shared.confidential.fields import CONFIDENTIAL_PARTS, parts_json
from shared.events import EntityKind, Envelope, SubmissionData, Topic
from shared.models import (
    CREATE_MODELS,
    ENTITY_TABLES,
    PUBLIC_MODELS,
    Entity,
    EntityStatus,
    PitchCreate,
    entity_sectors,
    entity_text,
    utcnow,
)
from shared.outbox import enqueue
from shared.settings import Settings
from shared.taxonomy import load_taxonomy


def _columns(kind: str, body: Any) -> dict[str, Any]:
    # The confidential part never becomes a column of the entity (nor its text or events).
    values: dict[str, Any] = body.model_dump(mode="json", exclude=set(CONFIDENTIAL_PARTS))
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


def build_entity(kind: str, body: Any, *, owner: str, entity_id: str | None = None) -> Entity:
    """A new entity from validated input, with its sector labels mapped to taxonomy codes."""
    assert isinstance(body, CREATE_MODELS[kind])
    entity = ENTITY_TABLES[kind](**_columns(kind, body), owner=owner)
    if entity_id:
        entity.id = entity_id
    entity.sector_codes = sector_codes_of(entity)
    return entity


def sector_codes_of(entity: Entity) -> list[str]:
    """Codes of the sector labels the user typed, in any language or script.

    Codes inferred from the summary text are not added: on the labelled benchmark they
    lowered every ranking (a passing mention is not a sector); /v1/taxonomy/suggest offers
    them to the user instead.
    """
    return load_taxonomy().codes_for(entity_sectors(entity))


def _confidential_parts(body: Any, *, replacing: bool) -> dict[str, Any]:
    """A pitch body's confidential parts: every one on create; on replace only those sent."""
    if not isinstance(body, PitchCreate):
        return {}
    sent = body.model_fields_set if replacing else set(CONFIDENTIAL_PARTS)
    return parts_json(body, [part for part in CONFIDENTIAL_PARTS if part in sent])


def _store_confidential(
    session: Session, entity: Entity, body: Any, *, replacing: bool, actor: audit.Actor | None
) -> None:
    parts = _confidential_parts(body, replacing=replacing)
    if not parts:
        return
    writer = actor.owner if actor is not None else entity.owner
    changed = confidential.store(session, entity.id, parts, by=writer)
    if changed and actor is not None and actor.owner != entity.owner:
        audit.record(session, actor, audit.AuditAction.CONFIDENTIAL_WRITE, "pitch", entity.id, parts=changed)


def create_entity(
    session: Session, settings: Settings, kind: str, body: Any, *, owner: str, actor: audit.Actor | None = None
) -> Entity:
    entity = build_entity(kind, body, owner=owner)
    session.add(entity)
    session.flush()
    _store_confidential(session, entity, body, replacing=False, actor=actor)
    enqueue(session, settings.topic(Topic.SUBMISSIONS), submission_event(entity, "submitted"))
    session.commit()
    return entity


def replace_entity(
    session: Session, settings: Settings, entity: Entity, body: Any, *, actor: audit.Actor | None = None
) -> Entity:
    _store_confidential(session, entity, body, replacing=True, actor=actor)
    for name, value in _columns(entity.kind, body).items():
        setattr(entity, name, value)
    entity.sector_codes = sector_codes_of(entity)
    entity.version += 1
    entity.status = EntityStatus.ACCEPTED
    entity.updated_at = utcnow()
    session.add(entity)
    session.flush()
    enqueue(session, settings.topic(Topic.SUBMISSIONS), submission_event(entity, "updated"))
    session.commit()
    return entity
