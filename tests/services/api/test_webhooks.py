"""Webhook subscriptions over HTTP: secret shown once, 404 for others, 422 with nothing stored,
rotation, pause/resume, test event, delivery log and replay. DNS is a stub: nothing is contacted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlmodel import Session, select

from services.api.routes.webhooks import get_resolver
from services.notifier.delivery import DeliveryWorker
from shared.db import make_engine
from shared.models import Notification, Role
from shared.webhooks.catalogue import EVENT_TYPES
from shared.webhooks.endpoints import signing_secrets
from shared.webhooks.models import ORGANIZERS_INBOX, MessageStatus, WebhookEndpoint, WebhookMessage, as_utc
from shared.webhooks.queue import queue_message
from shared.webhooks.signing import decode_secret
from shared.webhooks.ssrf import UnresolvableHostError

URL = "https://crm.fund.example/hooks/salon"
DNS = {"crm.fund.example": ["93.184.216.34"], "intranet.fund.example": ["10.0.0.8"]}


def stub_resolver(host: str, port: int) -> Sequence[str]:
    if host not in DNS:
        raise UnresolvableHostError(host)
    return DNS[host]


@pytest.fixture(autouse=True)
def stub_dns(client):
    client.app.dependency_overrides[get_resolver] = lambda: stub_resolver
    yield
    client.app.dependency_overrides.clear()


@pytest.fixture
def engine(api_settings):
    engine = make_engine(api_settings.resolved_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def fund(key_for):
    return key_for(Role.FUND, "黑龙江省新材料产业引导基金")


def create(client, headers, **overrides) -> dict:
    response = client.post(
        "/v1/webhooks/endpoints", json={"url": URL, "event_types": ["match.proposed"], **overrides}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def endpoints_stored(engine) -> list[WebhookEndpoint]:
    with Session(engine) as session:
        return list(session.exec(select(WebhookEndpoint)).all())


def deliver(engine, api_settings, *answers: httpx.Response) -> None:
    """Run the real delivery worker once against scripted answers."""
    replies = list(answers)
    transport = httpx.MockTransport(lambda request: replies.pop(0) if len(replies) > 1 else replies[0])
    worker = DeliveryWorker(engine, pepper=api_settings.api_key_pepper, transport=transport, resolver=stub_resolver)
    try:
        worker.deliver_due()
    finally:
        worker.close()


def test_the_secret_is_shown_once_and_stored_sealed(client, fund, engine, api_settings):
    created = create(client, fund, description="CRM")
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(decode_secret(secret)) == 32
    assert created["state"] == "active" and created["event_types"] == ["match.proposed"]
    listed = client.get("/v1/webhooks/endpoints", headers=fund)
    one = client.get(f"/v1/webhooks/endpoints/{created['id']}", headers=fund)
    assert listed.status_code == one.status_code == 200
    assert [e["id"] for e in listed.json()] == [created["id"]]
    [row] = endpoints_stored(engine)
    for response in (listed, one):
        assert secret not in response.text and row.secret_sealed not in response.text
    assert "secret" not in listed.json()[0] and "secret" not in one.json()
    assert secret not in row.secret_sealed
    assert signing_secrets(row, pepper=api_settings.api_key_pepper, now=datetime.now(UTC)) == [secret]


def test_the_event_catalogue_is_listed(client, fund):
    response = client.get("/v1/webhooks/event-types", headers=fund)
    assert response.json() == EVENT_TYPES and "match.proposed" in response.json()


@pytest.mark.parametrize(
    ("body", "field", "type_"),
    [
        ({"url": "https://intranet.fund.example/hook"}, "url", "url_refused"),
        ({"url": "https://169.254.169.254/latest/meta-data/"}, "url", "url_refused"),
        ({"url": "https://2130706433/hook"}, "url", "url_refused"),
        ({"url": "http://crm.fund.example/hook"}, "url", "url_refused"),
        ({"url": "http://127.0.0.1:8080/hook"}, "url", "url_refused"),
        ({"url": "https://nowhere.fund.example/hook"}, "url", "url_refused"),
        ({"event_types": ["match.proposed", "pitch.submitted"]}, "event_types", "value_error"),
        ({"event_types": []}, "event_types", "too_short"),
        ({"secret": "whsec_mine"}, "secret", "extra_forbidden"),
        ({"owner": "someone else"}, "owner", "extra_forbidden"),
    ],
)
def test_invalid_input_is_a_field_level_422_and_nothing_is_stored(client, fund, engine, body, field, type_):
    response = client.post(
        "/v1/webhooks/endpoints", json={"url": URL, "event_types": ["match.proposed"], **body}, headers=fund
    )
    assert response.status_code == 422, response.text
    assert {(error["field"], error["type"]) for error in response.json()["errors"]} == {(field, type_)}
    assert endpoints_stored(engine) == []


def test_a_refused_url_is_explained_in_chinese_on_request(client, fund):
    response = client.post(
        "/v1/webhooks/endpoints",
        json={"url": "https://intranet.fund.example/hook", "event_types": ["match.proposed"]},
        headers={**fund, "Accept-Language": "zh-CN"},
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "请求无效，未保存任何内容"
    assert "公网" in response.json()["errors"][0]["message"]


def test_another_participants_endpoint_is_404_everywhere(client, fund, key_for):
    endpoint_id = create(client, fund)["id"]
    other = key_for(Role.FUND, "另一家基金")
    base = f"/v1/webhooks/endpoints/{endpoint_id}"
    calls = [
        ("GET", base, None),
        ("PATCH", base, {"state": "paused"}),
        ("DELETE", base, None),
        ("POST", f"{base}/rotate", None),
        ("POST", f"{base}/test", None),
        ("GET", f"{base}/attempts", None),
        ("GET", f"{base}/messages", None),
        ("POST", f"{base}/messages/msg_x/replay", None),
        ("POST", f"{base}/replay?since=2025-01-01T00:00:00Z", None),
    ]
    for method, path, body in calls:
        assert client.request(method, path, json=body, headers=other).status_code == 404, (method, path)
    assert client.get("/v1/webhooks/endpoints", headers=other).json() == []


def test_staff_see_every_endpoint_and_its_log_but_not_its_secret(client, fund, key_for):
    endpoint_id = create(client, fund)["id"]
    create(client, key_for(Role.GOVERNMENT, "鹤岗市人民政府"), event_types=["session.invited"])
    organizer = key_for(Role.ORGANIZER, "organizer")
    assert len(client.get("/v1/webhooks/endpoints", headers=organizer).json()) == 2
    only_fund = client.get("/v1/webhooks/endpoints", params={"owner": "黑龙江省新材料产业引导基金"}, headers=organizer)
    assert [e["id"] for e in only_fund.json()] == [endpoint_id]
    assert client.get(f"/v1/webhooks/endpoints/{endpoint_id}/attempts", headers=organizer).status_code == 200
    assert (
        client.patch(f"/v1/webhooks/endpoints/{endpoint_id}", json={"state": "paused"}, headers=organizer).json()[
            "state"
        ]
        == "paused"
    )
    # Secrets and the endpoint's target stay with its owner.
    assert client.post(f"/v1/webhooks/endpoints/{endpoint_id}/rotate", headers=organizer).status_code == 403
    repoint = client.patch(f"/v1/webhooks/endpoints/{endpoint_id}", json={"url": URL}, headers=organizer)
    assert repoint.status_code == 403


def test_pause_resume_and_changes_with_the_url_checked_again(client, fund, engine):
    endpoint_id = create(client, fund)["id"]
    path = f"/v1/webhooks/endpoints/{endpoint_id}"
    paused = client.patch(path, json={"state": "paused"}, headers=fund).json()
    assert paused["state"] == "paused"
    assert client.post(f"{path}/test", headers=fund).status_code == 409, "a paused endpoint takes no test event"
    assert client.patch(path, json={"state": "active"}, headers=fund).json()["state"] == "active"
    changed = client.patch(path, json={"event_types": ["session.invited", "match.proposed"]}, headers=fund)
    assert changed.json()["event_types"] == ["session.invited", "match.proposed"]
    refused = client.patch(path, json={"url": "https://intranet.fund.example/x"}, headers=fund)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "url"
    assert endpoints_stored(engine)[0].url == URL
    assert client.patch(path, json={"state": "disabled"}, headers=fund).status_code == 422


def test_rotation_shows_the_new_secret_once_and_the_old_one_signs_during_the_overlap(
    client, fund, engine, api_settings
):
    created = create(client, fund)
    path = f"/v1/webhooks/endpoints/{created['id']}/rotate"
    rotated = client.post(path, headers=fund)
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != created["secret"] and new.startswith("whsec_")
    expires = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    [row] = endpoints_stored(engine)
    now = datetime.now(UTC)
    assert signing_secrets(row, pepper=api_settings.api_key_pepper, now=now) == [new, created["secret"]]

    immediate = client.post(path, json={"overlap_s": 0}, headers=fund).json()
    assert immediate["previous_secret_expires_at"] is None
    [row] = endpoints_stored(engine)
    assert signing_secrets(row, pepper=api_settings.api_key_pepper, now=now) == [immediate["secret"]]


def test_a_test_event_is_queued_delivered_and_logged(client, fund, engine, api_settings):
    endpoint_id = create(client, fund)["id"]
    queued = client.post(f"/v1/webhooks/endpoints/{endpoint_id}/test", headers=fund)
    assert queued.status_code == 202
    assert queued.json()["event_type"] == "webhook.test" and queued.json()["status"] == "pending"
    deliver(engine, api_settings, httpx.Response(200, text="received"))

    [message] = client.get(f"/v1/webhooks/endpoints/{endpoint_id}/messages", headers=fund).json()
    assert message["id"] == queued.json()["id"] and message["status"] == "delivered"
    [attempt] = client.get(f"/v1/webhooks/endpoints/{endpoint_id}/attempts", headers=fund).json()
    assert attempt["message_id"] == message["id"] and attempt["status_code"] == 200
    assert attempt["response_excerpt"] == "received" and attempt["outcome"] == "delivered"
    assert attempt["latency_ms"] >= 0


def test_replay_one_message_and_everything_since_a_time(client, fund, engine, api_settings):
    endpoint_id = create(client, fund)["id"]
    now = datetime.now(UTC)
    with Session(engine) as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        for n, age_h in enumerate((30, 2, 1)):
            message = queue_message(
                session,
                row,
                event_id=f"00000000-0000-4000-8000-00000000000{n}",
                event_type="match.proposed",
                body="{}",
                occurred_at=now,
                now=now - timedelta(hours=age_h),
            )
            message.status = MessageStatus.DEAD if n < 2 else MessageStatus.DELIVERED
            message.attempts = 8
        session.commit()
    base = f"/v1/webhooks/endpoints/{endpoint_id}"
    dead = client.get(f"{base}/messages", params={"status": "dead"}, headers=fund).json()
    assert len(dead) == 2

    since = (now - timedelta(hours=3)).isoformat()
    only_dead = client.post(f"{base}/replay", params={"since": since, "status": "dead"}, headers=fund)
    assert only_dead.status_code == 202 and only_dead.json()["replayed"] == 1
    everything = client.post(f"{base}/replay", params={"since": since}, headers=fund).json()
    assert everything["replayed"] == 1, "the delivered one; the dead one is already pending again"

    oldest = next(m for m in dead if m["id"] not in only_dead.json()["message_ids"])
    replayed = client.post(f"{base}/messages/{oldest['id']}/replay", headers=fund)
    assert replayed.status_code == 202
    assert replayed.json()["id"] == oldest["id"], "a replay keeps the webhook-id"
    assert replayed.json()["status"] == "pending" and replayed.json()["attempts"] == 0
    with Session(engine) as session:
        statuses = {m.status for m in session.exec(select(WebhookMessage)).all()}
    assert statuses == {MessageStatus.PENDING}
    assert client.post(f"{base}/messages/msg_unknown/replay", headers=fund).status_code == 404


def test_a_disabled_endpoint_must_be_resumed_before_replay(client, fund, engine, api_settings):
    endpoint_id = create(client, fund)["id"]
    client.post(f"/v1/webhooks/endpoints/{endpoint_id}/test", headers=fund)
    deliver(engine, api_settings, httpx.Response(410))
    base = f"/v1/webhooks/endpoints/{endpoint_id}"
    endpoint = client.get(base, headers=fund).json()
    assert endpoint["state"] == "disabled" and "410" in endpoint["state_reason"]
    assert client.post(f"{base}/replay", params={"since": "2000-01-01T00:00:00"}, headers=fund).status_code == 409
    resumed = client.patch(base, json={"state": "active"}, headers=fund).json()
    assert resumed["state"] == "active" and resumed["failing_since"] is None
    assert client.post(f"{base}/replay", params={"since": "2000-01-01T00:00:00"}, headers=fund).json()["replayed"] == 1


def test_organizers_read_disabled_endpoint_notices_in_their_inbox(client, fund, key_for, engine, api_settings):
    endpoint_id = create(client, fund)["id"]
    client.post(f"/v1/webhooks/endpoints/{endpoint_id}/test", headers=fund)
    deliver(engine, api_settings, httpx.Response(410))
    organizer_inbox = client.get("/v1/notifications", headers=key_for(Role.ORGANIZER, "organizer")).json()
    owner_inbox = client.get("/v1/notifications", headers=fund).json()
    for inbox in (organizer_inbox, owner_inbox):
        assert [(n["type"], n["subject"]) for n in inbox] == [("webhook.endpoint_disabled", endpoint_id)]
    other = client.get("/v1/notifications", headers=key_for(Role.ENTERPRISE, "someone")).json()
    assert other == []
    with Session(engine) as session:
        recipients = {n.recipient for n in session.exec(select(Notification)).all()}
    assert recipients == {"黑龙江省新材料产业引导基金", ORGANIZERS_INBOX}


def test_delete_removes_the_endpoint_with_its_queue_and_log(client, fund, engine):
    endpoint_id = create(client, fund)["id"]
    client.post(f"/v1/webhooks/endpoints/{endpoint_id}/test", headers=fund)
    assert client.delete(f"/v1/webhooks/endpoints/{endpoint_id}", headers=fund).status_code == 204
    assert client.get(f"/v1/webhooks/endpoints/{endpoint_id}", headers=fund).status_code == 404
    with Session(engine) as session:
        assert session.exec(select(WebhookMessage)).all() == []
    assert endpoints_stored(engine) == []


def test_times_are_returned_in_utc(client, fund):
    created = create(client, fund)
    assert as_utc(datetime.fromisoformat(created["created_at"])).utcoffset() == timedelta(0)
    assert created["created_at"].endswith(("Z", "+00:00"))


def test_pausing_resuming_and_replaying_are_audit_logged(client, fund, engine, key_for):
    endpoint_id = create(client, fund)["id"]
    with Session(engine) as session:
        message = queue_message(
            session,
            session.get(WebhookEndpoint, endpoint_id),
            event_id="00000000-0000-4000-8000-000000000009",
            event_type="match.proposed",
            body="{}",
            occurred_at=datetime.now(UTC),
            now=datetime.now(UTC),
        )
        message.status = MessageStatus.DEAD
        session.commit()
        message_id = message.id
    organizer = key_for(Role.ORGANIZER, "organizer")
    base = f"/v1/webhooks/endpoints/{endpoint_id}"
    assert client.patch(base, json={"state": "paused"}, headers=organizer).status_code == 200
    assert client.patch(base, json={"state": "paused"}, headers=organizer).status_code == 200  # no change: no entry
    assert client.patch(base, json={"state": "active"}, headers=fund).status_code == 200
    assert client.post(f"{base}/messages/{message_id}/replay", headers=organizer).status_code == 202
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert client.post(f"{base}/replay", params={"since": since}, headers=fund).status_code == 202

    log = client.get(
        "/v1/audit", params={"object_type": "webhook_endpoint", "object_id": endpoint_id}, headers=organizer
    ).json()
    entries = log["entries"] if isinstance(log, dict) else log
    assert sorted((e["action"], e["actor_owner"]) for e in entries) == sorted(
        [
            ("webhook.pause", "organizer"),
            ("webhook.resume", "黑龙江省新材料产业引导基金"),
            ("webhook.replay", "organizer"),
            ("webhook.replay", "黑龙江省新材料产业引导基金"),
        ]
    )
