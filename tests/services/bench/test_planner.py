"""`salon bench planner` prints its figures, every constraint satisfied (a small instance here)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from services.cli import app


def test_bench_planner_reports_bound_gap_and_a_clean_constraint_check():
    result = CliRunner().invoke(app, ["bench", "planner", "--candidates", "80", "--sessions", "3", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["status"] in ("optimal", "feasible") and figures["constraints_violated"] == 0
    assert figures["objective"] <= figures["upper_bound"] and figures["gap"] >= 0
