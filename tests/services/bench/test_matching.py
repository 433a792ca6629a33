"""The matching benchmark: metric definitions, and a run of every method on the shipped set."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from embeddings import HashingEncoder
from services.bench.matching import METHODS, ndcg_at, recall_at, reciprocal_rank, run
from services.cli import app
from services.matcher.ranking import MatchPolicy

JUDGED = {"a": 3, "b": 2, "c": 1}


def test_ndcg_is_one_for_the_ideal_order_and_lower_otherwise():
    assert ndcg_at(["a", "b", "c", "x"], JUDGED) == pytest.approx(1.0)
    assert ndcg_at(["x", "c", "b", "a"], JUDGED) < ndcg_at(["a", "x", "b", "c"], JUDGED) < 1.0
    assert ndcg_at(["x", "y"], JUDGED) == 0.0


def test_recall_and_mrr_count_good_or_excellent_as_relevant():
    assert recall_at(["c", "x", "b"], JUDGED, k=3) == pytest.approx(0.5)
    assert reciprocal_rank(["c", "x", "b"], JUDGED) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x", "c"], JUDGED) == 0.0


def test_every_method_runs_on_the_shipped_set():
    report = run(HashingEncoder(), None, MatchPolicy())
    assert report["queries"] >= 40
    for method in METHODS:
        assert set(report[method]) == {"ndcg@10", "recall@10", "mrr"}
        assert all(0.0 <= value <= 1.0 for value in report[method].values())
    assert set(report["by_pair"]) == {"pitch-mandate", "pitch-need", "mandate-need"}
    assert report["full_vs_best_baseline_ratio"] > 0
    # No ranking beats a perfect one: the ratio is bounded by what the set allows.
    assert report["full_vs_best_baseline_ratio"] <= report["perfect_vs_best_baseline_ratio"] + 1e-9
    assert 0 < report["structurally_eligible_per_query"] < max(report["candidates"].values())


def test_the_command_prints_json_keyed_by_method_and_metric():
    result = CliRunner().invoke(app, ["bench", "matching", "--json", "--encoder", "hashing"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert set(METHODS) <= set(figures)
    assert figures["full"]["ndcg@10"] >= 0
