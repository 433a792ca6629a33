"""The console's API: page served, organizer-only, queue filters, bulk decisions, undo, audit, stream."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import Session, select

from services.api.stream import MatchHub, make_stream_token, read_stream_token
from shared.db import make_engine
from shared.events import Envelope, MatchData
from shared.models import Match, MatchFeedback, Role
from tests.sessions_seed import seed_participants


@pytest.fixture
def seeded(api_settings, client):
    engine = make_engine(api_settings.resolved_database_url)
    ids = seed_participants(engine, funds=3, governments=2, pitches=2)
    yield engine, ids
    engine.dispose()


def test_the_console_page_is_served_and_its_api_is_for_organizers_only(client, key_for, seeded):
    page = client.get("/console/")
    assert page.status_code == 200 and "app.js" in page.text
    assert client.get("/console/app.js").status_code == 200
    assert client.get("/console/../main.py").status_code == 404
    fund = key_for(Role.FUND, "fund-0")
    for path in ("/v1/console/me", "/v1/console/queue", "/v1/console/overview", "/v1/console/audit"):
        assert client.get(path, headers=fund).status_code == 403, path
    assert client.post("/v1/console/stream-token", headers=fund).status_code == 403
    organizer = key_for(Role.ORGANIZER, "organizer")
    assert client.get("/v1/console/me", headers=organizer).json()["role"] == "organizer"


def test_queue_filters_bulk_decisions_undo_and_audit(client, key_for, seeded):
    engine, _ids = seeded
    organizer = key_for(Role.ORGANIZER, "organizer")
    everything = client.get("/v1/console/queue", headers=organizer).json()
    assert len(everything) == 10 and everything[0]["score"] >= everything[-1]["score"]
    needs = client.get(
        "/v1/console/queue", params={"pair_kind": "pitch-need", "min_score": 0.85}, headers=organizer
    ).json()
    assert needs and all(i["pair_kind"] == "pitch-need" and i["score"] >= 0.85 for i in needs)
    assert client.get("/v1/console/queue", params={"region": "广西"}, headers=organizer).json() == []
    assert (
        len(client.get("/v1/console/queue", params={"stage": "series_a", "sector": "新材料"}, headers=organizer).json())
        == 10
    )

    chosen = [everything[0]["match_id"], everything[1]["match_id"]]
    before = {i["match_id"]: i["score"] for i in everything}
    no_reason = client.post("/v1/console/decisions", json={"match_ids": chosen, "verdict": "reject"}, headers=organizer)
    assert no_reason.status_code == 422
    rejected = client.post(
        "/v1/console/decisions",
        json={"match_ids": chosen, "verdict": "reject", "reason": "赛道不符"},
        headers=organizer,
    ).json()
    assert [i["status"] for i in rejected] == ["rejected", "rejected"]
    assert all(i["score"] < before[i["match_id"]] for i in rejected)
    with Session(engine) as session:
        assert len(session.exec(select(MatchFeedback)).all()) == 4  # both sides of two proposals

    undone = client.post("/v1/console/undo", json={"match_ids": chosen}, headers=organizer).json()
    assert [(i["status"], i["score"]) for i in undone] == [("proposed", before[m]) for m in chosen]
    with Session(engine) as session:
        assert session.exec(select(MatchFeedback)).all() == [], "undone verdicts stop lowering rankings"
        assert session.get(Match, chosen[0]).status == "proposed"
    assert client.post("/v1/console/undo", json={"match_ids": chosen[:1]}, headers=organizer).status_code == 409

    detail = client.get(f"/v1/console/queue/{chosen[0]}", headers=organizer).json()
    assert detail["a"]["kind"] == "pitch" and detail["reasons"] and detail["explanation"]
    assert [d["action"] for d in detail["audit"]] == ["undo", "reject"]
    assert detail["audit"][1]["actor"] == "organizer" and detail["audit"][1]["reason"] == "赛道不符"
    trail = client.get("/v1/console/audit", headers=organizer).json()
    assert len(trail) == 4 and {d["action"] for d in trail} == {"reject", "undo"}

    client.post("/v1/console/decisions", json={"match_ids": chosen[:1], "verdict": "shortlist"}, headers=organizer)
    overview = client.get("/v1/console/overview", headers=organizer).json()
    assert [f["stage"] for f in overview["funnel"]] == [
        "submissions",
        "proposals",
        "shortlisted",
        "invited",
        "attended",
        "outcomes",
    ]
    assert overview["funnel"][0]["count"] == 7 and overview["funnel"][2]["count"] == 1
    assert sum(sum(bins) for bins in overview["score_histogram"].values()) == 10


def test_stream_tokens_are_signed_and_expire():
    token = make_stream_token("key-1", "pepper", now=1000.0)
    assert read_stream_token(token, "pepper", now=1010.0) == "key-1"
    assert read_stream_token(token, "other-pepper", now=1010.0) is None
    assert read_stream_token(token, "pepper", now=5000.0) is None
    assert read_stream_token("key-1.9999999999.forged", "pepper") is None


def test_the_stream_rejects_bad_tokens_and_participants(client, key_for, api_settings):
    assert client.get("/v1/console/stream", params={"token": "x.1.y"}).status_code == 401
    fund = key_for(Role.FUND, "fund-0")
    with Session(make_engine(api_settings.resolved_database_url)) as session:
        from shared.models import ApiKey

        key_id = session.exec(select(ApiKey.id).where(ApiKey.owner == "fund-0")).one()
    assert fund
    token = make_stream_token(key_id, api_settings.api_key_pepper)
    assert client.get("/v1/console/stream", params={"token": token}).status_code == 403


def test_the_hub_fans_a_proposal_out_once_to_every_connection():
    def proposal(subject: str) -> Envelope:
        data = MatchData(
            match_id="m-1", pair_kind="pitch-mandate", subject_kind="pitch", subject_id=subject, subject_owner="e",
            counterpart_kind="mandate", counterpart_id="x", counterpart_owner="f", counterpart_title="基金",
            score=0.8, components={}, reasons=[], explanation="",
        )  # fmt: skip
        return Envelope.wrap("match.proposed", subject, data)

    async def scenario() -> tuple[list[dict], list[dict]]:
        hub = MatchHub()
        first, second = hub.subscribe(), hub.subscribe()
        hub.publish_proposal(proposal("p-1"))
        hub.publish_proposal(proposal("m-side"))  # the same proposal seen from its other side
        await asyncio.sleep(0.05)
        drained = []
        for queue in (first, second):
            items = []
            while not queue.empty():
                items.append(queue.get_nowait())
            drained.append(items)
        hub.unsubscribe(first)
        assert hub.connections == 1
        return drained[0], drained[1]

    first, second = asyncio.run(scenario())
    for items in (first, second):
        assert items[0] == {"type": "status", "live": False}
        assert [i["match_id"] for i in items[1:]] == ["m-1"]
