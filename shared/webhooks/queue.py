"""Queueing webhook messages: one per (endpoint, event), in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from shared.webhooks.models import EndpointState, MessageStatus, WebhookEndpoint, WebhookMessage, message_id_for

# Paused endpoints still collect messages (delivered on resume); disabled ones do not.
RECEIVING_STATES = (EndpointState.ACTIVE, EndpointState.PAUSED)


def queue_message(
    session: Session,
    endpoint: WebhookEndpoint,
    *,
    event_id: str,
    event_type: str,
    body: str,
    occurred_at: datetime,
    now: datetime,
) -> WebhookMessage | None:
    """Add the message unless this event is already queued for this endpoint."""
    message_id = message_id_for(event_id, endpoint.id)
    if session.get(WebhookMessage, message_id) is not None:
        return None
    message = WebhookMessage(
        id=message_id,
        endpoint_id=endpoint.id,
        event_id=event_id,
        event_type=event_type,
        body=body,
        occurred_at=occurred_at,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(message)
    return message


def queue_for_owner(
    session: Session,
    *,
    owner: str,
    event_id: str,
    event_type: str,
    body: str,
    occurred_at: datetime,
    now: datetime,
) -> list[WebhookMessage]:
    """One message for each of `owner`'s endpoints subscribed to `event_type`."""
    endpoints = session.exec(
        select(WebhookEndpoint).where(
            WebhookEndpoint.owner == owner, col(WebhookEndpoint.state).in_([state.value for state in RECEIVING_STATES])
        )
    ).all()
    queued: list[WebhookMessage] = []
    for endpoint in endpoints:
        if event_type not in endpoint.event_types:  # a JSON list: filtered here, the same on every database
            continue
        message = queue_message(
            session,
            endpoint,
            event_id=event_id,
            event_type=event_type,
            body=body,
            occurred_at=occurred_at,
            now=now,
        )
        if message is not None:
            queued.append(message)
    return queued


def requeue(message: WebhookMessage, *, now: datetime) -> None:
    """Send again (same webhook-id, fresh timestamp and signature), restarting the retry schedule."""
    message.status = MessageStatus.PENDING
    message.attempts = 0
    message.next_attempt_at = now
    message.claimed_by = None
    message.claimed_until = None
    message.delivered_at = None
