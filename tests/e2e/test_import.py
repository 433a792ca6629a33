"""Bulk import end to end: a 50-row CSV over real HTTP into the real platform; every row is
embedded and matched through the same events as single submissions; re-sending stores nothing."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, func, select

from services.api.imports.status import status_counts
from services.bench.imports import demo_like_rows, write_csv
from services.launcher import Platform
from shared.models import Match, Role

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("platform", ["sqlite"], indirect=True)
def test_fifty_imported_rows_are_all_matched(platform: Platform, headers_for, tmp_path: Path):
    path = tmp_path / "import.csv"
    write_csv(demo_like_rows(50, seed=3), path)
    organizer = {**headers_for(Role.ORGANIZER, "salon organizer"), "content-type": "text/csv"}
    with httpx.Client(base_url=platform.api_url, timeout=120) as http:
        response = http.post("/v1/imports", content=path.read_bytes(), headers=organizer)
        assert response.status_code == 202, response.text
        report = response.json()
        assert report["accepted"] == 50 and len(report["ids"]) == 50 and report["rejected"] == []
        ids = report["ids"]

        deadline = time.monotonic() + 300
        while (counts := status_counts(platform.engine, ids))["matched"] < 50:
            assert time.monotonic() < deadline, counts
            assert not platform.check_alive(), platform.check_alive()
            time.sleep(1)

        with Session(platform.engine) as session:
            with_proposals = session.exec(
                select(func.count(func.distinct(Match.a_id))).where(col(Match.a_id).in_(ids))
            ).one()
        assert with_proposals > 10, "imported rows are matched against each other"

        again = http.post("/v1/imports", content=path.read_bytes(), headers=organizer)
        assert again.status_code == 202
        assert (again.json()["accepted"], again.json()["already_present"]) == (0, 50)
        assert again.json()["ids"] == ids
