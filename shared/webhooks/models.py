"""Webhook tables: endpoints, messages (one per endpoint and event) and the attempt log.

Times are stored as timezone-aware columns (`timestamptz` on PostgreSQL); SQLite returns
them naive, so read them through `as_utc`. A message's id is its `webhook-id`: derived
from the event id and the endpoint, so a re-handled event or a restarted notifier can
never send the same event as a new message. Dead messages (retries exhausted, or the
endpoint disabled) stay in the table with status `dead`: that is the dead-letter store,
listed and replayed through the API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.models import utcnow

# Notification rows addressed to every organizer (and admin) rather than to one owner.
ORGANIZERS_INBOX = "role:organizer"


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive time is taken to be UTC already."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(*, nullable: bool, index: bool = False) -> Any:
    column = Column(DateTime(timezone=True), nullable=nullable, index=index)
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=utcnow, sa_column=column)


def new_endpoint_id() -> str:
    return f"ep_{uuid.uuid4().hex}"


def message_id_for(event_id: str, endpoint_id: str) -> str:
    """The stable `webhook-id` of one event at one endpoint."""
    return f"msg_{uuid.uuid5(uuid.NAMESPACE_URL, f'salon:webhook:{endpoint_id}:{event_id}').hex}"


class EndpointState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"  # by its owner: messages queue up and are sent on resume
    DISABLED = "disabled"  # by salon (410, or failing for days): no new messages until resumed


class MessageStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class WebhookEndpoint(SQLModel, table=True):
    id: str = Field(default_factory=new_endpoint_id, primary_key=True)
    owner: str = Field(index=True)
    url: str = Field(sa_column=Column(Text, nullable=False))
    description: str = ""
    event_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    state: str = Field(default=EndpointState.ACTIVE, index=True)
    state_reason: str = ""
    # Sealed with shared.webhooks.vault; the previous secret still signs until it expires.
    secret_sealed: str
    previous_secret_sealed: str | None = None
    previous_secret_expires_at: datetime | None = _when(nullable=True)
    # Start of the current run of failed attempts; cleared by any success.
    failing_since: datetime | None = _when(nullable=True)
    created_at: datetime = _when(nullable=False)
    updated_at: datetime = _when(nullable=False)


class WebhookMessage(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_message_event"),
        Index("ix_webhook_message_due", "status", "next_attempt_at"),
    )
    id: str = Field(primary_key=True, description="The webhook-id header.")
    endpoint_id: str = Field(index=True)
    event_id: str
    event_type: str
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default=MessageStatus.PENDING)
    attempts: int = Field(default=0, description="Attempts since it was last queued (drives the schedule).")
    next_attempt_at: datetime | None = _when(nullable=True)
    claimed_by: str | None = None
    claimed_until: datetime | None = _when(nullable=True)
    last_status_code: int | None = None
    last_error: str | None = None
    occurred_at: datetime = _when(nullable=False)
    created_at: datetime = _when(nullable=False, index=True)
    delivered_at: datetime | None = _when(nullable=True)


class WebhookAttempt(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: str = Field(index=True)
    message_id: str = Field(index=True)
    attempt: int
    at: datetime = _when(nullable=False, index=True)
    status_code: int | None = None
    latency_ms: int = 0
    response_excerpt: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    error: str | None = None
    outcome: str = Field(description="delivered, retry, dead, endpoint_disabled or superseded")
