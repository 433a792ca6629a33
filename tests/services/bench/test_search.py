"""`salon bench search` at a tiny size: the figures' shape and sanity (never a speed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embeddings.index import EXACT, IVF, IndexConfig
from services.bench.search import clustered_vectors, run_search_bench
from services.cli import app
from shared.settings import get_settings

TINY = ["bench", "search", "--k", "5", "--dim", "16"]


def test_clustered_vectors_are_unit_and_have_neighbourhoods() -> None:
    vectors = clustered_vectors(3000, dim=64, seed=1)
    assert vectors.shape == (3000, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = vectors[:200] @ vectors.T
    cosines[np.arange(200), np.arange(200)] = -1.0
    random_pair = float(cosines[cosines > -1].mean())
    nearest = float(cosines.max(axis=1).mean())
    # Topics: a text's nearest neighbour is far closer than a random text (iid vectors: ≈ equal).
    assert 0.1 < random_pair < 0.45 and nearest > random_pair + 0.3
    assert np.array_equal(clustered_vectors(500, dim=64, seed=1), clustered_vectors(500, dim=64, seed=1))


def test_run_search_bench_reports_both_structures_against_exact() -> None:
    figures = run_search_bench(sizes=[3000, 400], dim=32, queries=40, k=10, seed=2, config=IndexConfig(exact_max=1000))
    assert figures["k"] == 10 and figures["config"]["exact_max"] == 1000
    assert len(figures["load_average_1min"]) == 2
    small, large = figures["sizes"]  # sorted by size
    assert (small["size"], small["index_kind"], small["ivf_lists"]) == (400, EXACT, 0)
    assert (large["size"], large["index_kind"]) == (3000, IVF) and large["ivf_lists"] > 0
    assert small["recall_at_k"] == 1.0  # exact search is its own ground truth
    assert 0.9 <= large["recall_at_k"] <= 1.0 and large["recall_ok"] is (large["recall_at_k"] >= 0.95)
    for row in (small, large):
        assert 0 < row["p50_ms"] <= row["p99_ms"] and 0 < row["exact_p50_ms"] <= row["exact_p99_ms"]
        assert row["build_seconds"] >= 0 and row["exact_timed_queries"] == 40
        assert row["latency_p50_vs_exact_ratio"] > 0 and row["latency_p99_vs_exact_ratio"] > 0
        assert row["p99_ok"] is None  # the latency target applies from 1M vectors
        assert row["data_nearest_cosine"] > row["data_kth_cosine"] > row["data_random_pair_cosine"]
    # SQ8 codes take a quarter of float32: the IVF index is much smaller per vector.
    assert small["memory_vs_exact_ratio"] == 1.0
    assert large["memory_vs_exact_ratio"] < 0.6 and large["index_mb_per_million"] < large["exact_mb_per_million"]
    ratio_keys = [key for row in figures["sizes"] for key in row if "_vs_" in key]
    assert ratio_keys and all(key.endswith("_ratio") for key in ratio_keys)


def test_run_search_bench_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        run_search_bench(sizes=[], queries=10)
    with pytest.raises(ValueError):
        run_search_bench(sizes=[100], queries=0)


def test_cli_prints_json_and_saves_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The command uses the product's settings: a low threshold makes the 2 000 vectors IVF.
    monkeypatch.setenv("SALON_INDEX_EXACT_MAX", "1000")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app,
            [*TINY, "--sizes", "2000", "--queries", "20", "--json", "--results-dir", str(tmp_path)],
        )
        table = CliRunner().invoke(
            app,
            [*TINY, "--sizes", "300", "--queries", "5", "--results-dir", str(tmp_path / "table")],
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    [row] = figures["sizes"]
    assert row["index_kind"] == IVF and figures["config"]["exact_max"] == 1000
    saved = json.loads((tmp_path / "search.json").read_text(encoding="utf-8"))
    assert saved["benchmark"] == "search" and saved["figures"]["sizes"][0]["size"] == 2000
    assert (tmp_path / "search.png").stat().st_size > 0
    assert table.exit_code == 0, table.output
    assert "recall@5" in table.output and "exact" in table.output

    bad = CliRunner().invoke(app, ["bench", "search", "--sizes", "10,x", "--results-dir", str(tmp_path)])
    assert bad.exit_code != 0
