"""GET /v1/audit: the audit log, newest first, for organizers and admins (read-only).

There is deliberately no route that writes, changes or deletes an entry: entries are written
by the acts they record, in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from services.api.deps import SessionDep, require_roles
from shared import audit
from shared.json_types import JsonDateTime
from shared.models import ApiKey, Role
from shared.webhooks.models import as_utc

router = APIRouter(prefix="/v1", tags=["audit"])
StaffDep = Annotated[ApiKey, Depends(require_roles(Role.ORGANIZER, Role.ADMIN))]


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime
    actor_key_id: str | None
    actor_role: str
    actor_owner: str
    action: str
    object_type: str
    object_id: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditEntryPublic]
    next_before: int | None = None  # pass as `before` for the next (older) page


@router.get("/audit", response_model=AuditPage, summary="The audit log, newest first (organizers and admins)")
def list_audit(
    *,
    db: SessionDep,
    caller: StaffDep,
    object_type: Annotated[str | None, Query(max_length=40, description="match, pitch, session, api_key, …")] = None,
    object_id: Annotated[str | None, Query(max_length=200)] = None,
    actor: Annotated[str | None, Query(max_length=200, description="the acting key's owner")] = None,
    actor_key_id: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[audit.AuditAction | None, Query()] = None,
    since: Annotated[JsonDateTime | None, Query()] = None,
    until: Annotated[JsonDateTime | None, Query()] = None,
    before: Annotated[int | None, Query(ge=1, description="an entry id: only older entries")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    where = audit.AuditFilter(
        object_type=object_type,
        object_id=object_id,
        actor=actor,
        actor_key_id=actor_key_id,
        action=action.value if action else None,
        since=since,
        until=until,
    )
    rows = audit.entries(db, where, before=before, limit=limit)
    entries = [
        AuditEntryPublic.model_validate(row.model_dump() | {"at": as_utc(row.at)}) for row in rows if row.id is not None
    ]
    return AuditPage(entries=entries, next_before=entries[-1].id if len(entries) == limit else None)
