"""Tables of a pitch's confidential part and of its owner's per-match disclosure opt-ins.

The confidential part lives in its own table, not on `Pitch`, so that nothing that reads
pitches (lists, events, the matcher's text, exports) can carry it by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from shared.models import utcnow


class PitchConfidential(SQLModel, table=True):
    __tablename__ = "pitch_confidential"
    pitch_id: str = Field(primary_key=True)
    financials: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    contact: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    attachments: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(description="Owner of the key that last wrote it.")


class MatchDisclosure(SQLModel, table=True):
    """The pitch owner's opt-in to show its confidential part to one match's counterpart."""

    __tablename__ = "match_disclosure"
    match_id: str = Field(primary_key=True)
    pitch_id: str = Field(index=True)
    parts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    opted_in: bool = False
    opted_in_at: datetime | None = None
    revoked_at: datetime | None = None
    updated_by: str
