"""`salon bench recovery` at a tiny size: the real platform, the broker killed and restarted,
every figure present and sane, nothing lost (never a speed)."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

from typer.testing import CliRunner

from services.cli import app


def test_bench_recovery_reports_time_to_zero_backlog_and_the_ratio_to_steady_state(tmp_path: Path):
    result = CliRunner().invoke(
        app,
        ["bench", "recovery", "--pending", "12", "--steady", "12", "--results-dir", str(tmp_path), "--json"],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])

    assert figures["pending"] == 12 and figures["steady_submissions"] == 12
    assert figures["outbox_queued_at_restart"] >= 12, "what arrived during the outage waited in the outbox"
    assert figures["http_statuses"] == {"202": 24}, "the api accepted everything, broker or not"
    assert figures["lost"] == 0 and figures["duplicate_proposals"] == 0 and figures["problems"] == []
    assert figures["ledger"]["pending"]["vectors"] == figures["ledger"]["pending"]["match_sets"] == 12
    assert 0 < figures["first_matched_after_restart_s"] <= figures["recovery_s"]
    assert figures["outbox_drained_s"] <= figures["recovery_s"]
    assert figures["steady_rate"] > 0 and figures["recovery_rate"] > 0
    ratios = {key for key in figures if "ratio" in key}
    assert ratios == {"recovery_vs_steady_ratio", "recovery_active_vs_steady_ratio"}
    assert all(key.endswith("_ratio") and figures[key] > 0 for key in ratios)
    recovery = figures["timeline"]["recovery"]
    assert recovery[-1][1] == 12 and all(a[0] <= b[0] and a[1] <= b[1] for a, b in pairwise(recovery))

    saved = json.loads((tmp_path / "recovery.json").read_text())
    assert saved["figures"]["recovery_vs_steady_ratio"] == figures["recovery_vs_steady_ratio"]
    assert (tmp_path / "recovery.png").stat().st_size > 0
