"""Webhook delivery: due messages in the database → signed POSTs, retried on a schedule.

The database is the queue, so deliveries survive restarts of the notifier and of the
broker. A worker claims due messages with a lease (like the outbox relay), so several
notifier replicas never send the same message at once; a worker that dies mid-send leaves
its claim to expire and the message is sent again later under the same `webhook-id`.

Per attempt: the URL is re-checked (SSRF) and the connection goes to the checked address
while Host and TLS SNI carry the registered host name; redirects are not followed; only
2xx counts. 410 disables the endpoint; 429/503 wait at least their `Retry-After`; anything
else retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (±10 % jitter), then the
message is dead. An endpoint failing continuously for `disable_after_s` is disabled, and
its owner and the organizers are told through their notification inboxes.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared import faults, metrics
from shared.bus import RetryableError
from shared.db import transaction
from shared.models import utcnow
from shared.settings import Settings
from shared.webhooks.endpoints import disable_endpoint, signing_secrets
from shared.webhooks.models import (
    EndpointState,
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    as_utc,
)
from shared.webhooks.signing import webhook_headers
from shared.webhooks.ssrf import Resolver, WebhookUrlError, check_url, system_resolver
from shared.webhooks.vault import SealedSecretError

log = logging.getLogger(__name__)

RETRY_SCHEDULE_S: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER_FRACTION = 0.1
MAX_RETRY_AFTER_S = 86400  # a larger Retry-After is read as one day
EXCERPT_CHARS = 500
_READ_LIMIT_BYTES = 4096
_MAX_CLIENTS = 256
USER_AGENT = "salon-webhooks/1.0"

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Outcome:
    """What one HTTP attempt produced."""

    status_code: int | None
    latency_ms: int
    excerpt: str = ""
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Claimed:
    """A claimed message with everything needed to send it, read before any network I/O."""

    token: str  # the claim this item was taken under
    message_id: str
    endpoint_id: str
    url: str
    body: bytes
    secrets: tuple[str, ...]
    problem: str | None = None  # set when it cannot be sent at all (a secret that does not open)


def retry_delay_s(attempts_done: int, *, rand: Callable[[], float], retry_after_s: float | None = None) -> float | None:
    """Seconds until the next attempt after `attempts_done` failures; None once the schedule is spent."""
    if attempts_done > len(RETRY_SCHEDULE_S):
        return None
    delay = RETRY_SCHEDULE_S[attempts_done - 1] * (1 + JITTER_FRACTION * (2 * rand() - 1))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return delay


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (as_utc(moment) - now).total_seconds())


class DeliveryWorker:
    """Claims due messages, sends them concurrently, records every attempt.

    Clock, HTTP transport, DNS resolver and jitter source are injectable for tests.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        pepper: str,
        allow_loopback: bool = False,
        timeout_s: float = 15.0,
        disable_after_s: float = 5 * 86400,
        poll_interval_s: float = 0.25,
        concurrency: int = 16,
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver = system_resolver,
        clock: Clock = utcnow,
        rand: Callable[[], float] = random.random,
        name: str | None = None,
    ) -> None:
        self._engine = engine
        self._pepper = pepper
        self._allow_loopback = allow_loopback
        self._timeout_s = timeout_s
        self._disable_after = timedelta(seconds=disable_after_s)
        self._poll_interval_s = poll_interval_s
        self._transport = transport
        self._resolver = resolver
        self._clock = clock
        self._rand = rand
        self.name = name or f"webhooks-{uuid.uuid4().hex[:8]}"
        self._queue_depth = concurrency * 2  # claimed ahead, so a freed slot never waits for the database
        self._gone: dict[str, float] = {}  # endpoint id → when it answered 410 (monotonic)
        self._gone_lock = threading.Lock()
        # Long enough for two rounds of attempts that all time out, so a claim never lapses mid-send.
        self._lease = timedelta(seconds=2 * (timeout_s + 5) + 30)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"{self.name}-send")
        self._clients: dict[str, httpx.Client] = {}
        self._clients_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._wake = threading.Event()
        self.stats = {"attempts": 0, "delivered": 0, "failed": 0, "dead": 0, "endpoints_disabled": 0}

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings, **overrides: Any) -> DeliveryWorker:
        options: dict[str, Any] = {
            "pepper": settings.api_key_pepper,
            "allow_loopback": settings.webhook_allow_loopback,
            "timeout_s": settings.webhook_timeout_s,
            "disable_after_s": settings.webhook_disable_after_s,
            "poll_interval_s": settings.webhook_poll_ms / 1000,
            "concurrency": settings.webhook_concurrency,
        }
        options.update(overrides)
        return cls(engine, **options)

    # --- loop ------------------------------------------------------------------------
    def wake(self) -> None:
        """Look for due messages now (called when this process queued some)."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Keep up to 2×concurrency messages claimed and in flight; record finished ones in batches.

        Pipelined rather than in rounds, so one slow receiver (up to the timeout) holds one
        slot, not everyone's next round.
        """
        in_flight: set[Future[tuple[Claimed, Outcome] | None]] = set()
        unrecorded: list[tuple[Claimed, Outcome]] = []
        backoff = self._poll_interval_s
        while not stop.is_set():
            self._wake.clear()
            try:
                finished = {future for future in in_flight if future.done()}
                in_flight -= finished
                unrecorded.extend(result for future in finished if (result := future.result()) is not None)
                if unrecorded:
                    faults.reach("after_send_before_record")  # the receiver has them; our log does not
                    self._record(unrecorded)
                    unrecorded = []
                # Claim in batches (when at least half the queue is free) to spare the database.
                free = self._queue_depth - len(in_flight)
                claimed = self._claim(free) if free >= self._queue_depth // 2 else []
                for item in claimed:
                    future = self._pool.submit(self._send_unless_gone, item)
                    future.add_done_callback(lambda _done: self._wake.set())
                    in_flight.add(future)
                backoff = self._poll_interval_s
                if claimed or finished:
                    continue
            except RetryableError as exc:  # results stay in `unrecorded` and are recorded next time
                log.warning("webhook worker %s: database unavailable, will retry: %s", self.name, exc)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("webhook worker %s failed; retrying", self.name)
                backoff = min(backoff * 2, 5.0)
            self._wake.wait(backoff)
        # Stopping: let attempts in flight finish and record them, so nothing is sent twice needlessly.
        wait(in_flight, timeout=self._timeout_s + 5)
        unrecorded.extend(result for future in in_flight if future.done() and (result := future.result()) is not None)
        if unrecorded:
            try:
                self._record(unrecorded)
            except RetryableError as exc:  # their claims lapse and they are sent again, same webhook-id
                log.warning("webhook worker %s: could not record %d attempts: %s", self.name, len(unrecorded), exc)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name=self.name, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._clients_lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def deliver_due(self) -> int:
        """One round, synchronously: claim due messages, send them, record the attempts.

        Returns how many were claimed. (`run` does the same continuously.)
        """
        claimed = self._claim(self._queue_depth)
        futures = [self._pool.submit(self._send_unless_gone, item) for item in claimed]
        wait(futures)
        results = [result for future in futures if (result := future.result()) is not None]
        if results:
            self._record(results)
        return len(claimed)

    # --- claiming --------------------------------------------------------------------
    def _claim(self, limit: int) -> list[Claimed]:
        now = self._clock()
        token = f"{self.name}:{uuid.uuid4().hex[:12]}"
        active = select(WebhookEndpoint.id).where(WebhookEndpoint.state == EndpointState.ACTIVE)
        due = and_(
            col(WebhookMessage.status) == MessageStatus.PENDING,
            col(WebhookMessage.next_attempt_at) <= now,
            or_(col(WebhookMessage.claimed_until).is_(None), col(WebhookMessage.claimed_until) < now),
            col(WebhookMessage.endpoint_id).in_(active),
        )
        with transaction(self._engine) as session:
            ids = list(
                session.exec(
                    select(WebhookMessage.id).where(due).order_by(col(WebhookMessage.next_attempt_at)).limit(limit)
                )
            )
            if not ids:
                return []
            # Re-checks `due`: a replica that claimed the same rows first wins them.
            session.execute(
                update(WebhookMessage)
                .where(col(WebhookMessage.id).in_(ids), due)
                .values(claimed_by=token, claimed_until=now + self._lease)
            )
        with Session(self._engine) as session:
            messages = session.exec(select(WebhookMessage).where(WebhookMessage.claimed_by == token)).all()
            endpoint_ids = {message.endpoint_id for message in messages}
            endpoints = {
                endpoint.id: endpoint
                for endpoint in session.exec(select(WebhookEndpoint).where(col(WebhookEndpoint.id).in_(endpoint_ids)))
            }
            return [self._prepare(token, message, endpoints[message.endpoint_id], now) for message in messages]

    def _prepare(self, token: str, message: WebhookMessage, endpoint: WebhookEndpoint, now: datetime) -> Claimed:
        try:
            secrets = tuple(signing_secrets(endpoint, pepper=self._pepper, now=now))
            problem = None
        except SealedSecretError as exc:
            secrets, problem = (), f"cannot sign: {exc}"
        return Claimed(token, message.id, endpoint.id, endpoint.url, message.body.encode(), secrets, problem)

    def _send_unless_gone(self, item: Claimed) -> tuple[Claimed, Outcome] | None:
        """Runs in the pool. None (nothing sent) when the endpoint answered 410 moments ago:
        recording that disables the endpoint and dead-letters this message too."""
        with self._gone_lock:
            gone_at = self._gone.get(item.endpoint_id)
            if gone_at is not None and time.monotonic() - gone_at < self._lease.total_seconds():
                return None
        try:
            outcome = self.send(item)
        except Exception as exc:  # an attempt that broke is a failed attempt, logged with why
            log.exception("webhook attempt for %s failed unexpectedly", item.message_id)
            outcome = Outcome(None, 0, error=f"internal error: {type(exc).__name__}: {exc}"[:500])
        if outcome.status_code == 410:
            with self._gone_lock:
                self._gone[item.endpoint_id] = time.monotonic()
        return item, outcome

    # --- HTTP ------------------------------------------------------------------------
    def send(self, item: Claimed) -> Outcome:
        """One attempt; never raises for network or receiver trouble (that is the outcome)."""
        if item.problem:
            return Outcome(None, 0, error=item.problem)
        started = time.perf_counter()
        try:
            target = check_url(item.url, resolver=self._resolver, allow_loopback=self._allow_loopback)
        except WebhookUrlError as exc:
            return Outcome(None, _elapsed_ms(started), error=f"refused: {exc}")
        timestamp = int(self._clock().timestamp())
        headers = {
            **webhook_headers(item.secrets, item.message_id, timestamp, item.body),
            "content-type": "application/json",
            "host": target.host_header,
        }
        # Connect to the checked address; TLS still presents and verifies the registered name.
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            with self._client_for(target.host).stream(
                "POST", target.pinned_url, content=item.body, headers=headers, extensions=extensions
            ) as response:
                excerpt = _read_excerpt(response)
                status_code = response.status_code
                retry_after = response.headers.get("retry-after")
                location = response.headers.get("location")
        except httpx.TimeoutException:
            return Outcome(None, _elapsed_ms(started), error=f"timed out after {self._timeout_s:g}s")
        except httpx.HTTPError as exc:
            return Outcome(None, _elapsed_ms(started), error=f"{type(exc).__name__}: {exc}"[:500])
        error = None
        if 300 <= status_code < 400:
            error = f"redirect not followed (Location: {(location or '')[:200]})"
        elif not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
        retry_after_s = parse_retry_after(retry_after, now=self._clock()) if status_code in (429, 503) else None
        return Outcome(status_code, _elapsed_ms(started), excerpt, error, retry_after_s)

    def _client_for(self, host: str) -> httpx.Client:
        # One client per host name: a pooled connection (and its TLS session) is only ever
        # reused for the name it was verified for.
        with self._clients_lock:
            client = self._clients.get(host)
            if client is None:
                if len(self._clients) >= _MAX_CLIENTS:
                    oldest = next(iter(self._clients))
                    self._clients.pop(oldest).close()
                client = httpx.Client(
                    transport=self._transport or httpx.HTTPTransport(retries=0),
                    follow_redirects=False,
                    timeout=httpx.Timeout(self._timeout_s),
                    trust_env=False,  # an environment proxy would connect to the unchecked name
                    headers={"user-agent": USER_AGENT},
                )
                self._clients[host] = client
            return client

    # --- bookkeeping -----------------------------------------------------------------
    def _record(self, results: list[tuple[Claimed, Outcome]]) -> list[str | None]:
        """Log every attempt and apply its consequences, all in one transaction; returns the labels."""
        now = self._clock()
        labels: list[str | None] = []
        with transaction(self._engine) as session:
            # Two reads for the whole batch; changes are flushed together at commit.
            message_ids = [item.message_id for item, _ in results]
            endpoint_ids = {item.endpoint_id for item, _ in results}
            messages = {
                m.id: m for m in session.exec(select(WebhookMessage).where(col(WebhookMessage.id).in_(message_ids)))
            }
            endpoints = {
                e.id: e for e in session.exec(select(WebhookEndpoint).where(col(WebhookEndpoint.id).in_(endpoint_ids)))
            }
            for item, outcome in results:
                message, endpoint = messages.get(item.message_id), endpoints.get(item.endpoint_id)
                labels.append(self._record_one(session, message, endpoint, item, outcome, now))
        for (_item, outcome), label in zip(results, labels, strict=True):
            if label is not None:
                self._count(outcome, label)
        return labels

    def _record_one(
        self,
        session: Session,
        message: WebhookMessage | None,
        endpoint: WebhookEndpoint | None,
        item: Claimed,
        outcome: Outcome,
        now: datetime,
    ) -> str | None:
        if message is None or endpoint is None:
            return None  # the endpoint was deleted while we were sending
        if message.claimed_by != item.token or message.status != MessageStatus.PENDING:
            # Changed while in flight (lease lapsed, replayed, endpoint disabled): log it, change nothing.
            label, attempt_no = "superseded", message.attempts + 1
        else:
            message.attempts += 1
            attempt_no = message.attempts
            label = self._apply(session, message, endpoint, outcome, now)
            session.add(message)
        session.add(
            WebhookAttempt(
                endpoint_id=item.endpoint_id,
                message_id=item.message_id,
                attempt=attempt_no,
                at=now,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                response_excerpt=outcome.excerpt,
                error=outcome.error,
                outcome=label,
            )
        )
        return label

    def _apply(
        self, session: Session, message: WebhookMessage, endpoint: WebhookEndpoint, outcome: Outcome, now: datetime
    ) -> str:
        """Update the message and endpoint after one attempt; returns the attempt's outcome label."""
        message.claimed_by = None
        message.claimed_until = None
        message.last_status_code = outcome.status_code
        message.last_error = outcome.error
        if outcome.delivered:
            message.status = MessageStatus.DELIVERED
            message.delivered_at = now
            message.next_attempt_at = None
            if endpoint.failing_since is not None:
                endpoint.failing_since = None
                session.add(endpoint)
            return "delivered"
        if outcome.status_code == 410:
            return self._dead_and_disable(session, message, endpoint, "the receiver answered 410 Gone", now)
        endpoint.failing_since = endpoint.failing_since or now
        session.add(endpoint)
        failing_for = now - as_utc(endpoint.failing_since)
        if failing_for >= self._disable_after:
            reason = f"every attempt failed for {failing_for.total_seconds() / 86400:.1f} days"
            return self._dead_and_disable(session, message, endpoint, reason, now)
        delay = retry_delay_s(message.attempts, rand=self._rand, retry_after_s=outcome.retry_after_s)
        if delay is None:
            message.status = MessageStatus.DEAD
            message.next_attempt_at = None
            return "dead"
        message.next_attempt_at = now + timedelta(seconds=delay)
        return "retry"

    def _dead_and_disable(
        self, session: Session, message: WebhookMessage, endpoint: WebhookEndpoint, reason: str, now: datetime
    ) -> str:
        message.status = MessageStatus.DEAD
        message.next_attempt_at = None
        session.add(message)
        session.flush()  # before the bulk update in disable_endpoint
        if disable_endpoint(session, endpoint, reason=reason, now=now):
            log.warning("webhook endpoint %s (%s) disabled: %s", endpoint.id, endpoint.owner, reason)
        return "endpoint_disabled"

    def _count(self, outcome: Outcome, label: str) -> None:
        metrics.WEBHOOK_ATTEMPTS.labels(metrics.webhook_result(label)).inc()
        metrics.WEBHOOK_DURATION.labels(metrics.status_class(outcome.status_code)).observe(outcome.latency_ms / 1000)
        with self._stats_lock:
            self.stats["attempts"] += 1
            self.stats["delivered" if outcome.delivered else "failed"] += 1
            if label in ("dead", "endpoint_disabled"):
                self.stats["dead"] += 1
            if label == "endpoint_disabled":
                self.stats["endpoints_disabled"] += 1


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _read_excerpt(response: httpx.Response) -> str:
    """The start of the response body, without reading an unbounded body into memory."""
    received = bytearray()
    for chunk in response.iter_bytes():
        received.extend(chunk)
        if len(received) >= _READ_LIMIT_BYTES:
            break
    return received.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
