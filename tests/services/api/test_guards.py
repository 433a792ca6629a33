"""Front-door guards: 413 for big bodies, 429 with Retry-After, Idempotency-Key replay."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from services.api.guards import TokenBuckets
from services.api.main import create_app
from services.launcher import free_port
from shared.db import init_db, make_engine
from shared.models import IdempotencyRecord, Pitch, Role
from shared.security import create_key
from shared.settings import Settings
from tests.live_api import serve_api
from tests.payloads import PITCH


def pitches(settings: Settings) -> list[Pitch]:
    with Session(make_engine(settings.resolved_database_url)) as session:
        return list(session.exec(select(Pitch)).all())


def test_a_body_over_the_limit_is_413_and_stores_nothing(client, key_for, api_settings):
    headers = key_for(Role.ENTERPRISE, "e")
    big = {**PITCH, "summary": "石墨" * 600_000}
    assert client.post("/v1/pitches", json=big, headers=headers).status_code == 413

    def chunked() -> Iterator[bytes]:  # no Content-Length: the cap must count the bytes
        yield b'{"summary": "'
        for _ in range(300):
            yield b"x" * 4096
        yield b'"}'

    response = client.post("/v1/pitches", content=chunked(), headers={**headers, "content-type": "application/json"})
    assert response.status_code == 413
    assert pitches(api_settings) == []


def test_token_buckets_refill_at_the_rate():
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0])
    assert buckets.take("a") == 0 and buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0, "each caller has its own bucket"
    now[0] = 0.5
    assert buckets.take("a") == 0


def test_a_key_over_its_rate_gets_429_with_retry_after(tmp_path: Path):
    settings = Settings(
        data_dir=tmp_path,
        kafka_bootstrap="127.0.0.1:9",
        api_key_pepper="guard-pepper-0123456789",
        rate_limit_per_minute=6,
        rate_limit_burst=3,
    )
    with TestClient(create_app(settings, background=False)) as client:
        engine = make_engine(settings.resolved_database_url)
        with Session(engine) as session:
            _, noisy = create_key(session, role=Role.ENTERPRISE, name="n", owner="n", pepper=settings.api_key_pepper)
            _, quiet = create_key(session, role=Role.ENTERPRISE, name="q", owner="q", pepper=settings.api_key_pepper)
            session.commit()
        codes = [client.get("/v1/pitches", headers={"Authorization": f"Bearer {noisy}"}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = client.get("/v1/pitches", headers={"Authorization": f"Bearer {noisy}"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert client.get("/v1/pitches", headers={"Authorization": f"Bearer {quiet}"}).status_code == 200
        assert all(client.get("/v1/healthz").status_code == 200 for _ in range(5)), "health is never limited"


def test_a_repeated_idempotency_key_replays_the_first_response(client, key_for, api_settings):
    headers = {**key_for(Role.ENTERPRISE, "e"), "Idempotency-Key": "order-42"}
    first = client.post("/v1/pitches", json=PITCH, headers=headers)
    again = client.post("/v1/pitches", json=PITCH, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert len(pitches(api_settings)) == 1
    changed = client.post("/v1/pitches", json={**PITCH, "title": "另一个项目"}, headers=headers)
    assert changed.status_code == 422 and changed.json()["errors"][0]["field"] == "Idempotency-Key"
    assert len(pitches(api_settings)) == 1


def test_a_4xx_answer_is_final_for_its_key(client, key_for, api_settings):
    headers = {**key_for(Role.ENTERPRISE, "e"), "Idempotency-Key": "bad-then-good"}
    assert client.post("/v1/pitches", json={**PITCH, "stage": "zz"}, headers=headers).status_code == 422
    replayed = client.post("/v1/pitches", json={**PITCH, "stage": "zz"}, headers=headers)
    assert replayed.status_code == 422 and replayed.headers["idempotent-replayed"] == "true"
    # The same key with a corrected body is refused: a new attempt needs a new key.
    assert client.post("/v1/pitches", json=PITCH, headers=headers).status_code == 422
    assert pitches(api_settings) == []


def test_the_same_key_sent_concurrently_creates_one_row(tmp_path: Path):
    settings = Settings(
        data_dir=tmp_path, kafka_bootstrap="127.0.0.1:9", api_key_pepper="idem-pepper-0123456789", api_port=free_port()
    )
    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    with Session(engine) as session:
        _, raw = create_key(session, role=Role.ENTERPRISE, name="e", owner="e", pepper=settings.api_key_pepper)
        session.commit()
    headers = {"Authorization": f"Bearer {raw}", "Idempotency-Key": "burst-1"}
    with serve_api(settings) as url:

        def post(_: int) -> httpx.Response:
            return httpx.post(f"{url}/v1/pitches", json=PITCH, headers=headers, timeout=30)

        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(post, range(8)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(pitches(settings)) == 1
    with Session(engine) as session:
        assert len(session.exec(select(IdempotencyRecord)).all()) == 1
