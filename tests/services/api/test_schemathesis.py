"""schemathesis against the real API over HTTP, as two participants and an organizer.

Every operation in the OpenAPI gets generated valid and invalid requests (fixed seed, bounded
examples); the run must find zero 5xx answers and zero responses outside the documented schema,
status codes, content types and headers (incl. `Allow` on 405), and must see invalid input refused.

One check is left out, on purpose: `positive_data_acceptance` ("a schema-valid request must be
accepted"). Our cross-field rules (ticket_min ≤ ticket_max, a venue or an online link, a public
HTTPS webhook URL, 10–20 seats with role minimums that fit) cannot be written in JSON Schema, so
a request valid by the schema alone is rightly refused with a field-level 422.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from services.launcher import free_port
from shared.db import init_db, make_engine
from shared.models import Role
from shared.security import create_key
from shared.settings import Settings
from tests.live_api import serve_api
from tests.payloads import MANDATE, NEED, PITCH

SEED = 20261122
EXCLUDED_CHECKS = "positive_data_acceptance"
# Bounded: examples per operation for each caller (the coverage phase adds its own edge cases).
MAX_EXAMPLES = {"organizer": 6, "enterprise": 4, "fund": 4}


@dataclass
class LiveApi:
    url: str
    keys: dict[str, str]  # caller → raw key
    ids: dict[str, str]  # what each run's path parameters point at


def _seed(url: str, keys: dict[str, str]) -> dict[str, str]:
    """Real objects for the path parameters, so operations get past 404 into their logic."""

    def post(caller: str, path: str, body: dict[str, object]) -> str:
        response = httpx.post(f"{url}{path}", json=body, headers={"Authorization": f"Bearer {keys[caller]}"})
        assert response.status_code in (201, 202), response.text
        return str(response.json()["id"])

    pitch = post("enterprise", "/v1/pitches", PITCH)
    second = post("enterprise", "/v1/pitches", {**PITCH, "title": "石墨烯导热膜中试线"})
    post("fund", "/v1/mandates", MANDATE)
    post("organizer", "/v1/needs", NEED)
    session = post(
        "organizer",
        "/v1/sessions",
        {
            "theme": "石墨产业链闭门会",
            "starts_at": "2027-03-01T09:00:00Z",
            "venue": "鹤岗市会客厅",
            "capacity": 12,
            "featured_pitch_ids": [pitch, second],
        },
    )
    return {"entity_id": pitch, "session_id": session}


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("schemathesis"),
        kafka_bootstrap="127.0.0.1:9",  # relay off: these requests stop at the outbox
        api_key_pepper="schemathesis-pepper-0123456789",
        api_port=free_port(),
        rate_limit_per_minute=1_000_000,  # the run is a burst by design; 429s are tested elsewhere
        rate_limit_burst=1_000_000,
    )
    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    keys = {}
    with Session(engine) as session:
        for role, owner in ((Role.ORGANIZER, "organizer"), (Role.ENTERPRISE, "enterprise"), (Role.FUND, "fund")):
            _, keys[owner] = create_key(session, role=role, name=owner, owner=owner, pepper=settings.api_key_pepper)
        session.commit()
    with serve_api(settings) as url:
        yield LiveApi(url=url, keys=keys, ids=_seed(url, keys))


@pytest.mark.parametrize("caller", list(MAX_EXAMPLES))
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    live_api: LiveApi, caller: str, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    # Path parameters point at real objects (the enterprise's pitch, the organizer's session): the
    # owner's run exercises the operations, the others' runs must get 404/403, never a 5xx.
    config.write_text(
        "[parameters]\n" + "".join(f'"path.{name}" = "{value}"\n' for name, value in live_api.ids.items()),
        encoding="utf-8",
    )
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config),
        "run",
        f"{live_api.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {live_api.keys[caller]}",
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES[caller]),
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--no-shrink",
        "--request-timeout",
        "30",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    summary = run.stdout[-6000:]
    print(summary)  # the figures land in the test log: operations tested, cases generated, seed
    assert run.returncode == 0, f"schemathesis found problems as {caller}:\n{run.stdout[-20000:]}\n{run.stderr}"
    assert "Tested:" in run.stdout
