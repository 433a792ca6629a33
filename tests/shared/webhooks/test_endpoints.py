"""Endpoint lifecycle: rotation overlap decides which secrets sign; disabling dead-letters and tells."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from shared.models import Notification, utcnow
from shared.webhooks.endpoints import disable_endpoint, new_endpoint, rotate_secret, signing_secrets
from shared.webhooks.models import ORGANIZERS_INBOX, EndpointState, MessageStatus, WebhookMessage
from shared.webhooks.queue import queue_message

PEPPER = "endpoint-test-pepper-0123456789"


def make_endpoint():
    return new_endpoint(
        owner="fund",
        url="https://hooks.example.com/",
        event_types=["match.proposed"],
        description="",
        pepper=PEPPER,
        now=utcnow(),
    )


def test_the_secret_is_stored_sealed_and_signs():
    endpoint, secret = make_endpoint()
    assert secret not in endpoint.secret_sealed
    assert signing_secrets(endpoint, pepper=PEPPER, now=utcnow()) == [secret]


def test_after_rotation_both_secrets_sign_until_the_overlap_ends():
    endpoint, old = make_endpoint()
    now = utcnow()
    new = rotate_secret(endpoint, pepper=PEPPER, overlap=timedelta(hours=24), now=now)
    assert signing_secrets(endpoint, pepper=PEPPER, now=now + timedelta(hours=23)) == [new, old]
    assert signing_secrets(endpoint, pepper=PEPPER, now=now + timedelta(hours=24)) == [new]


def test_rotation_without_overlap_retires_the_old_secret_at_once():
    endpoint, _old = make_endpoint()
    new = rotate_secret(endpoint, pepper=PEPPER, overlap=timedelta(0), now=utcnow())
    assert signing_secrets(endpoint, pepper=PEPPER, now=utcnow()) == [new]


def test_disabling_dead_letters_pending_messages_and_tells_owner_and_organizers(any_engine):
    endpoint, _ = make_endpoint()
    now = utcnow()
    with Session(any_engine, expire_on_commit=False) as session:
        session.add(endpoint)
        for event_id in ("9f1c1c1e-0000-4000-8000-000000000001", "9f1c1c1e-0000-4000-8000-000000000002"):
            queue_message(
                session, endpoint, event_id=event_id, event_type="match.proposed", body="{}", occurred_at=now, now=now
            )
        session.commit()
        assert disable_endpoint(session, endpoint, reason="the receiver answered 410 Gone", now=now) is True
        session.commit()
        assert disable_endpoint(session, endpoint, reason="again", now=now) is False, "disabled once, told once"
        assert endpoint.state == EndpointState.DISABLED
        assert {m.status for m in session.exec(select(WebhookMessage)).all()} == {MessageStatus.DEAD}
        inbox = session.exec(select(Notification)).all()
    assert {row.recipient for row in inbox} == {"fund", ORGANIZERS_INBOX}
    assert all(row.type == "webhook.endpoint_disabled" and row.subject == endpoint.id for row in inbox)
    assert inbox[0].payload["reason"] == "the receiver answered 410 Gone"
