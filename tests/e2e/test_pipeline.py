"""End to end over real processes: HTTP intake → Kafka → embedder → matcher → match events.

The match events are read from the real `salon.matches` topic with kafka-python.
"""

from __future__ import annotations

import time

import httpx
from kafka import KafkaConsumer

from services.launcher import Platform
from shared.events import Envelope
from shared.models import Role
from tests.payloads import MANDATE, NEED, PITCH


def read_match_events(bootstrap: str, topic: str, subjects: set[str], timeout: float = 120) -> list[Envelope]:
    """Read `match.proposed` events until every subject has at least one."""
    reader = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    events: list[Envelope] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for batch in reader.poll(timeout_ms=500).values():
                events.extend(Envelope.from_bytes(record.value) for record in batch)
            if subjects <= {event.subject for event in events if event.type == "match.proposed"}:
                break
    finally:
        reader.close()
    return events


def wait_for_status(http: httpx.Client, path: str, headers: dict[str, str], status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = http.get(path, headers=headers).json()
        if body["status"] == status or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def test_submissions_flow_to_match_events_on_the_real_topic(platform: Platform, headers_for):
    enterprise = headers_for(Role.ENTERPRISE, "鹤岗碳材科技")
    fund = headers_for(Role.FUND, "黑龙江省新材料产业引导基金")
    government = headers_for(Role.GOVERNMENT, "鹤岗市人民政府")
    with httpx.Client(base_url=platform.api_url, timeout=30) as http:
        need_id = http.post("/v1/needs", json=NEED, headers=government).json()["id"]
        mandate_id = http.post("/v1/mandates", json=MANDATE, headers=fund).json()["id"]
        pitch = http.post("/v1/pitches", json=PITCH, headers=enterprise)
        assert pitch.status_code == 202
        pitch_id = pitch.json()["id"]

        events = read_match_events(
            platform.settings.bootstrap, platform.settings.topic("matches"), {pitch_id, mandate_id, need_id}
        )
        proposed = [event for event in events if event.type == "match.proposed"]
        by_subject = {
            subject: {event.payload().counterpart_id for event in proposed if event.subject == subject}
            for subject in (pitch_id, mandate_id, need_id)
        }
        assert by_subject[pitch_id] == {mandate_id, need_id}
        assert pitch_id in by_subject[mandate_id] and need_id in by_subject[mandate_id]
        assert pitch_id in by_subject[need_id]
        first = next(event.payload() for event in proposed if event.subject == pitch_id)
        assert first.score > 0 and first.reasons and first.explanation
        assert any(reason.rule == "lexical_similarity" and reason.passed for reason in first.reasons)

        # The API tells the same story: status reached `matched`, and ranked matches with reasons.
        assert wait_for_status(http, f"/v1/pitches/{pitch_id}", enterprise, "matched")["status"] == "matched"
        matches = http.get("/v1/matches", params={"subject": pitch_id}, headers=enterprise).json()
        assert {m["counterpart"]["id"] for m in matches} == {mandate_id, need_id}
        assert [m["rank"] for m in matches] == [1, 2]
        assert matches[0]["score"] >= matches[1]["score"]
        assert all(m["reasons"] for m in matches)
        only_funds = http.get("/v1/matches", params={"subject": pitch_id, "kind": "mandate"}, headers=enterprise)
        assert [m["counterpart"]["id"] for m in only_funds.json()] == [mandate_id]

        # The notifier filled the fund's inbox from the same stream.
        deadline = time.monotonic() + 30
        inbox: list = []
        while time.monotonic() < deadline and not inbox:
            inbox = http.get("/v1/notifications", headers=fund).json()
            time.sleep(0.3)
        assert any(item["payload"]["counterpart_id"] == pitch_id for item in inbox)

        # Health reports the matcher's index from its heartbeat (every 2 s).
        deadline = time.monotonic() + 20
        health = http.get("/v1/healthz").json()
        while time.monotonic() < deadline and health["index"]["sizes"] != {"pitch": 1, "mandate": 1, "need": 1}:
            time.sleep(0.5)
            health = http.get("/v1/healthz").json()
        assert health["database"]["ok"] and health["broker"]["ok"]
        assert health["index"]["state"] == "ready"
        assert health["index"]["sizes"] == {"pitch": 1, "mandate": 1, "need": 1}
