"""Walks every route of the OpenAPI as a participant who owns none of the resources:
another participant's resource is a 404 (never 403: that would confirm it exists),
organizer functions are a 403, and list endpoints return only the caller's own items."""

from __future__ import annotations

import uuid

from sqlmodel import Session

from services.api.routes.webhooks import get_resolver
from shared.db import make_engine
from shared.models import Match, Role
from tests.payloads import MANDATE, NEED, PITCH
from tests.services.api.test_webhooks import stub_resolver

ORGANIZER_ONLY = ("/v1/console", "/v1/sessions", "/v1/conflicts", "/v1/followups", "/v1/participants", "/v1/audit")
NOT_OWNED = ("/v1/healthz", "/v1/taxonomy", "/v1/webhooks/event-types")
UNKNOWN = str(uuid.uuid4())


def test_another_participants_resources_are_404_and_organizer_functions_403(client, key_for, api_settings):
    client.app.dependency_overrides[get_resolver] = lambda: stub_resolver
    alice, bob = key_for(Role.ENTERPRISE, "alice"), key_for(Role.ENTERPRISE, "bob")
    fund, government = key_for(Role.FUND, "fund"), key_for(Role.GOVERNMENT, "government")
    organizer = key_for(Role.ORGANIZER, "organizer")

    pitch = client.post("/v1/pitches", json=PITCH, headers=alice).json()["id"]
    bobs_pitch = client.post("/v1/pitches", json={**PITCH, "title": "另一个项目"}, headers=bob).json()["id"]
    mandate = client.post("/v1/mandates", json=MANDATE, headers=fund).json()["id"]
    need = client.post("/v1/needs", json=NEED, headers=government).json()["id"]
    with Session(make_engine(api_settings.resolved_database_url)) as session:
        match = Match(
            pair_kind="pitch-mandate",
            a_kind="pitch",
            a_id=pitch,
            a_owner="alice",
            b_kind="mandate",
            b_id=mandate,
            b_owner="fund",
            score=0.7,
        )
        session.add(match)
        session.commit()
        match_id = match.id
    endpoint = client.post(
        "/v1/webhooks/endpoints",
        headers=alice,
        json={"url": "https://crm.fund.example/hooks/salon", "event_types": ["match.proposed"]},
    )
    assert endpoint.status_code == 201, endpoint.text
    salon = client.post(
        "/v1/sessions",
        headers=organizer,
        json={
            "theme": "石墨新材料闭门会",
            "venue": "鹤岗市新质生产力会客厅",
            "starts_at": "2030-05-20T14:00:00+08:00",
            "capacity": 12,
            "featured_pitch_ids": [pitch, bobs_pitch],
        },
    )
    assert salon.status_code == 201, salon.text

    entity_of = {"pitches": pitch, "mandates": mandate, "needs": need}
    ids = {
        "match_id": match_id,
        "endpoint_id": endpoint.json()["id"],
        "message_id": UNKNOWN,
        "session_id": salon.json()["id"],
        "export": "roster.csv",
        "invitation_id": UNKNOWN,
    }
    bodies = {
        "/v1/pitches/{entity_id}": PITCH,
        "/v1/mandates/{entity_id}": MANDATE,
        "/v1/needs/{entity_id}": NEED,
        "/v1/matches/{match_id}/feedback": {"verdict": "decline"},
        "/v1/matches/{match_id}/disclosure": {"parts": ["contact"]},
        "/v1/pitches/{entity_id}/confidential": {"contact": {"name": "Bob", "email": "bob@example.com"}},
        "/v1/webhooks/endpoints/{endpoint_id}": {"state": "paused"},
        "/v1/invitations/{invitation_id}/answer": {"answer": "accept"},
    }
    params = {
        "/v1/matches": {"subject": pitch},
        "/v1/triads": {"pitch": pitch},
        "/v1/webhooks/endpoints/{endpoint_id}/replay": {"since": "2026-01-01T00:00:00Z"},
        "/v1/console/stream": {"token": "forged.token"},  # the stream takes a signed token, not a key
    }

    walked = 0
    for path, operations in client.app.openapi()["paths"].items():
        if path.startswith(NOT_OWNED):
            continue
        for method in operations:
            url = path.replace("{entity_id}", entity_of.get(path.split("/")[2], UNKNOWN))
            for name, value in ids.items():
                url = url.replace("{" + name + "}", value)
            body = bodies.get(path) if method.upper() in ("POST", "PUT", "PATCH") else None
            response = client.request(method.upper(), url, headers=bob, json=body, params=params.get(path))
            if path == "/v1/console/stream":
                assert response.status_code in (401, 403), (method, path, response.status_code, response.text)
            elif path.startswith(ORGANIZER_ONLY):
                assert response.status_code == 403, (method, path, response.status_code, response.text)
            elif "{" in path or path in params:
                assert response.status_code == 404, (method, path, response.status_code, response.text)
            else:
                assert response.status_code < 500, (method, path, response.status_code, response.text)
            walked += 1
    assert walked >= 40

    # Lists hold only the caller's own items; the organizer sees everything.
    assert [p["id"] for p in client.get("/v1/pitches", headers=bob).json()] == [bobs_pitch]
    assert client.get("/v1/webhooks/endpoints", headers=bob).json() == []
    assert client.get("/v1/mandates", headers=bob).json() == []
    assert len(client.get("/v1/pitches", headers=organizer).json()) == 2
    assert client.get(f"/v1/pitches/{pitch}", headers=alice).status_code == 200
