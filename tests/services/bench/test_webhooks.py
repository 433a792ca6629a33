"""The webhook benchmark: a small run through the real delivery path prints every keyed figure."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from services.bench.webhooks import run
from services.cli import app


def test_a_small_run_delivers_everything_with_valid_signatures():
    report = run(count=30, paced_count=10, rate=50, concurrency=4, timeout_s=30, database_url=None)
    assert report["backlog"]["delivered"] == 30 and report["paced"]["delivered"] == 10
    assert report["bad_signatures"] == 0
    assert report["raw_requests_per_s"] > 0 and report["backlog"]["deliveries_per_s"] > 0
    assert 0 <= report["paced"]["p50_ms"] <= report["paced"]["p99_ms"]
    assert report["deliveries_vs_raw_ratio"] > 0


def test_the_command_prints_json():
    result = CliRunner().invoke(
        app, ["bench", "webhooks", "--count", "20", "--rate", "50", "--paced-seconds", "0.5", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) >= {"raw_requests_per_s", "backlog", "paced", "deliveries_vs_raw_ratio", "path"}
    assert "no Kafka" in report["path"]
