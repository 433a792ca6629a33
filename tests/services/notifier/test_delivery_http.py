"""Real HTTP on loopback: a receiver checks every delivery with the independent `standardwebhooks` library."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.notifier.delivery import DeliveryWorker
from shared.models import utcnow
from shared.webhooks.endpoints import rotate_secret
from shared.webhooks.models import MessageStatus, WebhookEndpoint
from tests.services.notifier.conftest import PEPPER, add_endpoint, attempts, message, queue
from tests.webhook_receiver import Received, Receiver

BODY = '{"type":"match.proposed","timestamp":"2025-05-01T08:00:00Z","data":{"title":"高纯石墨负极材料深加工"}}'


class RealClock:
    """Wall time, optionally skewed (to sign with an old timestamp)."""

    def __init__(self, skew_s: float = 0) -> None:
        self.skew = timedelta(seconds=skew_s)

    def __call__(self):
        return utcnow() + self.skew

    @property
    def now(self):
        return self()


def verifying(*secrets: str):
    """The receiver's check: 204 when the library verifies the request under every given secret, else 400."""

    def answer(request: Received) -> int:
        try:
            for secret in secrets:
                Webhook(secret).verify(request.body, request.headers)
        except WebhookVerificationError:
            return 400
        return 204

    return answer


def loopback_worker(engine, clock, **options) -> DeliveryWorker:
    # The real transport and system resolver: only the development setting makes loopback reachable.
    return DeliveryWorker(engine, pepper=PEPPER, allow_loopback=True, clock=clock, concurrency=2, **options)


def test_a_delivery_verifies_and_a_changed_byte_does_not(sqlite_engine):
    clock = RealClock()
    with Receiver() as receiver:
        endpoint_id, secret = add_endpoint(sqlite_engine, url=receiver.url)
        receiver.answer = verifying(secret)
        message_id = queue(sqlite_engine, endpoint_id, clock, body=BODY)
        worker = loopback_worker(sqlite_engine, clock)
        try:
            assert worker.deliver_due() == 1
        finally:
            worker.close()
        [request] = receiver.requests
    assert request.path == "/hooks/salon" and request.headers["webhook-id"] == message_id
    assert Webhook(secret).verify(request.body, request.headers)["data"]["title"] == "高纯石墨负极材料深加工"
    changed = bytearray(request.body)
    changed[10] ^= 1
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(bytes(changed), request.headers)
    assert message(sqlite_engine, message_id).status == MessageStatus.DELIVERED
    [attempt] = attempts(sqlite_engine)
    assert attempt.status_code == 204 and attempt.latency_ms < 5000


def test_a_timestamp_six_minutes_old_fails_at_the_receiver(sqlite_engine):
    clock = RealClock(skew_s=-360)
    with Receiver() as receiver:
        endpoint_id, secret = add_endpoint(sqlite_engine, url=receiver.url)
        receiver.answer = verifying(secret)
        message_id = queue(sqlite_engine, endpoint_id, clock, body=BODY)
        worker = loopback_worker(sqlite_engine, clock)
        try:
            worker.deliver_due()
        finally:
            worker.close()
    [attempt] = attempts(sqlite_engine)
    assert attempt.status_code == 400 and attempt.response_excerpt == "verification failed"
    assert message(sqlite_engine, message_id).status == MessageStatus.PENDING, "refused: retried later"


def test_both_secrets_verify_during_a_rotation(sqlite_engine):
    clock = RealClock()
    with Receiver() as receiver:
        endpoint_id, old = add_endpoint(sqlite_engine, url=receiver.url)
        with Session(sqlite_engine) as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            new = rotate_secret(endpoint, pepper=PEPPER, overlap=timedelta(hours=24), now=clock.now)
            session.add(endpoint)
            session.commit()
        receiver.answer = verifying(old, new)
        message_id = queue(sqlite_engine, endpoint_id, clock, body=BODY)
        worker = loopback_worker(sqlite_engine, clock)
        try:
            worker.deliver_due()
        finally:
            worker.close()
    assert message(sqlite_engine, message_id).status == MessageStatus.DELIVERED


def test_without_the_development_setting_loopback_is_never_contacted(sqlite_engine):
    clock = RealClock()
    with Receiver() as receiver:
        endpoint_id, _ = add_endpoint(sqlite_engine, url=receiver.url)
        queue(sqlite_engine, endpoint_id, clock, body=BODY)
        worker = DeliveryWorker(sqlite_engine, pepper=PEPPER, clock=clock)
        try:
            worker.deliver_due()
        finally:
            worker.close()
        assert receiver.requests == []
    [attempt] = attempts(sqlite_engine)
    assert attempt.error is not None and attempt.error.startswith("refused:")
