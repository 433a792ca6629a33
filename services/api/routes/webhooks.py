"""Webhook subscriptions: endpoints, secrets (shown once), delivery log and replay.

Every caller manages its own endpoints; another participant's endpoint is a 404.
Organizers and admins see every endpoint, its messages and attempts, and may pause,
resume and replay; creating, re-pointing, rotating, testing and deleting stay with the owner.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import delete
from sqlmodel import Session, col, select

from services.api.deps import CallerDep, SessionDep, SettingsDep, is_staff
from shared import audit
from shared.audit import AuditAction
from shared.models import ApiKey, utcnow
from shared.settings import Settings
from shared.webhooks.catalogue import EVENT_TYPES, TEST_EVENT, unknown_types
from shared.webhooks.endpoints import new_endpoint, resume_endpoint, rotate_secret
from shared.webhooks.models import (
    EndpointState,
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    as_utc,
)
from shared.webhooks.payloads import webhook_test_body
from shared.webhooks.queue import queue_message, requeue
from shared.webhooks.ssrf import MAX_URL_LENGTH, Resolver, WebhookUrlError, check_url, system_resolver

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def get_resolver() -> Resolver:
    """DNS for URL checks; tests override this dependency with a stub."""
    return system_resolver


ResolverDep = Annotated[Resolver, Depends(get_resolver)]

Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=MAX_URL_LENGTH)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class _StrictInput(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _event_types(value: list[str]) -> list[str]:
    unknown = unknown_types(value)
    if unknown:
        raise ValueError(f"unknown event type(s) {unknown}; offered: {sorted(EVENT_TYPES)}")
    return list(dict.fromkeys(value))


EventTypes = Annotated[list[str], Field(min_length=1, max_length=len(EVENT_TYPES))]


class EndpointCreate(_StrictInput):
    url: Url
    event_types: EventTypes
    description: Description = ""

    _check_types = field_validator("event_types")(_event_types)


class EndpointUpdate(_StrictInput):
    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    state: Literal["active", "paused"] | None = Field(None, description="pause, resume, or re-enable")

    @field_validator("event_types")
    @classmethod
    def _check_types(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _event_types(value)


class RotateRequest(_StrictInput):
    overlap_s: int | None = Field(
        None, ge=0, le=7 * 86400, description="How long the old secret keeps signing; default from settings."
    )


class EndpointPublic(BaseModel):
    id: str
    owner: str
    url: str
    description: str
    event_types: list[str]
    state: str
    state_reason: str
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointPublic):
    secret: str = Field(description="The signing secret: shown only now.")


class Rotated(BaseModel):
    endpoint_id: str
    secret: str = Field(description="The new signing secret: shown only now.")
    previous_secret_expires_at: datetime | None


class MessagePublic(BaseModel):
    id: str = Field(description="The webhook-id header: the same on every attempt and replay.")
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    occurred_at: datetime
    created_at: datetime
    delivered_at: datetime | None


class AttemptPublic(BaseModel):
    id: int
    message_id: str
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int
    response_excerpt: str
    error: str | None
    outcome: str


class Replayed(BaseModel):
    replayed: int
    message_ids: list[str]


def _public(endpoint: WebhookEndpoint) -> EndpointPublic:
    return EndpointPublic(
        id=endpoint.id,
        owner=endpoint.owner,
        url=endpoint.url,
        description=endpoint.description,
        event_types=endpoint.event_types,
        state=endpoint.state,
        state_reason=endpoint.state_reason,
        failing_since=_utc(endpoint.failing_since),
        previous_secret_expires_at=_utc(endpoint.previous_secret_expires_at),
        created_at=as_utc(endpoint.created_at),
        updated_at=as_utc(endpoint.updated_at),
    )


def _message_public(message: WebhookMessage) -> MessagePublic:
    values = message.model_dump(exclude={"body", "claimed_by", "claimed_until"})
    for name in ("next_attempt_at", "occurred_at", "created_at", "delivered_at"):
        values[name] = _utc(values[name])
    return MessagePublic(**values)


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def _checked_url(url: str, settings: Settings, resolver: Resolver) -> str:
    """422 on the `url` field (nothing stored) when salon would not call it."""
    try:
        check_url(url, resolver=resolver, allow_loopback=settings.webhook_allow_loopback)
    except WebhookUrlError as exc:
        raise RequestValidationError(
            [{"type": "url_refused", "loc": ("body", "url"), "msg": str(exc), "input": url}]
        ) from exc
    return url


def _visible(session: Session, caller: ApiKey, endpoint_id: str) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or not (is_staff(caller) or endpoint.owner == caller.owner):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"webhook endpoint {endpoint_id} not found / 未找到")
    return endpoint


def _owned(session: Session, caller: ApiKey, endpoint_id: str) -> WebhookEndpoint:
    endpoint = _visible(session, caller, endpoint_id)
    if endpoint.owner != caller.owner:  # only staff get here: they already see that it exists
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the endpoint's owner may do this / 仅所有者可操作")
    return endpoint


def _message(session: Session, endpoint: WebhookEndpoint, message_id: str) -> WebhookMessage:
    message = session.get(WebhookMessage, message_id)
    if message is None or message.endpoint_id != endpoint.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"message {message_id} not found / 未找到")
    return message


def _refuse_disabled(endpoint: WebhookEndpoint) -> None:
    if endpoint.state == EndpointState.DISABLED:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"endpoint is disabled ({endpoint.state_reason}); resume it first: PATCH {{'state': 'active'}}",
        )


@router.get("/event-types", summary="The event types an endpoint can subscribe to")
def list_event_types(_caller: CallerDep) -> dict[str, str]:
    return EVENT_TYPES


@router.post(
    "/endpoints",
    status_code=status.HTTP_201_CREATED,
    response_model=EndpointCreated,
    summary="Register an HTTPS endpoint; the response carries its signing secret, shown only once",
)
def create_endpoint(
    body: EndpointCreate, session: SessionDep, settings: SettingsDep, caller: CallerDep, resolver: ResolverDep
) -> EndpointCreated:
    url = _checked_url(body.url, settings, resolver)
    endpoint, secret = new_endpoint(
        owner=caller.owner,
        url=url,
        event_types=body.event_types,
        description=body.description,
        pepper=settings.api_key_pepper,
        now=utcnow(),
    )
    session.add(endpoint)
    session.commit()
    return EndpointCreated(**_public(endpoint).model_dump(), secret=secret)


@router.get("/endpoints", response_model=list[EndpointPublic], summary="The caller's endpoints (staff: all)")
def list_endpoints(
    session: SessionDep,
    caller: CallerDep,
    owner: Annotated[str | None, Query(description="staff only: one participant's endpoints")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[EndpointPublic]:
    query = select(WebhookEndpoint).order_by(col(WebhookEndpoint.created_at).desc()).offset(offset).limit(limit)
    if not is_staff(caller):
        query = query.where(WebhookEndpoint.owner == caller.owner)
    elif owner is not None:
        query = query.where(WebhookEndpoint.owner == owner)
    return [_public(endpoint) for endpoint in session.exec(query).all()]


@router.get("/endpoints/{endpoint_id}", response_model=EndpointPublic, summary="One endpoint (never its secret)")
def read_endpoint(endpoint_id: str, session: SessionDep, caller: CallerDep) -> EndpointPublic:
    return _public(_visible(session, caller, endpoint_id))


@router.patch(
    "/endpoints/{endpoint_id}",
    response_model=EndpointPublic,
    summary="Pause, resume (also re-enables a disabled endpoint), or change URL, event types, description",
)
def update_endpoint(
    endpoint_id: str,
    body: EndpointUpdate,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    resolver: ResolverDep,
) -> EndpointPublic:
    changes = body.model_dump(exclude_unset=True)
    only_state = set(changes) <= {"state"}
    endpoint = _visible(session, caller, endpoint_id) if only_state else _owned(session, caller, endpoint_id)
    now = utcnow()
    if body.url is not None:
        endpoint.url = _checked_url(body.url, settings, resolver)
    if body.event_types is not None:
        endpoint.event_types = body.event_types
    if body.description is not None:
        endpoint.description = body.description
    if body.state == EndpointState.ACTIVE and endpoint.state != EndpointState.ACTIVE:
        audit.record(
            session,
            audit.Actor.of(caller),
            AuditAction.WEBHOOK_RESUME,
            "webhook_endpoint",
            endpoint.id,
            was=endpoint.state,
        )
        resume_endpoint(endpoint, now=now)
    elif body.state == EndpointState.PAUSED and endpoint.state != EndpointState.PAUSED:
        _refuse_disabled(endpoint)
        audit.record(session, audit.Actor.of(caller), AuditAction.WEBHOOK_PAUSE, "webhook_endpoint", endpoint.id)
        endpoint.state = EndpointState.PAUSED
        endpoint.state_reason = f"paused by {caller.owner}"
    endpoint.updated_at = now
    session.add(endpoint)
    session.commit()
    return _public(endpoint)


@router.delete("/endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an endpoint")
def delete_endpoint(endpoint_id: str, session: SessionDep, caller: CallerDep) -> Response:
    endpoint = _owned(session, caller, endpoint_id)
    # Its queue and log go with it: nothing can be sent to, or asked about, a deleted endpoint.
    session.execute(delete(WebhookAttempt).where(col(WebhookAttempt.endpoint_id) == endpoint.id))
    session.execute(delete(WebhookMessage).where(col(WebhookMessage.endpoint_id) == endpoint.id))
    session.delete(endpoint)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/endpoints/{endpoint_id}/rotate",
    response_model=Rotated,
    summary="New signing secret (shown once); the old one keeps signing during the overlap",
)
def rotate(
    endpoint_id: str,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    body: RotateRequest | None = None,
) -> Rotated:
    endpoint = _owned(session, caller, endpoint_id)
    overlap_s = settings.webhook_rotation_overlap_s if body is None or body.overlap_s is None else body.overlap_s
    secret = rotate_secret(endpoint, pepper=settings.api_key_pepper, overlap=timedelta(seconds=overlap_s), now=utcnow())
    session.add(endpoint)
    session.commit()
    return Rotated(
        endpoint_id=endpoint.id, secret=secret, previous_secret_expires_at=_utc(endpoint.previous_secret_expires_at)
    )


@router.post(
    "/endpoints/{endpoint_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessagePublic,
    summary=f"Queue a `{TEST_EVENT}` message to this endpoint",
)
def send_test_event(endpoint_id: str, session: SessionDep, caller: CallerDep) -> MessagePublic:
    endpoint = _owned(session, caller, endpoint_id)
    if endpoint.state != EndpointState.ACTIVE:
        raise HTTPException(status.HTTP_409_CONFLICT, f"endpoint is {endpoint.state}; resume it first")
    now = utcnow()
    event_id = str(uuid.uuid4())
    message = queue_message(
        session,
        endpoint,
        event_id=event_id,
        event_type=TEST_EVENT,
        body=webhook_test_body(endpoint.id, now),
        occurred_at=now,
        now=now,
    )
    assert message is not None  # a fresh event id is never queued yet
    session.commit()
    return _message_public(message)


@router.get(
    "/endpoints/{endpoint_id}/messages",
    response_model=list[MessagePublic],
    summary="Messages for this endpoint, newest first (status `dead` is the dead-letter store)",
)
def list_messages(
    endpoint_id: str,
    session: SessionDep,
    caller: CallerDep,
    status_: Annotated[MessageStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[MessagePublic]:
    endpoint = _visible(session, caller, endpoint_id)
    query = select(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint.id)
    if status_ is not None:
        query = query.where(WebhookMessage.status == status_)
    query = query.order_by(col(WebhookMessage.created_at).desc(), col(WebhookMessage.id)).offset(offset).limit(limit)
    return [_message_public(message) for message in session.exec(query).all()]


@router.get(
    "/endpoints/{endpoint_id}/attempts",
    response_model=list[AttemptPublic],
    summary="Delivery log: every attempt with status, latency and the start of the response",
)
def list_attempts(
    endpoint_id: str,
    session: SessionDep,
    caller: CallerDep,
    message_id: Annotated[str | None, Query(description="only this message's attempts")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[AttemptPublic]:
    endpoint = _visible(session, caller, endpoint_id)
    query = select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint.id)
    if message_id is not None:
        query = query.where(WebhookAttempt.message_id == message_id)
    query = query.order_by(col(WebhookAttempt.id).desc()).offset(offset).limit(limit)
    return [_attempt_public(attempt) for attempt in session.exec(query).all()]


def _attempt_public(attempt: WebhookAttempt) -> AttemptPublic:
    values: dict[str, Any] = attempt.model_dump()
    values["at"] = as_utc(attempt.at)
    return AttemptPublic(**values)


@router.post(
    "/endpoints/{endpoint_id}/messages/{message_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessagePublic,
    summary="Send one message again (same webhook-id, fresh timestamp and signature)",
)
def replay_message(endpoint_id: str, message_id: str, session: SessionDep, caller: CallerDep) -> MessagePublic:
    endpoint = _visible(session, caller, endpoint_id)
    _refuse_disabled(endpoint)
    message = _message(session, endpoint, message_id)
    requeue(message, now=utcnow())
    session.add(message)
    _audit_replay(session, caller, endpoint, [message])
    session.commit()
    return _message_public(message)


@router.post(
    "/endpoints/{endpoint_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Replayed,
    summary="Send again every delivered or dead message created since a time",
)
def replay_since(
    endpoint_id: str,
    session: SessionDep,
    caller: CallerDep,
    since: Annotated[datetime, Query(description="ISO 8601; without a zone it is UTC")],
    status_: Annotated[
        Literal["delivered", "dead"] | None, Query(alias="status", description="only these (e.g. dead)")
    ] = None,
) -> Replayed:
    endpoint = _visible(session, caller, endpoint_id)
    _refuse_disabled(endpoint)
    statuses = [status_] if status_ else [MessageStatus.DELIVERED.value, MessageStatus.DEAD.value]
    messages = session.exec(
        select(WebhookMessage)
        .where(
            WebhookMessage.endpoint_id == endpoint.id,
            col(WebhookMessage.created_at) >= as_utc(since),
            col(WebhookMessage.status).in_(statuses),
        )
        .order_by(col(WebhookMessage.created_at))
    ).all()
    now = utcnow()
    for message in messages:
        requeue(message, now=now)
        session.add(message)
    _audit_replay(session, caller, endpoint, messages, since=as_utc(since).isoformat(), status=status_)
    session.commit()
    return Replayed(replayed=len(messages), message_ids=[message.id for message in messages])


def _audit_replay(
    session: Session, caller: ApiKey, endpoint: WebhookEndpoint, messages: Sequence[WebhookMessage], **detail: Any
) -> None:
    """One audit entry per replay request, naming the messages sent again."""
    audit.record(
        session,
        audit.Actor.of(caller),
        AuditAction.WEBHOOK_REPLAY,
        "webhook_endpoint",
        endpoint.id,
        messages=[message.id for message in messages],
        **detail,
    )
