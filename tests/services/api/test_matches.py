"""Matches, feedback and triads over HTTP, on proposals the matcher handler stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session, select

from embeddings import HashingEncoder
from services.matcher.handlers import handle_vector
from services.matcher.ranking import MatchPolicy
from services.matcher.state import MatcherState
from shared.db import make_engine
from shared.events import Envelope, VectorData
from shared.models import EntityStatus, Match, MatchFeedback, OutboxMessage, Role, entity_text, get_entity
from tests.payloads import MANDATE, NEED, PITCH

ENCODER = HashingEncoder(dim=64)
PLURAL = {"pitch": "pitches", "mandate": "mandates", "need": "needs"}


@pytest.fixture
def run_matcher(api_settings, tmp_path: Path) -> Callable[[str, str], int]:
    """Run the matcher's handler in-process on the current version of an entity."""
    engine = make_engine(api_settings.resolved_database_url)
    state = MatcherState(ENCODER.dim, tmp_path / "index")

    def run(kind: str, entity_id: str) -> int:
        with Session(engine) as session:
            entity = get_entity(session, kind, entity_id)
            assert entity is not None
            vector = ENCODER.encode([entity_text(entity)])[0]
            event = Envelope.wrap(
                "vector.computed",
                entity_id,
                VectorData(
                    kind=kind,
                    entity_id=entity_id,
                    version=entity.version,
                    model="hash",
                    dim=ENCODER.dim,
                    vector=vector.tolist(),
                    source_event_id=Envelope(type="x", subject="s", data={}).id,
                ),
            )
        return handle_vector(
            event, engine=engine, state=state, policy=MatchPolicy(min_score=0.05), matches_topic="salon.matches"
        )

    return run


@pytest.fixture
def matched(client, run_matcher) -> Callable[[str, dict, dict], str]:
    """POST an entity over HTTP, then match it."""

    def submit(kind: str, body: dict, headers: dict) -> str:
        response = client.post(f"/v1/{PLURAL[kind]}", json=body, headers=headers)
        assert response.status_code == 202, response.text
        run_matcher(kind, response.json()["id"])
        return response.json()["id"]

    return submit


@pytest.fixture
def graphite_case(matched, key_for):
    keys = {
        "enterprise": key_for(Role.ENTERPRISE, "鹤岗碳材科技"),
        "fund": key_for(Role.FUND, "龙江新材料基金"),
        "government": key_for(Role.GOVERNMENT, "鹤岗市人民政府"),
        "organizer": key_for(Role.ORGANIZER, "organizer"),
        "other": key_for(Role.ENTERPRISE, "someone else"),
    }
    ids = {
        "need": matched("need", NEED, keys["government"]),
        "mandate": matched("mandate", MANDATE, keys["fund"]),
        "pitch": matched("pitch", PITCH, keys["enterprise"]),
    }
    return ids, keys


def test_matches_come_ranked_with_reasons_in_the_readers_language(client, graphite_case):
    ids, keys = graphite_case
    zh = client.get("/v1/matches", params={"subject": ids["pitch"]}, headers=keys["enterprise"]).json()
    assert {m["counterpart"]["id"] for m in zh} == {ids["mandate"], ids["need"]}
    assert zh[0]["explanation"].startswith("与「")
    en = client.get(
        "/v1/matches", params={"subject": ids["pitch"]}, headers={**keys["enterprise"], "Accept-Language": "en-US"}
    ).json()
    assert en[0]["explanation"].startswith("Fits '")
    rules = {reason["rule"] for reason in zh[0]["reasons"]}
    assert {"dense_similarity", "lexical_similarity", "structured_fit", "sector_overlap"} <= rules
    assert all(reason["detail"] and reason["detail_zh"] for reason in zh[0]["reasons"])
    passage = next(reason for reason in zh[0]["reasons"] if reason["rule"] == "matched_passage")
    assert "石墨" in passage["detail"], "the counterpart's sentence where the fit shows"


def test_the_need_side_names_the_chain_link_and_the_element(client, graphite_case):
    ids, keys = graphite_case
    [match] = client.get(
        "/v1/matches", params={"subject": ids["need"], "kind": "pitch"}, headers=keys["government"]
    ).json()
    reasons = {reason["rule"]: reason for reason in match["reasons"]}
    assert reasons["chain_link"]["passed"] and "石墨负极" in reasons["chain_link"]["detail_zh"]
    assert "环境资源化" in reasons["element_fit"]["detail_zh"]


def test_an_organizer_reject_lowers_the_pair_and_is_recorded_as_an_event(client, graphite_case, api_settings):
    ids, keys = graphite_case
    before = client.get(
        "/v1/matches", params={"subject": ids["pitch"], "kind": "mandate"}, headers=keys["organizer"]
    ).json()[0]
    response = client.post(
        f"/v1/matches/{before['match_id']}/feedback",
        json={"verdict": "reject", "reason": "基金本期已投满"},
        headers=keys["organizer"],
    )
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["status"] == "rejected" and after["score"] < before["score"]
    engine = make_engine(api_settings.resolved_database_url)
    with Session(engine) as session:
        feedback = session.exec(select(MatchFeedback)).all()
        assert {row.subject_id for row in feedback} == {ids["pitch"], ids["mandate"]}
        events = [Envelope.model_validate_json(row.payload) for row in session.exec(select(OutboxMessage)).all()]
    [event] = [e for e in events if e.type == "match.feedback"]
    assert event.payload().verdict == "reject" and event.payload().actor == "organizer"


def test_a_near_duplicate_submission_is_flagged_not_matched_twice(client, graphite_case, matched, api_settings):
    ids, keys = graphite_case
    twin = matched("pitch", {**PITCH, "title": "石墨负极材料深加工二期"}, keys["enterprise"])
    engine = make_engine(api_settings.resolved_database_url)
    with Session(engine) as session:
        entity = get_entity(session, "pitch", twin)
        assert entity.duplicate_of == ids["pitch"] and entity.status == EntityStatus.MATCHED
        assert session.exec(select(Match).where(Match.a_id == twin)).all() == []
    assert client.get(f"/v1/pitches/{twin}", headers=keys["enterprise"]).json()["duplicate_of"] == ids["pitch"]


def test_feedback_lowers_the_pair_and_similar_pairs_when_scored_again(
    client, graphite_case, matched, run_matcher, key_for, api_settings
):
    ids, keys = graphite_case
    match_id = client.get(
        "/v1/matches", params={"subject": ids["pitch"], "kind": "mandate"}, headers=keys["organizer"]
    ).json()[0]["match_id"]
    client.post(f"/v1/matches/{match_id}/feedback", json={"verdict": "not_relevant"}, headers=keys["organizer"])
    # Another fund with a very similar mandate arrives; scored from its side, there is no feedback.
    similar = {**MANDATE, "fund_name": "龙江石墨产业子基金", "thesis": MANDATE["thesis"] + "优先支持负极材料企业。"}
    sibling = matched("mandate", similar, key_for(Role.FUND, "another fund"))
    engine = make_engine(api_settings.resolved_database_url)

    def pair_score(mandate_id: str) -> float:
        with Session(engine) as session:
            return session.exec(select(Match).where(Match.a_id == ids["pitch"], Match.b_id == mandate_id)).one().score

    unpenalised = pair_score(sibling)
    # The pitch is updated, so its new version is scored again (one proposal set per version).
    updated = client.put(f"/v1/pitches/{ids['pitch']}", json=PITCH, headers=keys["enterprise"])
    assert updated.status_code == 202, updated.text
    run_matcher("pitch", ids["pitch"])
    assert pair_score(sibling) < unpenalised, "a pair similar to a rejected one is lowered"
    with Session(engine) as session:
        match = session.get(Match, match_id)
        assert match.status == "rejected"
        assert any(reason["rule"] == "feedback" for reason in match.reasons)


def test_participants_may_only_decline_their_own_proposals(client, graphite_case):
    ids, keys = graphite_case
    match_id = client.get(
        "/v1/matches", params={"subject": ids["pitch"], "kind": "need"}, headers=keys["enterprise"]
    ).json()[0]["match_id"]
    assert (
        client.post(f"/v1/matches/{match_id}/feedback", json={"verdict": "decline"}, headers=keys["other"]).status_code
        == 404
    )
    assert (
        client.post(
            f"/v1/matches/{match_id}/feedback", json={"verdict": "shortlist"}, headers=keys["enterprise"]
        ).status_code
        == 403
    )
    declined = client.post(f"/v1/matches/{match_id}/feedback", json={"verdict": "decline"}, headers=keys["enterprise"])
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert (
        client.post(
            f"/v1/matches/{match_id}/feedback", json={"verdict": "maybe"}, headers=keys["enterprise"]
        ).status_code
        == 422
    )


def test_triads_combine_the_pitch_the_fund_and_the_region(client, graphite_case):
    ids, keys = graphite_case
    triads = client.get("/v1/triads", params={"pitch": ids["pitch"]}, headers=keys["enterprise"]).json()
    assert len(triads) == 1
    [triad] = triads
    assert triad["mandate"]["id"] == ids["mandate"] and triad["need"]["id"] == ids["need"]
    assert set(triad["pair_scores"]) == {"pitch-mandate", "pitch-need", "mandate-need"}
    assert 0 < triad["score"] <= 1
    assert any(reason["rule"] == "triad_reinvestment" for reason in triad["reasons"]), "返投 in Heilongjiang"
    assert client.get("/v1/triads", params={"pitch": ids["pitch"]}, headers=keys["other"]).status_code == 404


def test_an_update_rescores_and_drops_proposals_it_no_longer_earns(client, graphite_case, run_matcher):
    ids, keys = graphite_case
    # The project moves to a stage the fund does not invest in: the fund proposal must go.
    response = client.put(f"/v1/pitches/{ids['pitch']}", json={**PITCH, "stage": "pre_ipo"}, headers=keys["enterprise"])
    assert response.status_code == 202 and response.json()["version"] == 2
    run_matcher("pitch", ids["pitch"])
    matches = client.get("/v1/matches", params={"subject": ids["pitch"]}, headers=keys["enterprise"]).json()
    assert [m["counterpart"]["id"] for m in matches] == [ids["need"]]
    assert client.get(f"/v1/pitches/{ids['pitch']}", headers=keys["enterprise"]).json()["status"] == "matched"
