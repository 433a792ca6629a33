"""Intake over HTTP: 202 with an id, field-level 422 with nothing stored, 404, access rules."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from shared.db import make_engine
from shared.events import Envelope
from shared.models import OutboxMessage, Pitch, Role
from tests.payloads import MANDATE, NEED, PITCH


def stored(settings, table) -> list:
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        return list(session.exec(select(table)).all())


def test_submit_answers_202_and_writes_the_row_and_its_event_together(client, key_for, api_settings):
    aliased = {**PITCH, "stage": "A轮", "currency": "人民币", "needs": ["资金", "中試"]}
    response = client.post("/v1/pitches", json=aliased, headers=key_for(Role.ENTERPRISE, "鹤岗碳材"))
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted" and body["links"]["matches"] == f"/v1/matches?subject={body['id']}"
    [pitch] = stored(api_settings, Pitch)
    assert pitch.id == body["id"] and pitch.owner == "鹤岗碳材"
    assert pitch.stage == "series_a" and pitch.currency == "CNY" and pitch.needs == ["capital", "pilot_line"]
    assert pitch.sector_codes, "free sector labels are mapped to taxonomy codes"
    [outbox] = stored(api_settings, OutboxMessage)
    event = Envelope.model_validate_json(outbox.payload)
    assert event.type == "pitch.submitted" and event.subject == pitch.id
    assert "石墨负极" in event.payload().text


@pytest.mark.parametrize(("path", "body"), [("/v1/pitches", PITCH), ("/v1/mandates", MANDATE), ("/v1/needs", NEED)])
def test_each_kind_round_trips_with_status(client, key_for, path, body):
    headers = key_for(Role.ORGANIZER, "organizer")
    created = client.post(path, json=body, headers=headers)
    assert created.status_code == 202, created.text
    fetched = client.get(f"{path}/{created.json()['id']}", headers=headers)
    assert fetched.status_code == 200
    assert fetched.json()["status"] == "accepted" and fetched.json()["version"] == 1


def test_invalid_input_gets_field_level_422_and_nothing_is_stored(client, key_for, api_settings):
    bad = {**PITCH, "stage": "series_z", "funding_ask": -5, "sectors": [], "title": ""}
    del bad["region"]
    response = client.post("/v1/pitches", json=bad, headers=key_for(Role.ENTERPRISE, "e"))
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"stage", "funding_ask", "sectors", "title", "region"}
    assert stored(api_settings, Pitch) == [] and stored(api_settings, OutboxMessage) == []


def test_server_owned_fields_are_refused(client, key_for, api_settings):
    response = client.post(
        "/v1/pitches",
        json={**PITCH, "status": "matched", "owner": "someone else"},
        headers=key_for(Role.ENTERPRISE, "e"),
    )
    assert response.status_code == 422
    assert {error["field"] for error in response.json()["errors"]} == {"status", "owner"}
    assert stored(api_settings, Pitch) == []


def test_ticket_range_is_checked(client, key_for):
    response = client.post(
        "/v1/mandates", json={**MANDATE, "ticket_min": 5e8, "ticket_max": 1e6}, headers=key_for(Role.FUND, "f")
    )
    assert response.status_code == 422
    assert "ticket_min" in response.text


def test_errors_speak_chinese_when_asked(client, key_for):
    response = client.post(
        "/v1/pitches",
        json={**PITCH, "title": ""},
        headers={**key_for(Role.ENTERPRISE, "e"), "Accept-Language": "zh-CN"},
    )
    assert response.status_code == 422
    assert "未保存" in response.json()["detail"]
    assert "文本过短" in response.json()["errors"][0]["message"]


def test_every_endpoint_but_health_needs_a_key(client):
    assert client.get("/v1/healthz").status_code == 200
    assert client.post("/v1/pitches", json=PITCH).status_code == 401
    assert client.get("/v1/pitches").status_code == 401
    assert client.get("/v1/matches", params={"subject": "x"}).status_code == 401
    bad = client.get("/v1/pitches", headers={"Authorization": "Bearer salon_nope"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"


def test_participants_see_only_their_own_submissions(client, key_for):
    alice, bob = key_for(Role.ENTERPRISE, "alice"), key_for(Role.ENTERPRISE, "bob")
    organizer = key_for(Role.ORGANIZER, "org")
    pitch_id = client.post("/v1/pitches", json=PITCH, headers=alice).json()["id"]
    assert client.get(f"/v1/pitches/{pitch_id}", headers=alice).status_code == 200
    assert client.get(f"/v1/pitches/{pitch_id}", headers=bob).status_code == 404, "404, not 403: no existence leak"
    assert client.get("/v1/matches", params={"subject": pitch_id}, headers=bob).status_code == 404
    assert [p["id"] for p in client.get("/v1/pitches", headers=alice).json()] == [pitch_id]
    assert client.get("/v1/pitches", headers=bob).json() == []
    assert client.get(f"/v1/pitches/{pitch_id}", headers=organizer).status_code == 200


def test_roles_submit_only_their_kind(client, key_for):
    fund = key_for(Role.FUND, "fund")
    assert client.post("/v1/pitches", json=PITCH, headers=fund).status_code == 403
    assert client.post("/v1/mandates", json=MANDATE, headers=fund).status_code == 202


def test_unknown_id_is_404(client, key_for):
    headers = key_for(Role.ORGANIZER, "org")
    assert client.get("/v1/needs/00000000-0000-0000-0000-000000000000", headers=headers).status_code == 404
    assert client.get("/v1/matches", params={"subject": "nope"}, headers=headers).status_code == 404


def test_update_bumps_version_and_emits_an_updated_event(client, key_for, api_settings):
    headers = key_for(Role.ENTERPRISE, "e")
    pitch_id = client.post("/v1/pitches", json=PITCH, headers=headers).json()["id"]
    response = client.put(f"/v1/pitches/{pitch_id}", json={**PITCH, "stage": "B轮"}, headers=headers)
    assert response.status_code == 202 and response.json()["version"] == 2
    types = [Envelope.model_validate_json(row.payload).type for row in stored(api_settings, OutboxMessage)]
    assert types == ["pitch.submitted", "pitch.updated"]


def test_the_openapi_documents_the_422_body_the_api_really_sends(client, key_for):
    spec = client.get("/openapi.json").json()
    documented = spec["paths"]["/v1/pitches"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert documented["$ref"].endswith("/ValidationProblem")
    sent = client.post("/v1/pitches", json={}, headers=key_for(Role.ENTERPRISE, "e")).json()
    assert set(sent) == set(spec["components"]["schemas"]["ValidationProblem"]["properties"])
