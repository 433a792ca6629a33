"""Staged disclosure of a pitch's confidential part, and the audit log, over HTTP.

A counterpart sees a pitch's financials, contact and attachments only when the organizer
approved that match (shortlist) AND the pitch's owner opted in for it; every read of them by
anyone but the owner, every opt-in/out and every organizer decision is in the audit log.
The staged walk and the audit log's paging run on SQLite and on the local PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from services.demo import demo_items, load_demo
from shared.audit import AuditEntry, AuditLogError
from shared.confidential.models import MatchDisclosure, PitchConfidential
from shared.db import make_engine
from shared.models import Match, OutboxMessage, Pitch, Role, entity_text
from shared.security import create_key, revoke_key
from shared.settings import Settings
from tests.payloads import MANDATE, PITCH

CONTACT = {
    "name": "王晓明",
    "phone": "+86 139 4567 0812",
    "email": "wang.xm@hegang-carbon.example",
    "wechat": "hgcarbon_wxm",
}
FINANCIALS = {
    "currency": "CNY",
    "fiscal_year": 2024,
    "revenue": 31415926,
    "net_profit": -2718281,
    "valuation": 612345678,
    "last_round": {"stage": "天使轮", "amount": 15000000, "closed_on": "2023-06-30", "investors": ["龙江天使基金"]},
}
ATTACHMENTS = [
    {"name": "商业计划书.pdf", "url": "https://files.hegang-carbon.example/bp-2025.pdf", "size_bytes": 2400000},
    {"name": "审计报告", "ref": "pitches/hg-carbon/audit-2024.pdf", "size_bytes": 880000},
]
CONFIDENTIAL = {"financials": FINANCIALS, "contact": CONTACT, "attachments": ATTACHMENTS}
# Strings that must not appear anywhere in a response before disclosure.
SECRETS = (
    "王晓明",
    "139 4567 0812",
    "wang.xm@",
    "hgcarbon_wxm",
    "31415926",
    "2718281",
    "612345678",
    "龙江天使基金",
    "bp-2025.pdf",
    "audit-2024.pdf",
    "商业计划书",
)
ENTERPRISE = "鹤岗碳材科技"
BOTH_DATABASES = pytest.mark.parametrize("api_settings", ["sqlite", "postgresql"], indirect=True)
PARTS = ("financials", "contact", "attachments")
NEED_ID = "a-need-of-the-city"


@pytest.fixture
def api_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """SQLite, or the local PostgreSQL when a test is parametrized with `BOTH_DATABASES`."""
    url = "" if getattr(request, "param", "sqlite") == "sqlite" else request.getfixturevalue("pg_url")
    return Settings(
        data_dir=tmp_path, database_url=url, kafka_bootstrap="127.0.0.1:9", api_key_pepper="test-pepper-0123456789"
    )


@pytest.fixture
def case(client: TestClient, key_for: Callable[[Role, str], dict[str, str]], api_settings: Settings) -> dict[str, Any]:
    """A pitch with a confidential part, a fund's mandate and a proposal between them."""
    keys = {
        "enterprise": key_for(Role.ENTERPRISE, ENTERPRISE),
        "fund": key_for(Role.FUND, "黑龙江省新材料产业引导基金"),
        "organizer": key_for(Role.ORGANIZER, "organizer"),
        "third": key_for(Role.FUND, "another fund"),
    }
    created = client.post("/v1/pitches", json=PITCH | CONFIDENTIAL, headers=keys["enterprise"])
    assert created.status_code == 202, created.text
    mandate = client.post("/v1/mandates", json=MANDATE, headers=keys["fund"])
    assert mandate.status_code == 202, mandate.text
    pitch_id, mandate_id = created.json()["id"], mandate.json()["id"]
    engine = make_engine(api_settings.resolved_database_url)
    with Session(engine) as session:
        match = Match(
            pair_kind="pitch-mandate",
            a_kind="pitch",
            a_id=pitch_id,
            a_owner=ENTERPRISE,
            b_kind="mandate",
            b_id=mandate_id,
            b_owner="黑龙江省新材料产业引导基金",
            score=0.72,
            reasons=[
                {
                    "rule": "sector",
                    "passed": True,
                    "contribution": 0.2,
                    "detail": "shared sector: new materials",
                    "detail_zh": "同属新材料赛道",
                }
            ],
            terms=["石墨", "负极"],
        )
        session.add(match)
        session.commit()
        match_id = match.id
    yield {"keys": keys, "pitch": pitch_id, "mandate": mandate_id, "match": match_id, "engine": engine}
    engine.dispose()


def _no_secrets(response: Any) -> None:
    leaked = [secret for secret in SECRETS if secret in response.text]
    assert not leaked, f"confidential strings in the response: {leaked}"


def _audit(client: TestClient, organizer: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = client.get("/v1/audit", params=params, headers=organizer)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


@BOTH_DATABASES
def test_a_counterpart_sees_the_confidential_part_only_after_approval_and_opt_in(client, case):
    keys, match_id, pitch_id = case["keys"], case["match"], case["pitch"]
    fund, owner, organizer = keys["fund"], keys["enterprise"], keys["organizer"]
    counterpart = f"/v1/matches/{match_id}/counterpart"
    disclosure = f"/v1/matches/{match_id}/disclosure"

    def hidden(*, approved: bool, opted: bool) -> None:
        view = client.get(counterpart, headers=fund)
        assert view.status_code == 200, view.text
        body = view.json()
        assert "confidential" not in body
        for part in PARTS:
            assert part not in body and part not in body["counterpart"]
        # Only title, sectors, stage and region of the pitch, and the match's reasons.
        assert set(body["counterpart"]) == {"kind", "id", "title", "region", "sectors", "sector_codes", "stage"}
        assert body["counterpart"] | {"sector_codes": []} == {
            "kind": "pitch",
            "id": pitch_id,
            "title": PITCH["title"],
            "region": PITCH["region"],
            "sectors": PITCH["sectors"],
            "sector_codes": [],
            "stage": "series_a",
        }
        assert body["reasons"][0]["rule"] == "sector" and body["explanation"]
        assert body["disclosure"] == {
            "pitch_id": pitch_id,
            "organizer_approved": approved,
            "owner_opted_in": opted,
            "visible": False,
            "parts": list(PARTS) if opted else [],
        }
        _no_secrets(view)
        listed = client.get("/v1/matches", params={"subject": case["mandate"]}, headers=fund)
        assert listed.status_code == 200 and listed.json()[0]["counterpart"]["owner"] is None
        assert listed.json()[0]["disclosure"]["visible"] is False
        _no_secrets(listed)

    # 1. Proposed: nothing confidential, not even who the enterprise is.
    hidden(approved=False, opted=False)
    # 2. The owner opts in, but no organizer has approved the match.
    opted = client.post(disclosure, headers=owner)
    assert opted.status_code == 200, opted.text
    assert opted.json() | {"parts": []} == {
        "pitch_id": pitch_id,
        "organizer_approved": False,
        "owner_opted_in": True,
        "visible": False,
        "parts": [],
    }
    hidden(approved=False, opted=True)
    # 3. Approved, but the owner has withdrawn its opt-in.
    assert client.delete(disclosure, headers=owner).json()["owner_opted_in"] is False
    approved = client.post(f"/v1/matches/{match_id}/feedback", json={"verdict": "shortlist"}, headers=organizer)
    assert approved.status_code == 200 and approved.json()["disclosure"]["organizer_approved"] is True
    hidden(approved=True, opted=False)
    assert not _audit(client, organizer, action="pitch.confidential.read")

    # 4. Both, for the contact only: the counterpart sees the contact and who the enterprise is.
    assert client.post(disclosure, json={"parts": ["contact"]}, headers=owner).json()["visible"] is True
    view = client.get(counterpart, headers=fund).json()
    assert view["confidential"] == {"pitch_id": pitch_id, "contact": CONTACT}
    assert view["counterpart"]["owner"] == ENTERPRISE
    # 5. Everything.
    assert client.post(disclosure, json={"parts": list(PARTS)}, headers=owner).json()["parts"] == list(PARTS)
    shown = client.get(counterpart, headers=fund).json()["confidential"]
    assert shown["contact"] == CONTACT and shown["attachments"] == ATTACHMENTS
    assert shown["financials"]["revenue"] == 31415926 and shown["financials"]["last_round"]["stage"] == "angel"
    reads = _audit(client, organizer, action="pitch.confidential.read", object_id=pitch_id)
    assert [(r["actor_owner"], r["actor_role"], r["detail"]["parts"]) for r in reads] == [
        ("黑龙江省新材料产业引导基金", "fund", list(sorted(PARTS))),
        ("黑龙江省新材料产业引导基金", "fund", ["contact"]),
    ]
    assert reads[0]["detail"]["via"] == "match" and reads[0]["detail"]["match_id"] == match_id
    # Both sides see where the match stands.
    mine = client.get("/v1/matches", params={"subject": pitch_id}, headers=owner).json()[0]
    assert mine["disclosure"]["visible"] is True

    # 6. The owner revokes: hidden again, and nothing more is logged as read.
    assert client.delete(disclosure, headers=owner).json()["visible"] is False
    hidden(approved=True, opted=False)
    assert len(_audit(client, organizer, action="pitch.confidential.read")) == 2
    # An undone approval withdraws it too.
    client.post(disclosure, headers=owner)
    assert client.post("/v1/console/undo", json={"match_ids": [match_id]}, headers=organizer).status_code == 200
    hidden(approved=False, opted=True)

    # A third participant: 404 everywhere, and no participant reads the audit log.
    third = keys["third"]
    for method, path in (("GET", counterpart), ("POST", disclosure), ("DELETE", disclosure)):
        assert client.request(method, path, headers=third).status_code == 404, (method, path)
    assert client.get(f"/v1/pitches/{pitch_id}/confidential", headers=third).status_code == 404
    assert client.get(f"/v1/pitches/{pitch_id}/confidential", headers=fund).status_code == 404
    for key in (third, fund, owner):
        assert client.get("/v1/audit", headers=key).status_code == 403

    trail = _audit(client, organizer, object_type="match", object_id=match_id)
    assert [entry["action"] for entry in reversed(trail)] == [
        "disclosure.opt_in",
        "disclosure.opt_out",
        "match.shortlist",
        "disclosure.opt_in",
        "disclosure.opt_in",
        "disclosure.opt_out",
        "disclosure.opt_in",
        "match.undo",
    ]
    shortlist = next(entry for entry in trail if entry["action"] == "match.shortlist")
    assert shortlist["actor_owner"] == "organizer" and shortlist["detail"]["status"] == ["proposed", "shortlisted"]


def test_only_the_pitch_owner_opts_in(client, case, api_settings):
    keys, match_id = case["keys"], case["match"]
    disclosure = f"/v1/matches/{match_id}/disclosure"
    assert client.post(disclosure, headers=keys["fund"]).status_code == 403
    assert client.post(disclosure, headers=keys["organizer"]).status_code == 403
    # A match without a pitch has nothing to disclose.
    with Session(case["engine"]) as session:
        no_pitch = Match(
            pair_kind="mandate-need",
            a_kind="mandate",
            a_id=case["mandate"],
            a_owner="黑龙江省新材料产业引导基金",
            b_kind="need",
            b_id=NEED_ID,
            b_owner="鹤岗市人民政府",
            score=0.5,
        )
        session.add(no_pitch)
        session.commit()
        no_pitch_id = no_pitch.id
    refused = client.post(f"/v1/matches/{no_pitch_id}/disclosure", headers=keys["fund"])
    assert refused.status_code == 409 and "无可披露" in refused.json()["detail"]
    with Session(case["engine"]) as session:
        assert session.exec(select(MatchDisclosure)).all() == []


def test_the_owner_and_organizers_read_it_and_only_the_organizers_read_is_logged(client, case):
    keys, pitch_id = case["keys"], case["pitch"]
    path = f"/v1/pitches/{pitch_id}/confidential"
    own = client.get(path, headers=keys["enterprise"])
    assert own.status_code == 200 and own.json() == {"pitch_id": pitch_id} | {
        "financials": own.json()["financials"],
        "contact": CONTACT,
        "attachments": ATTACHMENTS,
    }
    assert own.json()["financials"]["valuation"] == 612345678
    assert not _audit(client, keys["organizer"], action="pitch.confidential.read")
    staff = client.get(path, headers=keys["organizer"])
    assert staff.status_code == 200 and staff.json()["contact"] == CONTACT
    [entry] = _audit(client, keys["organizer"], action="pitch.confidential.read")
    assert entry["actor_owner"] == "organizer" and entry["actor_role"] == "organizer"
    assert entry["object_type"] == "pitch" and entry["object_id"] == pitch_id and entry["detail"]["via"] == "pitch"
    assert entry["actor_key_id"]
    # The ordinary pitch reads never carry it, for anyone.
    for key in (keys["enterprise"], keys["organizer"]):
        _no_secrets(client.get(f"/v1/pitches/{pitch_id}", headers=key))
        _no_secrets(client.get("/v1/pitches", headers=key))
    # An organizer previewing the counterpart's view gets no confidential part (and logs nothing).
    preview = client.get(f"/v1/matches/{case['match']}/counterpart", headers=keys["organizer"])
    assert preview.status_code == 200 and "confidential" not in preview.json()
    assert len(_audit(client, keys["organizer"], action="pitch.confidential.read")) == 1
    detail = client.get(f"/v1/console/queue/{case['match']}", headers=keys["organizer"]).json()
    assert detail["disclosure"]["visible"] is False
    _no_secrets(client.get(f"/v1/console/queue/{case['match']}", headers=keys["organizer"]))


def test_confidential_parts_never_reach_the_matched_text_or_the_events(client, case):
    with Session(case["engine"]) as session:
        pitch = session.get(Pitch, case["pitch"])
        assert pitch is not None
        text = entity_text(pitch)
        payloads = [row.payload for row in session.exec(select(OutboxMessage)).all()]
    assert PITCH["summary"] in text
    for secret in SECRETS:
        assert secret not in text
        assert not any(secret in payload for payload in payloads), secret
    submitted = [json.loads(p) for p in payloads if json.loads(p)["subject"] == case["pitch"]]
    assert submitted and not set(PARTS) & set(submitted[0]["data"]["fields"])


def test_updates_keep_replace_or_clear_parts_and_a_non_owners_write_is_logged(client, case):
    keys, pitch_id = case["keys"], case["pitch"]
    owner, organizer = keys["enterprise"], keys["organizer"]
    path = f"/v1/pitches/{pitch_id}/confidential"
    # PUT of the pitch without the confidential fields keeps them.
    assert client.put(f"/v1/pitches/{pitch_id}", json=PITCH, headers=owner).status_code == 202
    assert client.get(path, headers=owner).json()["contact"] == CONTACT
    # Sent as null: cleared; sent: replaced.
    new_contact = {"name": "李娜", "email": "li.na@hegang-carbon.example"}
    body = PITCH | {"contact": new_contact, "financials": None}
    assert client.put(f"/v1/pitches/{pitch_id}", json=body, headers=owner).status_code == 202
    stored = client.get(path, headers=owner).json()
    assert stored["contact"] == new_contact and "financials" not in stored
    # The dedicated PUT replaces the whole part and does not re-embed the pitch.
    with Session(case["engine"]) as session:
        version = session.get(Pitch, pitch_id).version  # type: ignore[union-attr]
    replaced = client.put(path, json={"attachments": ATTACHMENTS[:1]}, headers=owner)
    assert replaced.status_code == 200 and replaced.json() == {"pitch_id": pitch_id, "attachments": ATTACHMENTS[:1]}
    with Session(case["engine"]) as session:
        assert session.get(Pitch, pitch_id).version == version  # type: ignore[union-attr]
    # Organizers read it but do not write it there; through a pitch PUT, their write is logged.
    assert client.put(path, json={"contact": CONTACT}, headers=organizer).status_code == 403
    staff_put = client.put(f"/v1/pitches/{pitch_id}", json=PITCH | {"contact": CONTACT}, headers=organizer)
    assert staff_put.status_code == 202
    [write] = _audit(client, organizer, action="pitch.confidential.write")
    assert write["actor_owner"] == "organizer" and write["detail"]["parts"] == ["contact"]
    assert client.put(path, json={"contact": CONTACT}, headers=keys["fund"]).status_code == 404


def test_unknown_and_server_owned_fields_are_refused_and_nothing_is_stored(client, case):
    keys, match_id = case["keys"], case["match"]
    owner = keys["enterprise"]
    with Session(case["engine"]) as session:
        before = (len(session.exec(select(Pitch)).all()), len(session.exec(select(PitchConfidential)).all()))
    refusals = [
        ("POST", "/v1/pitches", PITCH | CONFIDENTIAL | {"disclosure": {"visible": True}}, "disclosure"),
        ("POST", "/v1/pitches", PITCH | CONFIDENTIAL | {"owner": "someone"}, "owner"),
        ("POST", "/v1/pitches", PITCH | {"contact": CONTACT | {"owner": "x"}}, "contact.owner"),
        ("POST", "/v1/pitches", PITCH | {"contact": {"name": "王", "email": "not-an-email"}}, "contact.email"),
        ("POST", "/v1/pitches", PITCH | {"contact": {"name": "王"}}, "contact"),
        ("POST", "/v1/pitches", PITCH | {"contact": {"name": "王", "phone": "12ab"}}, "contact.phone"),
        ("POST", "/v1/pitches", PITCH | {"contact": {"name": "王", "wechat": "1abc"}}, "contact.wechat"),
        ("POST", "/v1/pitches", PITCH | {"financials": {"currency": "CNY"}}, "financials"),
        (
            "POST",
            "/v1/pitches",
            PITCH | {"attachments": [{"name": "a", "url": "http://x.example/a"}]},
            "attachments.0.url",
        ),
        (
            "POST",
            "/v1/pitches",
            PITCH | {"attachments": [{"name": "a", "url": "https://10.0.0.8/a"}]},
            "attachments.0.url",
        ),
        ("POST", "/v1/pitches", PITCH | {"attachments": [{"name": "a", "ref": "../etc/passwd"}]}, "attachments.0.ref"),
        ("POST", "/v1/pitches", PITCH | {"attachments": [ATTACHMENTS[0]] * 11}, "attachments"),
        ("PUT", f"/v1/pitches/{case['pitch']}/confidential", {"contact": CONTACT, "pitch_id": "x"}, "pitch_id"),
        ("POST", f"/v1/matches/{match_id}/disclosure", {"owner": ENTERPRISE}, "owner"),
        ("POST", f"/v1/matches/{match_id}/disclosure", {"parts": ["contact"], "visible": True}, "visible"),
        ("POST", f"/v1/matches/{match_id}/disclosure", {"parts": ["owner"]}, "parts.0"),
    ]
    for method, path, body, field in refusals:
        response = client.request(method, path, json=body, headers=owner | {"Accept-Language": "zh"})
        assert response.status_code == 422, (path, field, response.text)
        problem = response.json()
        assert problem["detail"] == "请求无效，未保存任何内容"
        assert any(error["field"] == field for error in problem["errors"]), (field, problem)
    with Session(case["engine"]) as session:
        after = (len(session.exec(select(Pitch)).all()), len(session.exec(select(PitchConfidential)).all()))
        assert after == before
        assert session.exec(select(MatchDisclosure)).all() == []
        assert session.exec(select(AuditEntry).where(AuditEntry.action == "disclosure.opt_in")).all() == []


@BOTH_DATABASES
def test_the_audit_log_pages_filters_and_cannot_be_changed(client, case, api_settings):
    keys = case["keys"]
    organizer = keys["organizer"]
    with Session(case["engine"]) as session:
        key, _ = create_key(session, role=Role.FUND, name="temp", owner="temp fund", pepper=api_settings.api_key_pepper)
        session.commit()
        key_id, prefix = key.id, key.prefix
        assert revoke_key(session, key_id) and revoke_key(session, key_id)  # the second changes nothing
        session.commit()
        assert not revoke_key(session, "no-such-key")
    key_entries = _audit(client, organizer, object_type="api_key", object_id=key_id)
    assert [(e["action"], e["actor_owner"], e["actor_key_id"]) for e in key_entries] == [
        ("api_key.revoke", "cli", None),
        ("api_key.create", "cli", None),
    ]
    assert key_entries[1]["detail"] == {"role": "fund", "owner": "temp fund", "name": "temp", "prefix": prefix}
    # The fixture's keys, and the session curation decisions, are logged too.
    pitches = [case["pitch"], client.post("/v1/pitches", json=PITCH, headers=keys["enterprise"]).json()["id"]]
    salon = client.post(
        "/v1/sessions",
        headers=organizer,
        json={
            "theme": "石墨新材料闭门会",
            "venue": "鹤岗市新质生产力会客厅",
            "starts_at": "2030-05-20T14:00:00+08:00",
            "capacity": 12,
            "featured_pitch_ids": pitches,
        },
    )
    assert salon.status_code == 201, salon.text
    assert client.post(f"/v1/sessions/{salon.json()['id']}/cancel", headers=organizer).status_code == 200
    session_trail = _audit(client, organizer, object_type="session")
    assert [e["action"] for e in session_trail] == ["session.cancel", "session.create"]

    # Pages: newest first, `before` walks back without gaps or repeats.
    everything = _audit(client, organizer, limit="500")
    assert len(everything) >= 8 and [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    seen: list[int] = []
    params: dict[str, str] = {"limit": "3"}
    while True:
        page = client.get("/v1/audit", params=params, headers=organizer).json()
        seen += [entry["id"] for entry in page["entries"]]
        if page["next_before"] is None:
            break
        params["before"] = str(page["next_before"])
    assert seen == [e["id"] for e in everything]
    by_actor = _audit(client, organizer, actor="organizer")
    assert by_actor and all(e["actor_owner"] == "organizer" for e in by_actor)
    assert _audit(client, organizer, since="2999-01-01T00:00:00+08:00") == []
    assert len(_audit(client, organizer, since="2000-01-01T00:00:00Z", until="2999-01-01T00:00:00Z")) == len(everything)
    assert client.get("/v1/audit", params={"action": "delete.everything"}, headers=organizer).status_code == 422

    # Read-only: no route writes it, and the ORM refuses to change or delete an entry.
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert client.request(method, "/v1/audit", headers=organizer).status_code == 405
    with Session(case["engine"]) as session:
        entry = session.exec(select(AuditEntry)).first()
        assert entry is not None
        entry.action = "nothing happened"
        session.add(entry)
        with pytest.raises(AuditLogError):
            session.commit()
        session.rollback()
        entry = session.exec(select(AuditEntry)).first()
        session.delete(entry)
        with pytest.raises(AuditLogError):
            session.commit()


def test_the_demo_pitches_load_with_their_confidential_parts(client, api_settings):
    engine = make_engine(api_settings.resolved_database_url)
    loaded = load_demo(engine, "", pepper=api_settings.api_key_pepper, client=client)
    demo = {item["ref"]: item for item in demo_items("pitch")}
    with_part = {ref for ref, item in demo.items() if set(PARTS) & set(item)}
    with Session(engine) as session:
        rows = {row.pitch_id: row for row in session.exec(select(PitchConfidential)).all()}
        assert set(rows) == {loaded.ids[ref] for ref in with_part} and len(rows) >= 3
        for ref in with_part:
            row = rows[loaded.ids[ref]]
            assert row.contact == demo[ref]["contact"] and row.updated_by == demo[ref]["owner"]
            assert demo[ref]["contact"]["name"] not in entity_text(session.get(Pitch, loaded.ids[ref]))  # type: ignore[arg-type]
    engine.dispose()
