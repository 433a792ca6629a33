"""GET /v1/notifications: the caller's inbox of proposals (filled by the notifier).

Organizers and admins also see the rows addressed to all organizers (recipient
`role:organizer`, e.g. a webhook endpoint that salon disabled).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlmodel import col, select

from services.api.deps import CallerDep, SessionDep, is_staff
from shared.models import Notification
from shared.webhooks.models import ORGANIZERS_INBOX

router = APIRouter(prefix="/v1", tags=["notifications"])


@router.get("/notifications", summary="The caller's notifications, newest first")
def list_notifications(
    session: SessionDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    recipients = [caller.owner, ORGANIZERS_INBOX] if is_staff(caller) else [caller.owner]
    rows = session.exec(
        select(Notification)
        .where(col(Notification.recipient).in_(recipients))
        .order_by(col(Notification.id).desc())
        .limit(limit)
    ).all()
    return [
        {
            "id": row.id,
            "event_id": row.event_id,
            "type": row.type,
            "subject": row.subject,
            "created_at": row.created_at,
            "payload": row.payload,
        }
        for row in rows
    ]
