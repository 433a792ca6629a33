"""The latency benchmark: a tiny run through the real platform, and its bookkeeping."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pytest
from sqlmodel import Session, func, select
from typer.testing import CliRunner

from embeddings import HashingEncoder
from services.bench.corpus import kind_counts, seed_corpus, submission_bodies, variant_entity
from services.bench.latency import (
    MARKER,
    LatencyBenchError,
    Outcome,
    Sent,
    bench_settings,
    cold_rebuild,
    percentile,
    prepare_corpus,
    search_rate,
    seed_replica_snapshots,
    summarise,
)
from services.cli import app
from services.matcher import concepts
from shared.db import init_db, make_engine
from shared.models import ENTITY_TABLES, EntityStatus, EntityVector, Pitch, entity_text


def test_a_tiny_run_proposes_for_every_submission_and_saves_its_figures(tmp_path: Path) -> None:
    results = tmp_path / "results"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "latency",
            "--entities",
            "400",
            "--distinct-texts",
            "40",
            "--rate",
            "5",
            "--duration",
            "5",
            "--warmup",
            "2",
            "--search-sizes",
            "",
            "--drain-timeout",
            "180",
            "--results-dir",
            str(results),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["corpus"]["kinds"] == {"pitch": 280, "mandate": 60, "need": 60}
    assert sum(report["indexed_at_start"].values()) == 400
    assert report["sent"] == report["accepted"] == 25
    assert report["lost"] == 0 and report["refused"] == 0 and report["unfinished"] == 0
    assert report["proposed"] + report["duplicates"] + report["no_proposal"] == 25
    assert report["proposed"] >= 20, "the submissions are built to find counterparts"
    assert 0 < report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"] <= report["max_ms"]
    assert len(report["latencies_ms"]) == report["proposed"]
    assert report["p99_vs_target_ratio"] == pytest.approx(report["p99_ms"] / 1000, abs=1e-3)
    assert report["drain_s"] is not None and report["drain_s"] >= 0
    for stage in report["stages"].values():
        assert stage["p50_ms"] is not None and stage["p50_ms"] <= stage["p95_ms"]
    assert {"p99_vs_target_ratio", "late_vs_early_p50_ratio"} <= set(report)
    saved = json.loads((results / "latency.json").read_text(encoding="utf-8"))
    assert saved["figures"]["p99_ms"] == report["p99_ms"]
    assert (results / "latency.png").stat().st_size > 0


def test_the_seeded_corpus_is_matched_with_a_vector_each(sqlite_engine) -> None:
    report = seed_corpus(sqlite_engine, HashingEncoder(384), total=300, distinct=20, seed=1, chunk=100)
    assert report.entities == kind_counts(300) == {"pitch": 210, "mandate": 45, "need": 45}
    assert report.encoded_texts == 20
    with Session(sqlite_engine) as session:
        assert session.exec(select(func.count()).select_from(EntityVector)).one() == 300
        for kind, count in report.entities.items():
            table = ENTITY_TABLES[kind]
            statuses = session.exec(select(table.status)).all()
            assert len(statuses) == count and set(statuses) == {EntityStatus.MATCHED}
            assert session.exec(select(func.count(func.distinct(table.owner)))).one() == count


def test_submissions_are_valid_fresh_and_deterministic() -> None:
    first = list(islice(submission_bodies(3), 40))
    assert first == list(islice(submission_bodies(3), 40))
    assert first != list(islice(submission_bodies(4), 40))
    assert {kind for kind, _, _ in first} == {"pitch", "mandate", "need"}
    for kind, body, _ in first:
        variant_entity(kind, body, owner="someone")  # validates like the API would


def _outcome(latencies: list[float], *, rate: float = 10.0, lost: int = 0) -> Outcome:
    sent = [Sent(number=n, kind="pitch", scheduled=n / rate, sent=n / rate, status=202) for n in range(len(latencies))]
    for item in sent:
        item.entity_id = f"e{item.number}"
    return Outcome(
        rate=rate,
        duration_s=len(latencies) / rate,
        sent=sent,
        first_send=0.0,
        last_send=(len(latencies) - 1) / rate,
        backlog_at_end=2,
        drain_s=0.4,
        latencies={item.entity_id: value for item, value in zip(sent, latencies, strict=True) if item.entity_id},
        unaccounted={f"x{n}": "lost" for n in range(lost)},
    )


def test_summary_figures() -> None:
    assert percentile([], 50) != percentile([], 50)  # NaN for nothing measured
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0 and percentile([1.0, 2.0, 3.0], 99) == 3.0
    figures = summarise(_outcome([0.2] * 90 + [0.5] * 9 + [2.0]), target_p99_s=1.0)
    assert figures["p50_ms"] == 200.0 and figures["p99_ms"] == 500.0 and figures["max_ms"] == 2000.0
    assert figures["held"] and figures["p99_vs_target_ratio"] == 0.5
    assert figures["rate_achieved_per_s"] == 10.0 and figures["late_vs_early_p50_ratio"] == 1.0
    growing = summarise(_outcome([0.1 * n for n in range(1, 31)]), target_p99_s=1.0)
    assert not growing["held"] and growing["late_vs_early_p50_ratio"] > 3
    assert not summarise(_outcome([0.2] * 10, lost=1), target_p99_s=1.0)["held"], "a lost submission fails"


def _steps(rate: float, capacity: float) -> list[float]:
    tried: list[float] = []

    def measure(step: float) -> bool:
        tried.append(step)
        return step <= capacity

    search_rate(measure, rate, held=rate <= capacity)
    return tried


def test_the_rate_search_steps_up_while_held_and_halves_otherwise() -> None:
    assert _steps(20, capacity=6) == [10.0, 5.0, 7.0]
    assert _steps(20, capacity=5.5) == [10.0, 5.0, 7.0]
    assert _steps(20, capacity=0.5) == [10.0, 5.0, 2.5, 1.2]
    assert _steps(20, capacity=35) == [30.0, 45.0]
    assert _steps(20, capacity=1000) == [30.0, 45.0, 67.5]
    assert _steps(20, capacity=14) == [10.0, 14.0]


def test_a_data_folder_is_reused_only_for_the_same_corpus(tmp_path: Path) -> None:
    settings = bench_settings(tmp_path, "")
    wanted = {"entities": 1000, "distinct": 50, "seed": 0, "model": settings.model}
    marker = {**wanted, "database_url": settings.resolved_database_url, "kinds": kind_counts(1000), "runs": 1}
    (tmp_path / MARKER).write_text(json.dumps(marker), encoding="utf-8")
    reused = prepare_corpus(settings, entities=1000, distinct=50, seed=0, on_progress=lambda _m: None)
    assert reused["reused"] and reused["runs"] == 2, "each run numbers its submitters and submissions anew"
    with pytest.raises(LatencyBenchError, match="another corpus"):
        prepare_corpus(settings, entities=2000, distinct=50, seed=0, on_progress=lambda _m: None)


def test_the_cold_rebuild_snapshots_every_text_with_its_concepts(tmp_path: Path) -> None:
    settings = bench_settings(tmp_path, "")
    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    seed_corpus(engine, HashingEncoder(dim=settings.embedding_dim), total=150, distinct=15, seed=3)
    with Session(engine) as session:
        texts = {entity_text(e) for table in ENTITY_TABLES.values() for e in session.exec(select(table))}
    engine.dispose()
    concepts.forget()
    cold = cold_rebuild(settings)
    assert cold["texts_tokenised"] == 150 and cold["concepts_s"] >= 0
    concepts.forget()
    # Every indexed text's concepts are in the snapshot, not only those a matcher happened to meet.
    assert concepts.load_concepts(settings.resolved_index_dir / "concepts.npz") == len(texts)


def test_each_matcher_replica_starts_from_the_corpus_snapshots(tmp_path: Path) -> None:
    settings = bench_settings(tmp_path, "")
    shared = settings.resolved_index_dir
    shared.mkdir(parents=True)
    (shared / "pitch.faiss").write_bytes(b"faiss")
    (shared / "concepts.npz").write_bytes(b"npz")
    seed_replica_snapshots(settings, 1)
    assert sorted(path.name for path in shared.iterdir()) == ["concepts.npz", "pitch.faiss"], "one matcher: shared"

    (shared / "matcher-2").mkdir()
    (shared / "matcher-2" / "pitch.faiss").write_bytes(b"its own, newer")
    seed_replica_snapshots(settings, 2)
    copied = shared / "matcher-1" / "pitch.faiss"
    assert copied.read_bytes() == b"faiss" and (shared / "matcher-1" / "concepts.npz").exists()
    # The copy keeps the modification time that decides whether a snapshot is current.
    assert copied.stat().st_mtime == (shared / "pitch.faiss").stat().st_mtime
    assert sorted(path.name for path in (shared / "matcher-2").iterdir()) == ["pitch.faiss"]
    assert (shared / "matcher-2" / "pitch.faiss").read_bytes() == b"its own, newer", "a replica's own is kept"


def test_near_copies_keep_the_parent_wording(sqlite_engine) -> None:
    seed_corpus(sqlite_engine, HashingEncoder(384), total=60, distinct=6, seed=2)
    with Session(sqlite_engine) as session:
        pitches = session.exec(select(Pitch)).all()
    by_summary: dict[str, int] = {}
    for pitch in pitches:
        by_summary[pitch.summary] = by_summary.get(pitch.summary, 0) + 1
    assert len(by_summary) == round(6 * 0.7) and sum(by_summary.values()) == len(pitches)
