"""GET /metrics: HTTP latency by route template and status class, and one log line per request."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.api.main import create_app
from shared.logs import JsonFormatter
from shared.models import Role
from shared.settings import Settings
from tests.payloads import PITCH

DURATION_COUNT = "salon_http_request_duration_seconds_count"


def request_counts(client: TestClient) -> dict[tuple[str, str, str], float]:
    """(method, route, status class) → requests, as scraped (without a key)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.labels["method"], s.labels["route"], s.labels["status_class"]): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name == DURATION_COUNT
    }


@pytest.fixture
def http_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("api"))
    logger = logging.getLogger("salon.http")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def test_metrics_count_requests_by_route_template_never_by_raw_path(client, key_for, http_log):
    headers = key_for(Role.ENTERPRISE, "鹤岗碳材科技")
    before = request_counts(client)
    created = client.post("/v1/pitches", json=PITCH, headers=headers)
    assert created.status_code == 202
    pitch_id = created.json()["id"]
    assert client.get(f"/v1/pitches/{pitch_id}", headers=headers).status_code == 200
    assert client.get("/v1/pitches/no-such-pitch", headers=headers).status_code == 404
    assert client.get("/v1/pitches/no-such-pitch").status_code == 401
    assert client.get(f"/no/such/path/{pitch_id}").status_code == 404
    after = request_counts(client)

    def grew(key: tuple[str, str, str]) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert grew(("POST", "/v1/pitches", "2xx")) == 1
    assert grew(("GET", "/v1/pitches/{entity_id}", "2xx")) == 1
    assert grew(("GET", "/v1/pitches/{entity_id}", "4xx")) == 2
    assert grew(("GET", "unmatched", "4xx")) == 1
    assert grew(("GET", "/metrics", "2xx")) == 1  # the first scrape
    assert not [key for key in after if pitch_id in key[1] or "no-such" in key[1]]

    # One JSON line per request, with the request id the response carries; no raw path.
    entries = [json.loads(line) for line in http_log.getvalue().splitlines()]
    (post,) = [e for e in entries if e.get("method") == "POST"]
    assert post["route"] == "/v1/pitches" and post["status"] == 202 and post["level"] == "INFO"
    assert post["request_id"] == created.headers["x-request-id"]
    assert post["duration_ms"] >= 0
    assert pitch_id not in http_log.getvalue()


def test_a_callers_request_id_is_kept_and_a_malformed_one_replaced(client):
    assert client.get("/v1/healthz", headers={"X-Request-ID": "trace-42.a"}).headers["x-request-id"] == "trace-42.a"
    replaced = client.get("/v1/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert replaced != "bad id\twith spaces" and len(replaced) == 32


def test_refusals_before_routing_are_labelled_with_the_route_and_metrics_are_not_rate_limited(tmp_path: Path, key_for):
    settings = Settings(
        data_dir=tmp_path,
        kafka_bootstrap="127.0.0.1:9",
        api_key_pepper="test-pepper-0123456789",
        rate_limit_burst=1,
        rate_limit_per_minute=1,
    )
    headers = key_for(Role.ENTERPRISE, "e")
    with TestClient(create_app(settings, background=False)) as client:
        before = request_counts(client)
        assert client.get("/v1/pitches/x", headers=headers).status_code == 404
        assert client.get("/v1/pitches/x", headers=headers).status_code == 429  # answered by the limiter
        for _ in range(3):
            after = request_counts(client)  # scraping is never limited
        assert (
            after[("GET", "/v1/pitches/{entity_id}", "4xx")] - before.get(("GET", "/v1/pitches/{entity_id}", "4xx"), 0)
            == 2
        )
