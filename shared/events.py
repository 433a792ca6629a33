"""Event envelope and one schema per event type: the contract between services.

Every event: `id` (UUID, the idempotency key), `type`, `occurred_at`, `subject` (entity id,
also the Kafka key, so one entity's events keep their order), `schema_version`, `data`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import PoisonMessageError

SCHEMA_VERSION = 1


class Topic(StrEnum):
    """Logical topic names; the physical name is `<prefix>.<value>` (see Settings.topic)."""

    SUBMISSIONS = "submissions"
    VECTORS = "vectors"
    MATCHES = "matches"
    FEEDBACK = "feedback"
    SESSIONS = "sessions"


EntityKind = Literal["pitch", "mandate", "need"]
ENTITY_KINDS: tuple[EntityKind, ...] = ("pitch", "mandate", "need")


class SubmissionData(BaseModel):
    """`pitch.submitted` / `mandate.submitted` / `need.submitted` (also `*.updated`)."""

    kind: EntityKind
    entity_id: str
    version: int
    owner: str
    text: str = Field(description="The text to embed, composed from the entity's fields.")
    fields: dict[str, Any] = Field(description="The entity's public fields, for consumers that need them.")


class VectorData(BaseModel):
    """`vector.computed`: the embedder's output for one entity version."""

    kind: EntityKind
    entity_id: str
    version: int
    model: str
    dim: int
    vector: list[float]
    source_event_id: str


class ReasonData(BaseModel):
    """One rule's outcome: did it pass, what it added to the score, why (English, Chinese)."""

    rule: str
    passed: bool
    contribution: float
    detail: str
    detail_zh: str = ""


class MatchData(BaseModel):
    """`match.proposed`: one side's view of a proposal (published once per side)."""

    match_id: str
    pair_kind: str
    subject_kind: EntityKind
    subject_id: str
    subject_owner: str
    counterpart_kind: EntityKind
    counterpart_id: str
    counterpart_owner: str
    counterpart_title: str
    score: float
    components: dict[str, float]
    reasons: list[ReasonData]
    explanation: str


class FeedbackData(BaseModel):
    """`match.feedback`: an organizer's or participant's verdict on a proposal."""

    match_id: str
    verdict: Literal["shortlist", "reject", "not_relevant", "decline"]
    reason: str
    actor: str
    actor_role: str
    affected_subjects: list[str]


class MatchDecidedData(BaseModel):
    """`match.decided`: an organizer's decision entered the audit trail, or was undone."""

    match_id: str
    decision_id: int
    action: str = Field(description="shortlist | reject | not_relevant | undo")
    previous_status: str
    status: str
    previous_score: float
    score: float
    reason: str
    actor: str
    actor_role: str


class SessionData(BaseModel):
    """`session.invited|updated|cancelled`: one event per recipient, keyed by the session."""

    session_id: str
    participant: str = Field(description="The owner this event is for.")
    invitation_id: str | None
    theme: str
    starts_at: datetime
    duration_minutes: int
    venue: str | None
    online_link: str | None
    featured: list[str] = Field(description="Titles of the featured projects.")
    changes: list[str] = Field(default_factory=list, description="`session.updated`: the fields that changed.")


class InvitationAnsweredData(BaseModel):
    """`invitation.answered`: a participant accepted or declined; who filled a declined seat."""

    session_id: str
    invitation_id: str
    participant: str
    answer: Literal["accepted", "declined"]
    reason: str
    filled_by: str | None = None


class FollowUpData(BaseModel):
    """`followup.recorded`: an outcome after a session (introduction … project landed)."""

    followup_id: str
    pitch_id: str
    outcome: str
    occurred_on: str
    participant: str | None
    session_id: str | None
    recipients: list[str]
    recorded_by: str


EVENT_DATA: dict[str, type[BaseModel]] = {
    **{f"{kind}.{verb}": SubmissionData for kind in ENTITY_KINDS for verb in ("submitted", "updated")},
    "vector.computed": VectorData,
    "match.proposed": MatchData,
    "match.feedback": FeedbackData,
    "match.decided": MatchDecidedData,
    **{f"session.{verb}": SessionData for verb in ("invited", "updated", "cancelled")},
    "invitation.answered": InvitationAnsweredData,
    "followup.recorded": FollowUpData,
}


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    type: str
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str
    schema_version: int = SCHEMA_VERSION
    data: dict[str, Any]

    @classmethod
    def wrap(cls, type_: str, subject: str, data: BaseModel, *, event_id: str | None = None) -> Envelope:
        if not isinstance(data, EVENT_DATA.get(type_, BaseModel)):
            raise TypeError(f"{type_} carries {EVENT_DATA[type_].__name__}, not {type(data).__name__}")
        extra = {"id": event_id} if event_id else {}
        return cls(type=type_, subject=subject, data=data.model_dump(mode="json"), **extra)

    def payload(self) -> Any:
        """The typed `data` model for this event's type."""
        schema = EVENT_DATA.get(self.type)
        if schema is None:
            raise PoisonMessageError(f"unknown event type {self.type!r}")
        try:
            return schema.model_validate(self.data)
        except ValidationError as exc:
            raise PoisonMessageError(f"{self.type} data does not match its schema: {exc}") from exc

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> Envelope:
        if raw is None:
            raise PoisonMessageError("empty message")
        try:
            envelope = cls.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise PoisonMessageError(f"not a salon event envelope: {exc}") from exc
        if envelope.schema_version > SCHEMA_VERSION:
            raise PoisonMessageError(f"schema_version {envelope.schema_version} is newer than {SCHEMA_VERSION}")
        return envelope


def derived_event_id(source_event_id: str, purpose: str) -> str:
    """Deterministic id for an event caused by another, so a re-delivery yields the same id."""
    return str(uuid.uuid5(uuid.UUID(source_event_id), purpose))
