"""Webhook delivery with an injected clock, transport and resolver: no real waits, no network."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest
from sqlmodel import Session, select

from services.notifier.delivery import RETRY_SCHEDULE_S, parse_retry_after, retry_delay_s
from shared.models import Notification
from shared.webhooks.endpoints import rotate_secret
from shared.webhooks.models import ORGANIZERS_INBOX, EndpointState, MessageStatus, WebhookEndpoint, as_utc
from shared.webhooks.signing import verify
from tests.services.notifier.conftest import (
    PEPPER,
    PUBLIC_ADDRESS,
    Script,
    add_endpoint,
    attempts,
    endpoint,
    message,
    queue,
)


def verified(request: httpx.Request, secret: str, clock) -> None:
    verify(secret, dict(request.headers), request.content, now=clock.now.timestamp())


def test_500_then_200_is_two_attempts_with_the_same_webhook_id(any_engine, clock, make_worker):
    endpoint_id, secret = add_endpoint(any_engine)
    message_id = queue(any_engine, endpoint_id, clock)
    script = Script(httpx.Response(500, text="boom"), httpx.Response(200, text="thanks"))
    worker = make_worker(any_engine, script.transport)

    assert worker.deliver_due() == 1
    first = message(any_engine, message_id)
    assert first.status == MessageStatus.PENDING and first.attempts == 1
    assert as_utc(first.next_attempt_at) == clock.now + timedelta(seconds=5)
    assert endpoint(any_engine, endpoint_id).failing_since is not None

    assert worker.deliver_due() == 0, "not due before its retry time"
    clock.advance(5)
    assert worker.deliver_due() == 1

    done = message(any_engine, message_id)
    assert done.status == MessageStatus.DELIVERED and as_utc(done.delivered_at) == clock.now
    assert [request.headers["webhook-id"] for request in script.requests] == [message_id, message_id]
    first_ts, second_ts = (int(request.headers["webhook-timestamp"]) for request in script.requests)
    assert second_ts - first_ts == 5, "each attempt is signed with its own timestamp"
    verified(script.requests[1], secret, clock)
    log = attempts(any_engine)
    assert [(a.attempt, a.status_code, a.outcome) for a in log] == [(1, 500, "retry"), (2, 200, "delivered")]
    assert log[0].response_excerpt == "boom" and log[0].error == "HTTP 500" and log[1].latency_ms >= 0
    assert endpoint(any_engine, endpoint_id).failing_since is None, "a success ends the failure streak"


def test_the_request_goes_to_the_checked_address_with_the_registered_host(sqlite_engine, clock, make_worker):
    endpoint_id, _ = add_endpoint(sqlite_engine)
    queue(sqlite_engine, endpoint_id, clock, body='{"type":"match.proposed","n":1}')
    script = Script(httpx.Response(204))
    make_worker(sqlite_engine, script.transport).deliver_due()
    [request] = script.requests
    assert request.url.host == PUBLIC_ADDRESS and request.url.path == "/salon"
    assert request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.extensions["timeout"]["read"] == 15.0
    assert request.headers["content-type"] == "application/json"
    assert request.content == b'{"type":"match.proposed","n":1}'


def test_410_disables_the_endpoint_and_dead_letters_its_queue(sqlite_engine, clock, make_worker):
    endpoint_id, _ = add_endpoint(sqlite_engine)
    first, second = queue(sqlite_engine, endpoint_id, clock), queue(sqlite_engine, endpoint_id, clock)
    script = Script(httpx.Response(410))
    make_worker(sqlite_engine, script.transport, concurrency=1).deliver_due()

    assert len(script.requests) == 1, "nothing more is sent once the receiver said Gone"
    disabled = endpoint(sqlite_engine, endpoint_id)
    assert disabled.state == EndpointState.DISABLED and "410" in disabled.state_reason
    assert {message(sqlite_engine, m).status for m in (first, second)} == {MessageStatus.DEAD}
    with Session(sqlite_engine) as session:
        told = {row.recipient for row in session.exec(select(Notification)).all()}
    assert told == {"fund", ORGANIZERS_INBOX}


def test_429_with_retry_after_waits_that_long(sqlite_engine, clock, make_worker):
    endpoint_id, _ = add_endpoint(sqlite_engine)
    message_id = queue(sqlite_engine, endpoint_id, clock)
    script = Script(httpx.Response(429, headers={"retry-after": "120"}), httpx.Response(200))
    worker = make_worker(sqlite_engine, script.transport)
    worker.deliver_due()
    assert as_utc(message(sqlite_engine, message_id).next_attempt_at) == clock.now + timedelta(seconds=120)
    clock.advance(119)
    assert worker.deliver_due() == 0
    clock.advance(1)
    assert worker.deliver_due() == 1
    assert message(sqlite_engine, message_id).status == MessageStatus.DELIVERED


def test_503_with_a_retry_after_date_is_honoured(sqlite_engine, clock, make_worker):
    endpoint_id, _ = add_endpoint(sqlite_engine)
    message_id = queue(sqlite_engine, endpoint_id, clock)
    when = format_datetime(clock.now + timedelta(minutes=10), usegmt=True)
    script = Script(httpx.Response(503, headers={"retry-after": when}))
    make_worker(sqlite_engine, script.transport).deliver_due()
    assert as_utc(message(sqlite_engine, message_id).next_attempt_at) == clock.now + timedelta(minutes=10)


def test_a_redirect_is_not_followed(sqlite_engine, clock, make_worker):
    endpoint_id, _ = add_endpoint(sqlite_engine)
    message_id = queue(sqlite_engine, endpoint_id, clock)
    script = Script(httpx.Response(302, headers={"location": "http://169.254.169.254/latest/meta-data/"}))
    make_worker(sqlite_engine, script.transport).deliver_due()
    assert len(script.requests) == 1 and script.requests[0].url.host == PUBLIC_ADDRESS
    [attempt] = attempts(sqlite_engine)
    assert attempt.status_code == 302 and "redirect not followed" in (attempt.error or "")
    assert message(sqlite_engine, message_id).status == MessageStatus.PENDING, "a redirect is a failure: retried"


def test_a_timeout_is_a_failure(sqlite_engine, clock, make_worker):
    endpoint_id, _ = add_endpoint(sqlite_engine)
    message_id = queue(sqlite_engine, endpoint_id, clock)
    script = Script(httpx.ReadTimeout("too slow"))
    make_worker(sqlite_engine, script.transport).deliver_due()
    [attempt] = attempts(sqlite_engine)
    assert attempt.status_code is None and attempt.error == "timed out after 15s" and attempt.outcome == "retry"
    assert message(sqlite_engine, message_id).attempts == 1


def test_the_schedule_runs_out_into_the_dead_letter_store(sqlite_engine, clock, make_worker):
    endpoint_id, _ = add_endpoint(sqlite_engine)
    message_id = queue(sqlite_engine, endpoint_id, clock)
    worker = make_worker(sqlite_engine, Script(httpx.Response(500)).transport, disable_after_s=30 * 86400)
    delays = []
    while message(sqlite_engine, message_id).status == MessageStatus.PENDING:
        before = clock.now
        assert worker.deliver_due() == 1
        row = message(sqlite_engine, message_id)
        if row.next_attempt_at is not None:
            delays.append((as_utc(row.next_attempt_at) - before).total_seconds())
            clock.now = as_utc(row.next_attempt_at)
    assert tuple(delays) == RETRY_SCHEDULE_S == (5, 300, 1800, 7200, 18000, 36000, 36000)
    dead = message(sqlite_engine, message_id)
    assert dead.status == MessageStatus.DEAD and dead.attempts == len(RETRY_SCHEDULE_S) + 1
    assert attempts(sqlite_engine)[-1].outcome == "dead"
    assert endpoint(sqlite_engine, endpoint_id).state == EndpointState.ACTIVE, "one dead message is not days"


def test_an_endpoint_failing_for_five_days_is_disabled_and_the_organizers_told(sqlite_engine, clock, make_worker):
    endpoint_id, _ = add_endpoint(sqlite_engine)
    worker = make_worker(sqlite_engine, Script(httpx.Response(500)).transport)
    queue(sqlite_engine, endpoint_id, clock)
    worker.deliver_due()
    started = endpoint(sqlite_engine, endpoint_id).failing_since
    assert started is not None and as_utc(started) == clock.now

    clock.advance(4 * 86400)
    queue(sqlite_engine, endpoint_id, clock)
    worker.deliver_due()
    assert endpoint(sqlite_engine, endpoint_id).state == EndpointState.ACTIVE

    clock.advance(86400)
    late = queue(sqlite_engine, endpoint_id, clock)
    worker.deliver_due()
    disabled = endpoint(sqlite_engine, endpoint_id)
    assert disabled.state == EndpointState.DISABLED and "5.0 days" in disabled.state_reason
    assert message(sqlite_engine, late).status == MessageStatus.DEAD
    with Session(sqlite_engine) as session:
        [note] = session.exec(select(Notification).where(Notification.recipient == ORGANIZERS_INBOX)).all()
    assert note.type == "webhook.endpoint_disabled" and note.payload["endpoint_id"] == endpoint_id


def test_a_host_that_now_resolves_privately_is_not_contacted(sqlite_engine, clock, dns, make_worker):
    endpoint_id, _ = add_endpoint(sqlite_engine)
    message_id = queue(sqlite_engine, endpoint_id, clock)
    dns.records["hooks.example.com"] = ["10.0.0.7"]  # DNS rebinding after registration
    script = Script(httpx.Response(200))
    make_worker(sqlite_engine, script.transport).deliver_due()
    assert script.requests == []
    [attempt] = attempts(sqlite_engine)
    assert attempt.error is not None and attempt.error.startswith("refused:") and "10.0.0.7" in attempt.error
    assert message(sqlite_engine, message_id).status == MessageStatus.PENDING


def test_a_paused_endpoint_holds_its_messages_until_resumed(sqlite_engine, clock, make_worker):
    endpoint_id, _ = add_endpoint(sqlite_engine, state=EndpointState.PAUSED)
    message_id = queue(sqlite_engine, endpoint_id, clock)
    script = Script(httpx.Response(200))
    worker = make_worker(sqlite_engine, script.transport)
    assert worker.deliver_due() == 0
    with Session(sqlite_engine) as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        row.state = EndpointState.ACTIVE
        session.add(row)
        session.commit()
    assert worker.deliver_due() == 1
    assert message(sqlite_engine, message_id).status == MessageStatus.DELIVERED


def test_during_a_rotation_both_secrets_sign(sqlite_engine, clock, make_worker):
    endpoint_id, old = add_endpoint(sqlite_engine)
    with Session(sqlite_engine) as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        new = rotate_secret(row, pepper=PEPPER, overlap=timedelta(hours=24), now=clock.now)
        session.add(row)
        session.commit()
    script = Script(httpx.Response(200))
    worker = make_worker(sqlite_engine, script.transport)
    queue(sqlite_engine, endpoint_id, clock)
    worker.deliver_due()
    for secret in (old, new):
        verified(script.requests[0], secret, clock)

    clock.advance(24 * 3600)
    queue(sqlite_engine, endpoint_id, clock)
    worker.deliver_due()
    assert len(script.requests[1].headers["webhook-signature"].split()) == 1, "the old secret stopped signing"
    verified(script.requests[1], new, clock)


def test_two_workers_never_hold_the_same_message_and_a_crashed_claim_is_resent_with_its_id(
    any_engine, clock, make_worker
):
    endpoint_id, _ = add_endpoint(any_engine)
    message_id = queue(any_engine, endpoint_id, clock)
    script = Script(httpx.Response(200))
    crashed, survivor = make_worker(any_engine, script.transport), make_worker(any_engine, script.transport)

    claimed = crashed._claim(10)  # claims, then "dies" before sending
    assert [item.message_id for item in claimed] == [message_id]
    assert survivor.deliver_due() == 0, "the claim is leased to the first worker"

    clock.advance(crashed._lease.total_seconds() + 1)
    assert survivor.deliver_due() == 1
    assert [request.headers["webhook-id"] for request in script.requests] == [message_id]
    assert message(any_engine, message_id).status == MessageStatus.DELIVERED


def test_a_late_result_after_a_lost_lease_is_logged_but_changes_nothing(sqlite_engine, clock, make_worker):
    endpoint_id, _ = add_endpoint(sqlite_engine)
    message_id = queue(sqlite_engine, endpoint_id, clock)
    script = Script(httpx.Response(200))
    slow, fast = make_worker(sqlite_engine, script.transport), make_worker(sqlite_engine, script.transport)
    [item] = slow._claim(10)
    clock.advance(slow._lease.total_seconds() + 1)
    fast.deliver_due()
    slow._record([(item, slow.send(item))])
    assert [a.outcome for a in attempts(sqlite_engine)] == ["delivered", "superseded"]
    assert message(sqlite_engine, message_id).attempts == 1


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.9), (0.5, 1.0), (0.999999, 1.1)])
def test_jitter_is_ten_percent_either_way(rand, factor):
    assert retry_delay_s(2, rand=lambda: rand) == pytest.approx(300 * factor, rel=1e-4)


def test_retry_after_only_lengthens_the_wait_and_is_capped():
    assert retry_delay_s(3, rand=lambda: 0.5, retry_after_s=10) == 1800
    assert retry_delay_s(1, rand=lambda: 0.5, retry_after_s=10**9) == 86400
    assert retry_delay_s(len(RETRY_SCHEDULE_S) + 1, rand=lambda: 0.5) is None


@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), ("soon", None), (None, None), ("", None)])
def test_parse_retry_after(value, seconds, clock):
    assert parse_retry_after(value, now=clock.now) == seconds


def test_the_running_worker_delivers_what_is_queued_and_stops_cleanly(sqlite_engine, clock, make_worker):
    endpoint_id, _ = add_endpoint(sqlite_engine)
    script = Script(httpx.Response(204))
    worker = make_worker(sqlite_engine, script.transport, poll_interval_s=0.01)
    stop = threading.Event()
    thread = worker.start(stop)
    message_ids = [queue(sqlite_engine, endpoint_id, clock) for _ in range(7)]
    worker.wake()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        message(sqlite_engine, m).status != MessageStatus.DELIVERED for m in message_ids
    ):
        time.sleep(0.02)
    stop.set()
    worker.wake()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert sorted(request.headers["webhook-id"] for request in script.requests) == sorted(message_ids)
    assert worker.stats["delivered"] == 7
