"""SQLModel tables and their API model families (Base / Create / table / Public).

Create models forbid unknown fields, so server-owned fields (`status`, `owner`, ids)
sent by a client are a 422, not silently stored.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Annotated, Any, ClassVar, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, model_validator
from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, col, select

from shared.confidential.fields import Attachments, Contact, Financials
from shared.json_types import JsonBool, JsonNumber
from shared.vocab import (
    ChainAction,
    ChainPosition,
    Currency,
    ElementType,
    FundType,
    LossTolerance,
    Offering,
    PitchNeed,
    Stage,
    TransferMode,
    parse_code,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


# Each accepts the code or a word for it in Chinese/English (see shared.vocab).
StageCode = Annotated[Stage, BeforeValidator(partial(parse_code, Stage))]
CurrencyCode = Annotated[Currency, BeforeValidator(partial(parse_code, Currency))]
ChainPositionCode = Annotated[ChainPosition, BeforeValidator(partial(parse_code, ChainPosition))]
TransferModeCode = Annotated[TransferMode, BeforeValidator(partial(parse_code, TransferMode))]
PitchNeedCode = Annotated[PitchNeed, BeforeValidator(partial(parse_code, PitchNeed))]
FundTypeCode = Annotated[FundType, BeforeValidator(partial(parse_code, FundType))]
LossToleranceCode = Annotated[LossTolerance, BeforeValidator(partial(parse_code, LossTolerance))]
ChainActionCode = Annotated[ChainAction, BeforeValidator(partial(parse_code, ChainAction))]
ElementTypeCode = Annotated[ElementType, BeforeValidator(partial(parse_code, ElementType))]
OfferingCode = Annotated[Offering, BeforeValidator(partial(parse_code, Offering))]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=8000)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
Region = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=120)]
Amount = Annotated[JsonNumber, Field(gt=0, le=1e13)]


class EntityStatus(StrEnum):
    ACCEPTED = "accepted"
    EMBEDDED = "embedded"
    MATCHED = "matched"


class Role(StrEnum):
    ENTERPRISE = "enterprise"
    FUND = "fund"
    GOVERNMENT = "government"
    ORGANIZER = "organizer"
    ADMIN = "admin"


# Which participant role may submit which kind of entity (organizers/admins submit any).
SUBMITTER_ROLE = {"pitch": Role.ENTERPRISE, "mandate": Role.FUND, "need": Role.GOVERNMENT}


def _json_list(**kwargs: Any) -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False), **kwargs)


class _StrictInput(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- pitch -----------------------------------------------------------------------------
class PitchBase(SQLModel):
    company: Name
    title: Title
    summary: LongText
    stage: StageCode
    funding_ask: Amount
    currency: CurrencyCode = Currency.CNY
    region: Region
    chain_position: ChainPositionCode | None = None
    technology_transfer: TransferModeCode | None = None


class PitchCreate(PitchBase, _StrictInput):  # type: ignore[misc]
    sectors: Annotated[list[Label], Field(min_length=1, max_length=10)]
    needs: Annotated[list[PitchNeedCode], Field(max_length=7)] = []
    # Confidential: stored apart from the pitch (shared.confidential), never embedded or matched,
    # shown to a counterpart only after staged disclosure. On PUT a part left out is kept.
    financials: Financials | None = None
    contact: Contact | None = None
    attachments: Attachments | None = None


class Pitch(PitchBase, table=True):
    kind: ClassVar[str] = "pitch"
    id: str = Field(default_factory=new_id, primary_key=True)
    owner: str = Field(index=True)
    status: str = Field(default=EntityStatus.ACCEPTED, index=True)
    version: int = 1
    duplicate_of: str | None = Field(default=None, description="A near-identical earlier submission.")
    sectors: list[str] = _json_list()
    sector_codes: list[str] = _json_list()
    needs: list[str] = _json_list()
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class PitchPublic(PitchBase):
    id: str
    owner: str
    status: str
    version: int
    duplicate_of: str | None
    sectors: list[str]
    sector_codes: list[str]
    needs: list[str]
    created_at: datetime
    updated_at: datetime


# --- mandate ---------------------------------------------------------------------------
class MandateBase(SQLModel):
    fund_name: Name
    fund_type: FundTypeCode
    thesis: LongText
    ticket_min: Amount
    ticket_max: Amount
    currency: CurrencyCode = Currency.CNY
    reinvestment_region: Region | None = None
    reinvestment_ratio: Annotated[float, Field(gt=0, le=5)] | None = None
    relocation_required: bool = False
    loss_tolerance: LossToleranceCode = LossTolerance.MEDIUM


class MandateCreate(MandateBase, _StrictInput):  # type: ignore[misc]
    sectors: Annotated[list[Label], Field(min_length=1, max_length=10)]
    stages: Annotated[list[StageCode], Field(min_length=1, max_length=8)]
    regions: Annotated[list[Region], Field(max_length=30)] = []
    exclusions: Annotated[list[Label], Field(max_length=30)] = []
    relocation_required: JsonBool = False

    @model_validator(mode="after")
    def _ticket_range(self) -> MandateCreate:
        if self.ticket_min > self.ticket_max:
            raise ValueError("ticket_min must not exceed ticket_max")
        return self


class Mandate(MandateBase, table=True):
    kind: ClassVar[str] = "mandate"
    id: str = Field(default_factory=new_id, primary_key=True)
    owner: str = Field(index=True)
    status: str = Field(default=EntityStatus.ACCEPTED, index=True)
    version: int = 1
    duplicate_of: str | None = Field(default=None, description="A near-identical earlier submission.")
    sectors: list[str] = _json_list()
    sector_codes: list[str] = _json_list()
    stages: list[str] = _json_list()
    regions: list[str] = _json_list()
    exclusions: list[str] = _json_list()
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class MandatePublic(MandateBase):
    id: str
    owner: str
    status: str
    version: int
    duplicate_of: str | None
    sectors: list[str]
    sector_codes: list[str]
    stages: list[str]
    regions: list[str]
    exclusions: list[str]
    created_at: datetime
    updated_at: datetime


# --- need ------------------------------------------------------------------------------
class ResourceElement(_StrictInput):
    type: ElementTypeCode
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=500)]


class NeedBase(SQLModel):
    issuer: Name
    region: Region
    chain_action: ChainActionCode
    missing_link: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = None
    description: LongText


class NeedCreate(NeedBase, _StrictInput):  # type: ignore[misc]
    target_sectors: Annotated[list[Label], Field(min_length=1, max_length=10)]
    resource_elements: Annotated[list[ResourceElement], Field(max_length=10)] = []
    offerings: Annotated[list[OfferingCode], Field(max_length=9)] = []


class Need(NeedBase, table=True):
    kind: ClassVar[str] = "need"
    id: str = Field(default_factory=new_id, primary_key=True)
    owner: str = Field(index=True)
    status: str = Field(default=EntityStatus.ACCEPTED, index=True)
    version: int = 1
    duplicate_of: str | None = Field(default=None, description="A near-identical earlier submission.")
    target_sectors: list[str] = _json_list()
    sector_codes: list[str] = _json_list()
    resource_elements: list[dict[str, str]] = _json_list()
    offerings: list[str] = _json_list()
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class NeedPublic(NeedBase):
    id: str
    owner: str
    status: str
    version: int
    duplicate_of: str | None
    target_sectors: list[str]
    sector_codes: list[str]
    resource_elements: list[dict[str, str]]
    offerings: list[str]
    created_at: datetime
    updated_at: datetime


Entity = Pitch | Mandate | Need
ENTITY_TABLES: dict[str, type[Pitch] | type[Mandate] | type[Need]] = {
    "pitch": Pitch,
    "mandate": Mandate,
    "need": Need,
}
CREATE_MODELS: dict[str, type[PitchCreate] | type[MandateCreate] | type[NeedCreate]] = {
    "pitch": PitchCreate,
    "mandate": MandateCreate,
    "need": NeedCreate,
}
PUBLIC_MODELS: dict[str, type[PitchPublic] | type[MandatePublic] | type[NeedPublic]] = {
    "pitch": PitchPublic,
    "mandate": MandatePublic,
    "need": NeedPublic,
}


def get_entity(session: Session, kind: str, entity_id: str) -> Entity | None:
    entity = session.get(ENTITY_TABLES[kind], entity_id)
    return cast(Entity | None, entity)


def get_entities(session: Session, kind: str, entity_ids: list[str]) -> list[Entity]:
    table = ENTITY_TABLES[kind]
    rows = session.exec(select(table).where(col(table.id).in_(entity_ids))).all()
    return cast(list[Entity], list(rows))


def entity_title(entity: Entity) -> str:
    if isinstance(entity, Pitch):
        return entity.title
    if isinstance(entity, Mandate):
        return entity.fund_name
    return f"{entity.issuer}: {entity.missing_link or entity.region}"


def entity_text(entity: Entity) -> str:
    """The text that is embedded and lexically indexed for an entity."""
    if isinstance(entity, Pitch):
        parts = [entity.title, entity.summary, " ".join(entity.sectors), entity.region]
    elif isinstance(entity, Mandate):
        parts = [entity.fund_name, entity.thesis, " ".join(entity.sectors), " ".join(entity.regions)]
    else:
        elements = " ".join(element.get("description", "") for element in entity.resource_elements)
        parts = [
            entity.missing_link or "",
            entity.description,
            " ".join(entity.target_sectors),
            elements,
            entity.region,
        ]
    return "\n".join(part for part in parts if part)


def entity_sectors(entity: Entity) -> list[str]:
    return entity.target_sectors if isinstance(entity, Need) else entity.sectors


# --- access ----------------------------------------------------------------------------
class ApiKey(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    name: str
    role: str
    owner: str = Field(index=True, description="The participant this key acts for.")
    key_hash: str = Field(unique=True, index=True)
    prefix: str
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


# --- pipeline state --------------------------------------------------------------------
class EntityVector(SQLModel, table=True):
    """The stored embedding of an entity's latest version; `id` is its FAISS id."""

    id: int | None = Field(default=None, primary_key=True)
    entity_id: str = Field(unique=True, index=True)
    kind: str = Field(index=True)
    version: int
    model: str
    dim: int
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class MatchStatus(StrEnum):
    PROPOSED = "proposed"
    SHORTLISTED = "shortlisted"
    REJECTED = "rejected"  # by an organizer: wrong, or not relevant
    DECLINED = "declined"  # by one of the two participants


class Verdict(StrEnum):
    SHORTLIST = "shortlist"
    REJECT = "reject"
    NOT_RELEVANT = "not_relevant"
    DECLINE = "decline"


# How much a negative verdict lowers the pair (and, scaled by similarity, similar pairs).
VERDICT_PENALTY = {Verdict.REJECT: 0.6, Verdict.NOT_RELEVANT: 0.8, Verdict.DECLINE: 0.5}


class MatchFeedback(SQLModel, table=True):
    """A decision on a proposal; negative ones lower it and similar pairs in later rankings."""

    id: int | None = Field(default=None, primary_key=True)
    match_id: str = Field(index=True)
    subject_id: str = Field(index=True, description="The side whose future rankings this affects.")
    counterpart_id: str
    verdict: str
    reason: str = ""
    actor: str = Field(description="Owner of the key that decided.")
    actor_role: str
    created_at: datetime = Field(default_factory=utcnow)


class Match(SQLModel, table=True):
    """A proposal between two entities, stored once in canonical order (pitch < mandate < need)."""

    __table_args__ = (
        UniqueConstraint("a_id", "b_id", name="uq_match_pair"),
        Index("ix_match_b", "b_id"),
    )
    id: str = Field(default_factory=new_id, primary_key=True)
    pair_kind: str = Field(index=True)
    a_kind: str
    a_id: str = Field(index=True)
    a_owner: str = Field(index=True)
    b_kind: str
    b_id: str
    b_owner: str = Field(index=True)
    score: float = Field(index=True)
    components: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reasons: list[dict[str, Any]] = _json_list()
    terms: list[str] = _json_list(description="Terms the two texts share, for explanations.")

    status: str = Field(default=MatchStatus.PROPOSED, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class OutboxMessage(SQLModel, table=True):
    """An event written in the same transaction as its cause; the relay publishes it."""

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(index=True)
    topic: str
    key: str
    payload: str
    created_at: datetime = Field(default_factory=utcnow)
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    published_at: datetime | None = Field(default=None, index=True)
    attempts: int = 0
    last_error: str | None = None


class ProcessedEvent(SQLModel, table=True):
    """Inbox for idempotent consumers: (consumer, event id) handled once."""

    consumer: str = Field(primary_key=True)
    event_id: str = Field(primary_key=True)
    processed_at: datetime = Field(default_factory=utcnow)


class ServiceStatus(SQLModel, table=True):
    """Heartbeat and state each service writes, read by /v1/healthz and `salon up`."""

    name: str = Field(primary_key=True)
    state: str
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class Notification(SQLModel, table=True):
    """A participant's inbox entry, written by the notifier from match/session events."""

    __table_args__ = (UniqueConstraint("recipient", "event_id", name="uq_notification_event"),)
    id: int | None = Field(default=None, primary_key=True)
    recipient: str = Field(index=True)
    event_id: str
    type: str
    subject: str
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    read_at: datetime | None = None


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a POST with an Idempotency-Key, replayed to repeats."""

    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency"),)
    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(description="Caller fingerprint and path.")
    key: str
    request_hash: str
    status_code: int | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    created_at: datetime = Field(default_factory=utcnow)
