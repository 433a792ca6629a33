"""The embedded broker is memory-only: a kill -9 and restart loses every topic. The outbox
and the reconciler must make that harmless: what the API accepted still gets matched, and
both sides of every proposal are notified (the restarted broker can swallow acknowledged
events; the reconciler publishes those the notifier never saw again)."""

from __future__ import annotations

import time

import httpx
import pytest

from services.launcher import Platform
from shared.models import Role
from tests.payloads import MANDATE, PITCH


def wait_matched(http: httpx.Client, path: str, headers: dict[str, str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = http.get(path, headers=headers).json()["status"]
        if status == "matched":
            break
        time.sleep(0.5)
    return status


@pytest.mark.parametrize("platform", ["sqlite"], indirect=True)
def test_submissions_accepted_around_a_broker_restart_are_all_matched(platform: Platform, headers_for):
    fund = headers_for(Role.FUND, "fund")
    enterprise = headers_for(Role.ENTERPRISE, "enterprise")
    with httpx.Client(base_url=platform.api_url, timeout=30) as http:
        mandate_id = http.post("/v1/mandates", json=MANDATE, headers=fund).json()["id"]
        assert wait_matched(http, f"/v1/mandates/{mandate_id}", fund) == "matched"

        assert platform.broker is not None
        platform.broker.kill()
        during = http.post("/v1/pitches", json=PITCH, headers=enterprise)
        assert during.status_code == 202, "intake does not depend on the broker"
        platform.restart_broker()
        after = http.post("/v1/pitches", json={**PITCH, "title": "石墨负极二期扩产"}, headers=enterprise)

        pitch_ids = [during.json()["id"], after.json()["id"]]
        for pitch_id in pitch_ids:
            assert wait_matched(http, f"/v1/pitches/{pitch_id}", enterprise) == "matched"
            matches = http.get("/v1/matches", params={"subject": pitch_id}, headers=enterprise).json()
            assert mandate_id in {m["counterpart"]["id"] for m in matches}

        wanted = {(pitch_id, mandate_id) for pitch_id in pitch_ids} | {(mandate_id, pitch_id) for pitch_id in pitch_ids}
        assert wait_notified(http, wanted, [enterprise, fund]) == wanted


def wait_notified(
    http: httpx.Client, wanted: set[tuple[str, str]], inboxes: list[dict[str, str]], timeout: float = 90
) -> set[tuple[str, str]]:
    """The (subject, counterpart) pairs of `wanted` found in the inboxes within `timeout`."""
    deadline = time.monotonic() + timeout
    found: set[tuple[str, str]] = set()
    while time.monotonic() < deadline:
        for headers in inboxes:
            for note in http.get("/v1/notifications", params={"limit": 500}, headers=headers).json():
                found.add((note["subject"], note["payload"]["counterpart_id"]))
        if wanted <= found:
            break
        time.sleep(0.5)
    return wanted & found
