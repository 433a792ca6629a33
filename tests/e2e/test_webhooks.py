"""End to end: a POSTed pitch that matches a fund's mandate reaches the fund's own HTTP receiver as
a `match.proposed` webhook that the independent `standardwebhooks` library verifies; a notifier
killed with -9 and restarted forgets nothing and sends nothing twice under a new id."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlmodel import Session, select
from standardwebhooks import Webhook

from services.launcher import Platform
from shared.models import Role
from shared.webhooks.models import MessageStatus, WebhookMessage
from tests.payloads import MANDATE, PITCH
from tests.webhook_receiver import Received, Receiver


def proposals_for(receiver: Receiver, secret: str, subject: str) -> list[tuple[Received, dict]]:
    found = []
    for request in list(receiver.requests):
        body = Webhook(secret).verify(request.body, request.headers)  # raises unless authentic and fresh
        if body["type"] == "match.proposed" and body["data"]["subject"]["id"] == subject:
            found.append((request, body))
    return found


def wait_for_counterpart(receiver: Receiver, secret: str, subject: str, counterpart: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request, body in proposals_for(receiver, secret, subject):
            if body["data"]["counterpart"]["id"] == counterpart:
                return request, body
        time.sleep(0.3)
    raise AssertionError(f"no verified match.proposed for {subject} with {counterpart}; got {len(receiver.requests)}")


@pytest.mark.parametrize("platform", ["sqlite"], indirect=True)
def test_a_matching_pitch_reaches_the_funds_receiver_signed(platform: Platform, headers_for):
    fund = headers_for(Role.FUND, "黑龙江省新材料产业引导基金")
    enterprise = headers_for(Role.ENTERPRISE, "鹤岗碳材科技")
    with Receiver() as receiver, httpx.Client(base_url=platform.api_url, timeout=30) as http:
        created = http.post(
            "/v1/webhooks/endpoints",
            json={"url": receiver.url, "event_types": ["match.proposed"], "description": "fund CRM"},
            headers=fund,
        )
        assert created.status_code == 201, created.text
        endpoint_id, secret = created.json()["id"], created.json()["secret"]

        mandate_id = http.post("/v1/mandates", json=MANDATE, headers=fund).json()["id"]
        pitch_id = http.post("/v1/pitches", json=PITCH, headers=enterprise).json()["id"]
        request, body = wait_for_counterpart(receiver, secret, mandate_id, pitch_id)

        data = body["data"]
        assert data["counterpart"] == {"kind": "pitch", "id": pitch_id, "title": PITCH["title"]}
        assert data["score"] > 0 and data["reasons"] and data["links"]["matches"] == f"/v1/matches?subject={mandate_id}"
        raw = request.body.decode()
        assert PITCH["summary"] not in raw and "owner" not in raw, "no confidential pitch details"
        first_id = request.headers["webhook-id"]

        log = http.get(f"/v1/webhooks/endpoints/{endpoint_id}/attempts", headers=fund).json()
        assert any(a["message_id"] == first_id and a["status_code"] == 204 for a in log)
        messages = http.get(f"/v1/webhooks/endpoints/{endpoint_id}/messages", headers=fund).json()
        assert {m["id"]: m["status"] for m in messages}[first_id] == "delivered"

        # kill -9 the notifier; what is matched meanwhile is delivered after its restart.
        platform.services["notifier"].kill()
        second = {**PITCH, "title": "石墨负极二期扩产"}
        second_id = http.post("/v1/pitches", json=second, headers=enterprise).json()["id"]
        platform.services["notifier"].start()
        request, body = wait_for_counterpart(receiver, secret, mandate_id, second_id)
        assert body["data"]["counterpart"]["title"] == "石墨负极二期扩产"

        # Every message the database holds was delivered, under its one id and with one body;
        # a repeat (at-least-once) is allowed only as the same id.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with Session(platform.engine) as session:
                messages = session.exec(select(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint_id)).all()
            if all(m.status == MessageStatus.DELIVERED for m in messages):
                break
            time.sleep(0.3)
        bodies: dict[str, set[bytes]] = {}
        for received in receiver.requests:
            bodies.setdefault(received.headers["webhook-id"], set()).add(received.body)
        assert all(m.status == MessageStatus.DELIVERED for m in messages)
        assert set(bodies) == {m.id for m in messages}
        assert all(len(variants) == 1 for variants in bodies.values())
