"""End to end over real processes: HTTP intake → Kafka → embedder → matcher → match events.

The match events are read from the real `salon.matches` topic with kafka-python.
"""

from __future__ import annotations

import json
import time

import httpx
from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

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
        # The pitch comes once both are indexed, so its proposals are ranked from the pitch's side:
        # lexical similarity is measured from the subject's text, and ranked from the other side
        # the same pair may not pass the lexical rule (arrival order made this test flaky).
        assert wait_for_status(http, f"/v1/needs/{need_id}", government, "matched")["status"] == "matched"
        assert wait_for_status(http, f"/v1/mandates/{mandate_id}", fund, "matched")["status"] == "matched"
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
        # (It holds the fund's proposal with the need first: wait for the one with the pitch.)
        deadline = time.monotonic() + 30
        inbox: list = []
        while time.monotonic() < deadline and not any(i["payload"]["counterpart_id"] == pitch_id for i in inbox):
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

        # Operations: every process serves Prometheus metrics, and the logs are JSON lines
        # that name the event being handled.
        check_metrics(platform, health, posted=3)
        check_json_logs(platform, {event.id for event in proposed})


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, url
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (key, sample_labels), value in samples.items() if key == name and wanted <= set(sample_labels))


def check_metrics(platform: Platform, health: dict, *, posted: int) -> None:
    api = scrape(f"{platform.api_url}/metrics")
    assert total(api, "salon_http_request_duration_seconds_count", method="POST", route="/v1/pitches") == 1
    assert total(api, "salon_http_request_duration_seconds_count", route="/v1/pitches/{entity_id}", status_class="2xx")

    def worker(name: str) -> str:
        return f"http://127.0.0.1:{health['services'][name]['metrics_port']}/metrics"

    embedder = scrape(worker("embedder"))
    assert total(embedder, "salon_events_handled_total", group="salon-embedder", topic="salon.submissions") >= posted
    assert total(embedder, "salon_embed_batch_size_sum") >= posted  # the reconciler may re-drive (>= 5 s)
    assert total(embedder, "salon_embed_duration_seconds_count") >= 1

    notifier = scrape(worker("notifier"))
    assert total(notifier, "salon_events_handled_total", group="salon-notifier", topic="salon.matches") >= 1

    # The matcher's lag is measured every 5 s: wait for a measurement after the last commit.
    deadline = time.monotonic() + 20
    while True:
        matcher = scrape(worker("matcher"))
        lag = {key: value for key, value in matcher.items() if key[0] == "salon_consumer_lag"}
        if (lag and not any(lag.values())) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert lag and not any(lag.values()), lag
    assert {dict(labels)["topic"] for _, labels in lag} == {"salon.vectors"}
    assert total(matcher, "salon_events_handled_total", group="salon-matcher", topic="salon.vectors") >= posted
    assert total(matcher, "salon_matcher_proposals_total") >= 2
    for kind in ("pitch", "mandate", "need"):
        assert total(matcher, "salon_index_size", kind=kind) == 1
    assert total(matcher, "salon_events_dead_lettered_total") == 0

    # Every process's relay drains the one shared outbox, so the api's own submissions may be
    # published by another process's relay: count them over all four.
    published = sum(total(samples, "salon_outbox_published_total") for samples in (api, embedder, notifier, matcher))
    assert published >= posted


def check_json_logs(platform: Platform, match_event_ids: set[str]) -> None:
    logs = {
        name: [json.loads(line) for line in process.log_path.read_text().splitlines() if line.strip()]  # every line
        for name, process in platform.services.items()
    }
    for name, entries in logs.items():
        assert entries and {entry["service"] for entry in entries} == {name}
    notifier = logs["notifier"]
    named = {e.get("event_id") for e in notifier} | {i for e in notifier for i in e.get("event_ids", [])}
    assert named & match_event_ids, "no notifier line names a match event it handled"
    posts = [e for e in logs["api"] if e.get("route") == "/v1/pitches" and e.get("method") == "POST"]
    assert posts and posts[0]["status"] == 202 and posts[0]["request_id"]
