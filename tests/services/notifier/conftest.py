"""Webhook delivery fixtures: a fake clock, endpoints and queued messages in a real database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.notifier.delivery import DeliveryWorker
from shared.webhooks.endpoints import new_endpoint
from shared.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from shared.webhooks.queue import queue_message
from shared.webhooks.ssrf import UnresolvableHostError

PEPPER = "notifier-test-pepper-0123456789"
HOOK_URL = "https://hooks.example.com/salon"
PUBLIC_ADDRESS = "93.184.216.34"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class StubDns:
    """Resolves hooks.example.com to a public address; tests may point it elsewhere."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {"hooks.example.com": [PUBLIC_ADDRESS]}

    def __call__(self, host: str, port: int) -> Sequence[str]:
        if host not in self.records:
            raise UnresolvableHostError(host)
        return self.records[host]


@pytest.fixture
def dns() -> StubDns:
    return StubDns()


class Script:
    """A MockTransport handler answering from a list (the last answer repeats); records requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def add_endpoint(engine: Engine, *, owner: str = "fund", url: str = HOOK_URL, **changes: Any) -> tuple[str, str]:
    """Store an endpoint; returns (endpoint id, raw secret)."""
    endpoint, secret = new_endpoint(
        owner=owner, url=url, event_types=["match.proposed"], description="", pepper=PEPPER, now=FakeClock().now
    )
    for name, value in changes.items():
        setattr(endpoint, name, value)
    with Session(engine) as session:
        session.add(endpoint)
        session.commit()
        return endpoint.id, secret


def queue(engine: Engine, endpoint_id: str, clock: FakeClock, body: str = '{"type":"match.proposed"}') -> str:
    with Session(engine) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        message = queue_message(
            session,
            endpoint,
            event_id=str(uuid.uuid4()),
            event_type="match.proposed",
            body=body,
            occurred_at=clock.now,
            now=clock.now,
        )
        assert message is not None
        session.commit()
        return message.id


def message(engine: Engine, message_id: str) -> WebhookMessage:
    with Session(engine) as session:
        row = session.get(WebhookMessage, message_id)
        assert row is not None
        return row


def endpoint(engine: Engine, endpoint_id: str) -> WebhookEndpoint:
    with Session(engine) as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        return row


def attempts(engine: Engine) -> list[WebhookAttempt]:
    with Session(engine) as session:
        return list(session.exec(select(WebhookAttempt).order_by(WebhookAttempt.id)).all())


@pytest.fixture
def make_worker(clock: FakeClock, dns: StubDns) -> Callable[..., DeliveryWorker]:
    workers: list[DeliveryWorker] = []

    def make(engine: Engine, transport: httpx.BaseTransport | None = None, **options: Any) -> DeliveryWorker:
        settings: dict[str, Any] = {
            "pepper": PEPPER,
            "transport": transport,
            "resolver": dns,
            "clock": clock,
            "rand": lambda: 0.5,  # no jitter: delays are exactly the schedule
            "concurrency": 2,
        }
        settings.update(options)
        worker = DeliveryWorker(engine, **settings)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.close()
