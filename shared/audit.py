"""The audit log: who did what to which object, written in the same transaction as the act.

Every organizer decision (verdicts, undo, session curation), every read of a pitch's
confidential part by someone other than its owner, every disclosure opt-in/out and every
API key created or revoked adds one entry. Entries are only ever appended: the ORM refuses
to update or delete them, and the API has a read endpoint only (organizers and admins).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, event
from sqlmodel import Field, Session, SQLModel, col, select

from shared.errors import SalonError
from shared.models import ApiKey, utcnow


class AuditLogError(SalonError):
    """Something tried to change or remove an audit entry."""


class AuditAction(StrEnum):
    MATCH_SHORTLIST = "match.shortlist"
    MATCH_REJECT = "match.reject"
    MATCH_NOT_RELEVANT = "match.not_relevant"
    MATCH_DECLINE = "match.decline"
    MATCH_UNDO = "match.undo"
    SESSION_CREATE = "session.create"
    SESSION_UPDATE = "session.update"
    SESSION_CANCEL = "session.cancel"
    SESSION_PLAN = "session.plan"
    SESSION_EDIT_LIST = "session.edit_list"
    SESSION_PUBLISH = "session.publish"
    SESSION_ATTENDANCE = "session.attendance"
    CONFLICT_DECLARE = "conflict.declare"
    FOLLOWUP_RECORD = "followup.record"
    CONFIDENTIAL_READ = "pitch.confidential.read"
    CONFIDENTIAL_WRITE = "pitch.confidential.write"
    DISCLOSURE_OPT_IN = "disclosure.opt_in"
    DISCLOSURE_OPT_OUT = "disclosure.opt_out"
    API_KEY_CREATE = "api_key.create"
    API_KEY_REVOKE = "api_key.revoke"
    WEBHOOK_PAUSE = "webhook.pause"
    WEBHOOK_RESUME = "webhook.resume"
    WEBHOOK_REPLAY = "webhook.replay"


@dataclass(frozen=True)
class Actor:
    """Who acted: an API key (id, role, owner), or the local operator's CLI (no key)."""

    key_id: str | None
    role: str
    owner: str

    @classmethod
    def of(cls, key: ApiKey) -> Actor:
        return cls(key_id=key.id, role=key.role, owner=key.owner)


CLI = Actor(key_id=None, role="operator", owner="cli")


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_object", "object_type", "object_id"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    actor_key_id: str | None = Field(default=None, index=True)
    actor_role: str
    actor_owner: str = Field(index=True)
    action: str = Field(index=True)
    object_type: str
    object_id: str
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _refuse_change(_mapper: Any, _connection: Any, target: AuditEntry) -> None:
    raise AuditLogError(f"audit entry {target.id} cannot be changed or deleted / 审计记录不可修改或删除")


event.listen(AuditEntry, "before_update", _refuse_change)
event.listen(AuditEntry, "before_delete", _refuse_change)


def record(
    db: Session, actor: Actor, action: AuditAction, object_type: str, object_id: str, **detail: Any
) -> AuditEntry:
    """Add an entry to `db`'s transaction: it commits (or rolls back) with the act itself."""
    entry = AuditEntry(
        actor_key_id=actor.key_id,
        actor_role=actor.role,
        actor_owner=actor.owner,
        action=action.value,
        object_type=object_type,
        object_id=object_id,
        detail=detail,
    )
    db.add(entry)
    return entry


@dataclass(frozen=True)
class AuditFilter:
    object_type: str | None = None
    object_id: str | None = None
    actor: str | None = None
    actor_key_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _utc(moment: datetime) -> datetime:
    """Compared in UTC: SQLite keeps UTC wall-clock time; a time without a zone is UTC."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def entries(db: Session, where: AuditFilter, *, before: int | None = None, limit: int = 100) -> list[AuditEntry]:
    """Newest first; `before` (an entry id) pages back through older entries."""
    query = select(AuditEntry)
    for column, value in (
        (AuditEntry.object_type, where.object_type),
        (AuditEntry.object_id, where.object_id),
        (AuditEntry.actor_owner, where.actor),
        (AuditEntry.actor_key_id, where.actor_key_id),
        (AuditEntry.action, where.action),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.since is not None:
        query = query.where(col(AuditEntry.at) >= _utc(where.since))
    if where.until is not None:
        query = query.where(col(AuditEntry.at) < _utc(where.until))
    if before is not None:
        query = query.where(col(AuditEntry.id) < before)
    return list(db.exec(query.order_by(col(AuditEntry.id).desc()).limit(limit)).all())
