"""Sessions over HTTP: create (rules refused clearly), plan, edit, publish, answer, attend, export."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, col, select

from shared.db import make_engine
from shared.models import OutboxMessage, Role
from shared.sessions.models import FollowUp
from tests.sessions_seed import seed_participants

SESSION = {
    "theme": "石墨新材料闭门会",
    "starts_at": "2030-05-20T06:00:00Z",
    "duration_minutes": 150,
    "venue": "鹤岗市会客厅",
    "capacity": 10,
    "min_funds": 3,
    "min_governments": 1,
}


@pytest.fixture
def seeded(api_settings, client):
    engine = make_engine(api_settings.resolved_database_url)
    ids = seed_participants(engine)
    yield engine, ids
    engine.dispose()


def events(engine, type_: str) -> list[dict]:
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    return [json.loads(row.payload) for row in rows if json.loads(row.payload)["type"] == type_]


def test_the_api_refuses_sessions_outside_the_rules_with_a_clear_message(client, key_for, seeded):
    organizer = key_for(Role.ORGANIZER, "organizer")
    _engine, ids = seeded
    too_big = client.post(
        "/v1/sessions", json=SESSION | {"capacity": 25, "featured_pitch_ids": ids["pitch"][:2]}, headers=organizer
    )
    assert too_big.status_code == 422
    assert "10–20" in too_big.json()["errors"][0]["message"]
    one_project = client.post(
        "/v1/sessions", json=SESSION | {"featured_pitch_ids": ids["pitch"][:1]}, headers=organizer
    )
    assert one_project.status_code == 422 and "2–3" in one_project.json()["errors"][0]["message"]
    nowhere = client.post(
        "/v1/sessions", json=SESSION | {"venue": None, "featured_pitch_ids": ids["pitch"][:2]}, headers=organizer
    )
    assert nowhere.status_code == 422 and "venue" in nowhere.json()["errors"][0]["message"]
    fund = key_for(Role.FUND, "fund-0")
    assert (
        client.post("/v1/sessions", json=SESSION | {"featured_pitch_ids": ids["pitch"][:2]}, headers=fund).status_code
        == 403
    )


def test_a_whole_session_plan_publish_answer_fill_attend_follow_up_export(client, key_for, seeded):
    engine, ids = seeded
    organizer = key_for(Role.ORGANIZER, "organizer")
    created = client.post("/v1/sessions", json=SESSION | {"featured_pitch_ids": ids["pitch"][:2]}, headers=organizer)
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    assert (
        client.post(
            "/v1/conflicts", json={"participant_a": "enterprise-0", "participant_b": "fund-0"}, headers=organizer
        ).status_code
        == 201
    )

    planned = client.post(f"/v1/sessions/{session_id}/plan", json={}, headers=organizer)
    assert planned.status_code == 200, planned.text
    plan = planned.json()
    assert plan["status"] == "optimal" and plan["gap"] == 0 and plan["objective"] <= plan["bound"]
    invitations = plan["session"]["invitations"]
    invited = [i["participant"] for i in invitations if i["status"] == "invited"]
    alternates = [i["participant"] for i in invitations if i["status"] == "alternate"]
    assert len(invited) == 10 and {"enterprise-0", "enterprise-1"} <= set(invited)
    assert "fund-0" not in invited, "declared conflict with a featured representative"
    assert sum(p.startswith("fund-") for p in invited) >= 3 and sum(p.startswith("gov-") for p in invited) >= 1
    assert alternates

    # An edit that breaks a rule is refused with the rule; a valid one is stored.
    broken = client.put(
        f"/v1/sessions/{session_id}/invitations", json={"invited": invited[:-1], "alternates": []}, headers=organizer
    )
    assert broken.status_code == 409 and "9 invited for 10 seats" in broken.json()["detail"]

    published = client.post(f"/v1/sessions/{session_id}/publish", headers=organizer)
    assert published.status_code == 200, published.text
    invited_events = events(engine, "session.invited")
    assert sorted(e["data"]["participant"] for e in invited_events) == sorted(invited)
    assert all(e["subject"] == session_id for e in invited_events)

    # A participant declines; the best alternate that keeps the rules is invited in its place.
    decliner = next(p for p in invited if p.startswith("gov-") or p.startswith("fund-"))
    headers = key_for(Role.FUND if decliner.startswith("fund") else Role.GOVERNMENT, decliner)
    mine = client.get("/v1/invitations", headers=headers).json()
    assert [i["session_id"] for i in mine] == [session_id]
    answered = client.post(f"/v1/invitations/{mine[0]['id']}/answer", json={"answer": "decline"}, headers=headers)
    assert answered.status_code == 200, answered.text
    filler = answered.json()["filled_by"]
    assert filler in alternates
    assert events(engine, "invitation.answered")[0]["data"]["filled_by"] == filler
    assert events(engine, "session.invited")[-1]["data"]["participant"] == filler
    stranger = key_for(Role.FUND, "fund-7")
    assert (
        client.post(f"/v1/invitations/{mine[0]['id']}/answer", json={"answer": "accept"}, headers=stranger).status_code
        == 404
    )

    attended = client.post(
        f"/v1/sessions/{session_id}/attendance",
        json={"attended": {filler: True, "enterprise-0": False}},
        headers=organizer,
    )
    assert attended.status_code == 200
    statuses = {i["participant"]: i["status"] for i in attended.json()["invitations"]}
    assert statuses[filler] == "attended" and statuses["enterprise-0"] == "no_show" and statuses[decliner] == "declined"

    followup = client.post(
        "/v1/followups",
        json={
            "pitch_id": ids["pitch"][0],
            "outcome": "term_sheet",
            "occurred_on": "2030-06-01",
            "participant": filler,
            "session_id": session_id,
        },
        headers=organizer,
    )
    assert followup.status_code == 201, followup.text
    assert events(engine, "followup.recorded")[0]["data"]["recipients"] == sorted(["enterprise-0", filler])

    roster = client.get(f"/v1/sessions/{session_id}/roster.csv", headers=organizer)
    assert roster.status_code == 200 and roster.headers["content-type"].startswith("text/csv")
    assert filler in roster.text and "participant,role,status" in roster.text
    agenda = client.get(f"/v1/sessions/{session_id}/agenda.csv", headers=organizer)
    assert "重点推介" in agenda.text
    ics = client.get(f"/v1/sessions/{session_id}/calendar.ics", headers=organizer)
    assert ics.headers["content-type"].startswith("text/calendar")
    assert (
        "BEGIN:VEVENT" in ics.text and "DTSTART:20300520T060000Z" in ics.text and "DTEND:20300520T083000Z" in ics.text
    )
    assert all(len(line.encode()) <= 75 for line in ics.text.split("\r\n"))

    changed = client.patch(f"/v1/sessions/{session_id}", json={"venue": "哈尔滨会客厅"}, headers=organizer)
    assert changed.status_code == 200 and events(engine, "session.updated")[0]["data"]["changes"] == ["venue"]
    assert client.post(f"/v1/sessions/{session_id}/cancel", headers=organizer).status_code == 200
    assert events(engine, "session.cancelled")
    with Session(engine) as session:
        assert len(session.exec(select(FollowUp)).all()) == 1


def test_an_infeasible_plan_says_which_rule_and_what_to_change(client, key_for, seeded):
    _engine, ids = seeded
    organizer = key_for(Role.ORGANIZER, "organizer")
    body = SESSION | {"capacity": 12, "min_funds": 7, "featured_pitch_ids": ids["pitch"][:2]}
    session_id = client.post("/v1/sessions", json=body, headers=organizer).json()["id"]
    for fund in ("fund-0", "fund-1", "fund-2"):
        client.post(
            "/v1/conflicts",
            json={"participant_a": "enterprise-1", "participant_b": fund, "reason": "董事"},
            headers=organizer,
        )
    planned = client.post(f"/v1/sessions/{session_id}/plan", headers=organizer)
    assert planned.status_code == 409
    problems = planned.json()["problems"]
    assert any(p["constraint"] == "min_fund" and "needs 7 funds, only 5 eligible" in p["message"] for p in problems)
    assert any("enterprise-1" in p["message"] and "relax the minimum to 5" in p["suggestion"] for p in problems)
    assert all(p["message_zh"] and p["suggestion_zh"] for p in problems)
