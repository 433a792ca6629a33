"""`salon bench throughput`: demo-like submissions, CPU accounting, and a tiny run through the real
broker and embedder process in which every submission becomes exactly one vector."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.bench.throughput import demo_like_submissions, measure_matcher, process_cpu_seconds, submission_texts
from services.cli import app
from shared.events import ENTITY_KINDS, SubmissionData
from shared.settings import Settings, get_settings


def test_demo_like_submissions_are_api_shaped_distinct_and_deterministic():
    events = demo_like_submissions(200)
    texts = submission_texts(events)
    assert len(set(texts)) == 200, "no two texts are equal"
    assert texts == submission_texts(demo_like_submissions(200)), "same texts on every run"
    assert len({event.id for event in events}) == 200
    kinds = set()
    for event in events:
        data = event.payload()
        assert isinstance(data, SubmissionData) and event.type == f"{data.kind}.submitted"
        assert event.subject == data.entity_id and data.text and data.fields
        kinds.add(data.kind)
    assert kinds == set(ENTITY_KINDS)
    assert any("。" in text for text in texts) and any(". " in text for text in texts), "Chinese and English"


def test_process_cpu_seconds_counts_this_process_and_nothing_for_a_missing_one():
    before = process_cpu_seconds(os.getpid())
    assert before is not None and before > 0
    sum(i * i for i in range(2_000_000))
    after = process_cpu_seconds(os.getpid())
    assert after is not None and after > before
    assert process_cpu_seconds(2**22 + 12345) is None


def test_the_matcher_cost_is_measured_on_every_event_at_the_given_index_size(tmp_path: Path):
    settings = Settings(data_dir=tmp_path)
    figures = measure_matcher(entities=300, events=4, warmup=3, work_dir=tmp_path, settings=settings)
    assert figures["entities"] == 300 and figures["events"] == 4 and figures["warmup_events"] == 3
    assert sum(figures["index_sizes"].values()) == 300 + 3 + 4, "the seeded entities, then each handled event"
    assert 0 < figures["cpu_ms_per_event_p50"] <= figures["cpu_ms_per_event_p95"]
    assert figures["cpu_ms_per_event_cold"] > 0
    assert figures["proposals_per_event"] >= 0 and figures["rebuild_cpu_seconds"] >= 0
    assert figures["state_bytes_per_entity"] is not None


@pytest.fixture
def small_embedder(monkeypatch: pytest.MonkeyPatch):
    # Small polls, so 40 submissions take several polls and the warm-up stays short.
    monkeypatch.setenv("SALON_EMBED_POLL_SIZE", "16")
    monkeypatch.setenv("SALON_EMBED_BATCH_SIZE", "8")
    monkeypatch.setenv("SALON_EMBED_BATCH_WAIT_MS", "50")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.e2e
@pytest.mark.model
def test_a_tiny_run_embeds_every_submission_exactly_once(tmp_path: Path, small_embedder: None):
    count = 40
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "throughput",
            "--count",
            str(count),
            "--batch-size",
            "8",
            "--batch-size",
            "16",
            "--import-count",
            "0",
            "--matcher-entities",
            "0",
            "--results-dir",
            str(tmp_path / "results"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)

    assert (figures["vectors_produced"], figures["vectors_duplicated"], figures["vectors_missing"]) == (count, 0, 0)
    assert figures["vector_agreement_min_cosine"] > 0.999, "the pipeline computes the raw model's vectors"
    polls = figures["embed_polls_used"]
    assert sum(int(size) * n for size, n in polls.items()) == count
    assert max(int(size) for size in polls) <= 16 and figures["embed_poll_size"] == 16
    assert figures["embed_batch_size"] == 8

    assert set(figures["encode_rate_by_batch_size"]) == {"8", "16"}
    assert figures["encode_best_batch_size"] in (8, 16)
    assert figures["encode_best_rate"] == max(figures["encode_best_rate_sweep"], figures["encode_best_rate_recheck"])
    assert figures["pipeline_rate"] == pytest.approx(count / figures["pipeline_seconds"], rel=0.01)
    ratio = figures["pipeline_rate"] / figures["encode_best_rate"]
    assert figures["pipeline_vs_encode_ratio"] == pytest.approx(ratio, abs=0.002)
    assert figures["pipeline_vs_encode_target"] == 0.85
    assert all(isinstance(value, float) for key, value in figures.items() if key.endswith("_ratio"))
    cpu_ratio = figures["encode_cpu_ms_per_text"] / figures["embedder_cpu_ms_per_text"]
    assert figures["pipeline_vs_encode_cpu_ratio"] == pytest.approx(cpu_ratio, abs=0.01)
    assert figures["torch_threads"] >= 1 and figures["embedder_torch_threads"] >= 1
    assert figures["encode_cpu_ms_per_text"] > 0 and figures["embedder_cpu_ms_per_text"] > 0
    assert "import" not in figures and "matcher" not in figures

    saved = json.loads((tmp_path / "results" / "throughput.json").read_text())
    assert saved["figures"] == figures and saved["machine"]["cpus"] >= 1
    assert (tmp_path / "results" / "throughput.png").stat().st_size > 0
