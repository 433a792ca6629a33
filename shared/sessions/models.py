"""Tables of the session domain and their API model families (Base / Create / table / Public)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, StringConstraints, field_validator, model_validator
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.json_types import JsonDate, JsonDateTime, JsonInt
from shared.models import new_id, utcnow

MIN_SEATS, MAX_SEATS = 10, 20  # 严格控制在 10–20 人
MIN_FEATURED, MAX_FEATURED = 2, 3  # 重点推介 2–3 项

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]


class SessionStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    CANCELLED = "cancelled"


class InvitationStatus(StrEnum):
    INVITED = "invited"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    ALTERNATE = "alternate"
    ATTENDED = "attended"
    NO_SHOW = "no_show"


# Invitations that hold a seat (and count against the per-participant cap once published).
SEATED = (InvitationStatus.INVITED, InvitationStatus.ACCEPTED, InvitationStatus.ATTENDED, InvitationStatus.NO_SHOW)
# Participants who sat together in these states "already met".
MET = (InvitationStatus.ACCEPTED, InvitationStatus.ATTENDED)


class Outcome(StrEnum):
    """Follow-up outcomes after a session (跟进和资源赋能), weakest to strongest."""

    INTRODUCTION = "introduction"
    SITE_VISIT = "site_visit"
    TERM_SHEET = "term_sheet"
    INVESTMENT_CLOSED = "investment_closed"
    PROJECT_LANDED = "project_landed"


class _StrictInput(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- session -----------------------------------------------------------------------------
class SalonSessionBase(SQLModel):
    theme: Text200
    starts_at: datetime
    duration_minutes: int = Field(default=120, ge=30, le=600)
    venue: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = None
    online_link: str | None = Field(default=None, max_length=500)
    capacity: int
    min_funds: int = Field(default=3, ge=0, le=MAX_SEATS)
    min_governments: int = Field(default=1, ge=0, le=MAX_SEATS)
    agenda: Note = ""


class _SessionRules(_StrictInput):
    @field_validator("capacity", check_fields=False)
    @classmethod
    def _capacity(cls, value: int) -> int:
        if not MIN_SEATS <= value <= MAX_SEATS:
            raise ValueError(f"a closed session seats {MIN_SEATS}–{MAX_SEATS} people, not {value} / 闭门会限 10–20 人")
        return value

    @field_validator("online_link", check_fields=False)
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        if value:
            AnyHttpUrl(value)  # raises a ValueError for anything but an http(s) URL
        return value or None


class SalonSessionCreate(SalonSessionBase, _SessionRules):  # type: ignore[misc]
    featured_pitch_ids: list[str]
    starts_at: JsonDateTime
    duration_minutes: JsonInt = Field(default=120, ge=30, le=600)
    capacity: JsonInt
    min_funds: JsonInt = Field(default=3, ge=0, le=MAX_SEATS)
    min_governments: JsonInt = Field(default=1, ge=0, le=MAX_SEATS)

    @field_validator("featured_pitch_ids")
    @classmethod
    def _featured(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a project is featured twice / 重点项目重复")
        if not MIN_FEATURED <= len(value) <= MAX_FEATURED:
            raise ValueError(
                f"a session features {MIN_FEATURED}–{MAX_FEATURED} projects, not {len(value)} / 每场重点推介 2–3 个项目"
            )
        return value

    @model_validator(mode="after")
    def _place(self) -> SalonSessionCreate:
        if not (self.venue or self.online_link):
            raise ValueError("give a venue or an online link / 请填写地点或线上链接")
        if self.min_funds + self.min_governments + len(self.featured_pitch_ids) > self.capacity:
            raise ValueError("role minimums and featured projects exceed the capacity / 角色下限与重点项目超出容量")
        return self


class SalonSessionUpdate(_SessionRules):
    """Changes to a session; every field optional. Published sessions notify invitees.

    Fields a session cannot lack are optional but not nullable: an explicit `null` is a 422,
    never a NULL written into a required column.
    """

    theme: Text200 = Field(default=None)
    starts_at: JsonDateTime = Field(default=None)
    duration_minutes: JsonInt = Field(default=None, ge=30, le=600)
    venue: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = None
    online_link: str | None = None
    capacity: JsonInt = Field(default=None)
    min_funds: JsonInt = Field(default=None, ge=0, le=MAX_SEATS)
    min_governments: JsonInt = Field(default=None, ge=0, le=MAX_SEATS)
    agenda: Note = Field(default=None)


class SalonSession(SalonSessionBase, table=True):
    __tablename__ = "salon_session"
    id: str = Field(default_factory=new_id, primary_key=True)
    status: str = Field(default=SessionStatus.DRAFT, index=True)
    created_by: str
    allow_rematch: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    published_at: datetime | None = None


class FeaturedProject(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("session_id", "pitch_id", name="uq_featured_pitch"),)
    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="salon_session.id", index=True)
    pitch_id: str = Field(index=True)
    position: int


class Invitation(SQLModel, table=True):
    """A participant on a session's list: invited (seated) or an alternate (ranked)."""

    __table_args__ = (UniqueConstraint("session_id", "participant", name="uq_invitation_participant"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    session_id: str = Field(foreign_key="salon_session.id", index=True)
    participant: str = Field(index=True, description="The participant's owner id.")
    role: str
    status: str = Field(default=InvitationStatus.INVITED, index=True)
    quality: float = 0.0
    rank: int = 0
    featured: bool = Field(default=False, description="Represents a featured project.")
    replaces: str | None = Field(default=None, description="The invitation this alternate filled in for.")
    note: str = ""
    invited_at: datetime | None = None
    answered_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class ConflictOfInterest(SQLModel, table=True):
    """Two participants who must not sit in the same session (stored with a < b)."""

    __table_args__ = (UniqueConstraint("participant_a", "participant_b", name="uq_conflict_pair"),)
    id: int | None = Field(default=None, primary_key=True)
    participant_a: str = Field(index=True)
    participant_b: str = Field(index=True)
    reason: str = ""
    declared_by: str
    created_at: datetime = Field(default_factory=utcnow)


class ConflictCreate(_StrictInput):
    participant_a: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    participant_b: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    reason: Note = ""

    @model_validator(mode="after")
    def _two(self) -> ConflictCreate:
        if self.participant_a == self.participant_b:
            raise ValueError("a conflict needs two different participants / 需两个不同的参与方")
        return self


class FollowUpBase(SQLModel):
    pitch_id: str = Field(index=True)
    outcome: Outcome
    occurred_on: date
    participant: str | None = Field(default=None, index=True, description="The fund or government involved.")
    session_id: str | None = Field(default=None, index=True)
    note: Note = ""


class FollowUpCreate(FollowUpBase, _StrictInput):  # type: ignore[misc]
    occurred_on: JsonDate


class FollowUp(FollowUpBase, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    outcome: str  # type: ignore[assignment]
    recorded_by: str
    created_at: datetime = Field(default_factory=utcnow)


class MatchDecision(SQLModel, table=True):
    """Audit trail of organizer decisions on proposals, with what to restore on undo."""

    id: int | None = Field(default=None, primary_key=True)
    match_id: str = Field(index=True)
    action: str = Field(description="A verdict (shortlist, reject, not_relevant, decline) or `undo`.")
    reason: str = ""
    previous_status: str
    previous_score: float
    status: str
    score: float
    feedback_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    undoes: int | None = Field(default=None, description="For `undo`: the decision it reverted.")
    undone: bool = False
    actor: str
    actor_role: str
    created_at: datetime = Field(default_factory=utcnow, index=True)


def public(row: SQLModel) -> dict[str, Any]:
    return row.model_dump(mode="json")
