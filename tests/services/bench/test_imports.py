"""The import benchmark: its generated rows survive the CSV round trip, and a tiny run
through the real platform reports every figure."""

from __future__ import annotations

import json

import pytest

from services.api.imports import ImportOptions, validate_bytes
from services.bench.imports import demo_like_rows, embedded_texts, plot_import, run_import_bench, write_csv
from services.bench.results import save_results


def test_generated_rows_differ_and_survive_the_csv_round_trip(tmp_path):
    rows = demo_like_rows(60)
    assert len(set(embedded_texts(rows))) == 60, "every text differs"
    assert {kind for kind, _, _ in rows} == {"pitch", "mandate", "need"}
    assert any(body.get("contact") for _, _, body in rows), "confidential parts travel as JSON cells"
    path = tmp_path / "rows.csv"
    write_csv(rows, path)
    validation = validate_bytes(path.read_bytes(), ImportOptions(), filename=path.name)
    assert validation.errors == [] and len(validation.valid) == 60
    for (kind, owner, body), valid in zip(rows, validation.valid, strict=True):
        assert (valid.kind, valid.owner) == (kind, owner)
        assert valid.body.model_dump(mode="json") == type(valid.body).model_validate(body).model_dump(mode="json")


@pytest.mark.e2e
@pytest.mark.model
def test_a_tiny_run_reports_every_figure(tmp_path):
    figures = run_import_bench(count=9, work_dir=tmp_path / "work", encoder_batch=8, matchers=2)
    assert figures["count"] == 9 and sum(figures["kinds"].values()) == 9 and figures["matchers"] == 2
    assert figures["encode_batch_size"] == figures["embed_batch_size"] == 8
    assert figures["encode_rate"] > 0 and figures["import_rate"] > 0
    ratio = figures["import_rate"] / figures["encode_rate"]
    assert figures["import_vs_encode_ratio"] == pytest.approx(ratio, rel=0.05)
    assert 0 < figures["first_matched_seconds"] <= figures["end_to_end_seconds"]
    assert figures["import_seconds"] <= figures["end_to_end_seconds"]
    assert figures["timeline"][-1][2] == 9 and figures["duplicates_flagged"] == 0
    written = save_results("import", figures, results_dir=tmp_path / "results", plot=plot_import)
    assert [path.suffix for path in written] == [".json", ".png"]
    assert json.loads(written[0].read_text())["figures"]["count"] == 9
