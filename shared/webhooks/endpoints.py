"""Endpoint lifecycle: create with a fresh secret, rotate with overlap, disable and resume."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col

from shared.models import Notification
from shared.webhooks.models import (
    ORGANIZERS_INBOX,
    EndpointState,
    MessageStatus,
    WebhookEndpoint,
    WebhookMessage,
    as_utc,
)
from shared.webhooks.signing import generate_secret
from shared.webhooks.vault import seal, unseal

DISABLED_EVENT = "webhook.endpoint_disabled"


def new_endpoint(
    *, owner: str, url: str, event_types: list[str], description: str, pepper: str, now: datetime
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint row and its raw secret (the only time the secret is returned)."""
    endpoint = WebhookEndpoint(
        owner=owner, url=url, event_types=event_types, description=description, secret_sealed="", created_at=now
    )
    endpoint.updated_at = now
    secret = generate_secret()
    endpoint.secret_sealed = seal(secret, pepper=pepper, endpoint_id=endpoint.id)
    return endpoint, secret


def rotate_secret(endpoint: WebhookEndpoint, *, pepper: str, overlap: timedelta, now: datetime) -> str:
    """Replace the secret; the old one keeps signing for `overlap` (zero: stops at once)."""
    secret = generate_secret()
    if overlap > timedelta(0):
        endpoint.previous_secret_sealed = endpoint.secret_sealed
        endpoint.previous_secret_expires_at = now + overlap
    else:
        endpoint.previous_secret_sealed = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret_sealed = seal(secret, pepper=pepper, endpoint_id=endpoint.id)
    endpoint.updated_at = now
    return secret


def signing_secrets(endpoint: WebhookEndpoint, *, pepper: str, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, plus the previous one during its overlap."""
    secrets = [unseal(endpoint.secret_sealed, pepper=pepper, endpoint_id=endpoint.id)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_sealed and expires is not None and now < as_utc(expires):
        secrets.append(unseal(endpoint.previous_secret_sealed, pepper=pepper, endpoint_id=endpoint.id))
    return secrets


def disable_endpoint(session: Session, endpoint: WebhookEndpoint, *, reason: str, now: datetime) -> bool:
    """Disable, dead-letter its pending messages (replayable after resume), and tell its owner
    and the organizers. False when it was already disabled (e.g. by a concurrent attempt)."""
    # A conditional update, so of two attempts failing at once only one disables and tells.
    won = session.execute(
        update(WebhookEndpoint)
        .where(col(WebhookEndpoint.id) == endpoint.id, col(WebhookEndpoint.state) != EndpointState.DISABLED)
        .values(state=EndpointState.DISABLED, state_reason=reason, updated_at=now)
    )
    if not getattr(won, "rowcount", 0):
        return False
    endpoint.state, endpoint.state_reason, endpoint.updated_at = EndpointState.DISABLED, reason, now
    session.execute(
        update(WebhookMessage)
        .where(col(WebhookMessage.endpoint_id) == endpoint.id, col(WebhookMessage.status) == MessageStatus.PENDING)
        .values(
            status=MessageStatus.DEAD,
            next_attempt_at=None,
            claimed_by=None,
            claimed_until=None,
            last_error=f"endpoint disabled: {reason}",
        )
    )
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"salon:webhook-disabled:{endpoint.id}:{now.isoformat()}"))
    payload = {"endpoint_id": endpoint.id, "owner": endpoint.owner, "url": endpoint.url, "reason": reason}
    for recipient in dict.fromkeys((endpoint.owner, ORGANIZERS_INBOX)):
        session.add(
            Notification(
                recipient=recipient, event_id=event_id, type=DISABLED_EVENT, subject=endpoint.id, payload=payload
            )
        )
    return True


def resume_endpoint(endpoint: WebhookEndpoint, *, now: datetime) -> None:
    endpoint.state = EndpointState.ACTIVE
    endpoint.state_reason = ""
    endpoint.failing_since = None
    endpoint.updated_at = now
