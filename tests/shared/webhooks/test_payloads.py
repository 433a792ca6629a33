"""Webhook bodies carry only what the receiver may see."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.events import MatchData, ReasonData
from shared.webhooks.payloads import MatchProposedData, render_body

CONFIDENTIAL_OWNER = "鹤岗碳材科技-owner-key"


def fund_view() -> MatchData:
    return MatchData(
        match_id="m1",
        pair_kind="pitch-mandate",
        subject_kind="mandate",
        subject_id="mandate-1",
        subject_owner="fund",
        counterpart_kind="pitch",
        counterpart_id="pitch-1",
        counterpart_owner=CONFIDENTIAL_OWNER,
        counterpart_title="高纯石墨负极材料深加工",
        score=0.71,
        components={"dense": 0.4, "lexical": 0.8},
        reasons=[ReasonData(rule="sector_overlap", passed=True, contribution=0.2, detail="新材料")],
        explanation="与「高纯石墨负极材料深加工」匹配度 0.71。",
    )


def test_a_match_body_has_ids_title_score_reasons_and_a_link_only():
    body = json.loads(
        render_body("match.proposed", datetime(2025, 5, 1, tzinfo=UTC), MatchProposedData.from_event(fund_view()))
    )
    assert body["type"] == "match.proposed" and body["timestamp"].startswith("2025-05-01T00:00:00")
    data = body["data"]
    assert set(data) == {
        "match_id", "pair_kind", "subject", "counterpart", "score", "components", "reasons", "explanation", "links",
    }  # fmt: skip
    assert data["counterpart"] == {"kind": "pitch", "id": "pitch-1", "title": "高纯石墨负极材料深加工"}
    assert set(data["reasons"][0]) == {"rule", "passed", "detail", "detail_zh"}
    assert data["links"] == {"matches": "/v1/matches?subject=mandate-1"}


def test_the_counterparts_owner_never_appears():
    raw = render_body("match.proposed", datetime.now(UTC), MatchProposedData.from_event(fund_view()))
    assert CONFIDENTIAL_OWNER not in raw and "owner" not in raw


def test_bodies_are_compact_utf8_json():
    raw = render_body("match.proposed", datetime.now(UTC), MatchProposedData.from_event(fund_view()))
    assert "高纯石墨" in raw and "\\u" not in raw
