"""`salon import FILE`: writes to the configured database; refuses a file with bad rows as a
whole (exit 1, a table of the rejected cells); --skip-invalid, --dry-run, idempotent re-runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from services.cli import app
from shared.db import make_engine
from shared.models import OutboxMessage, Pitch
from shared.settings import get_settings
from tests.services.api.imports.tables import PITCH_HEADERS, csv_bytes, mixed_rows, pitch_row, xlsx_bytes


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SALON_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def pitches(data_dir: Path) -> list[Pitch]:
    with Session(make_engine(f"sqlite:///{data_dir / 'salon.db'}")) as session:
        return list(session.exec(select(Pitch)).all())


def invoke(*args: str):
    return CliRunner().invoke(app, ["import", *args], terminal_width=200)


def test_import_a_gb18030_csv_then_again_without_duplicates(data_dir: Path):
    path = data_dir / "报名表.csv"
    path.write_bytes(csv_bytes([PITCH_HEADERS, pitch_row(), pitch_row(title="项目二")], encoding="gb18030"))
    result = invoke(str(path), "--kind", "项目", "--owner", "鹤岗碳材")
    assert result.exit_code == 0, result.output
    assert "stored 2" in result.output and "rows/s" in result.output
    assert {p.owner for p in pitches(data_dir)} == {"鹤岗碳材"} and len(pitches(data_dir)) == 2

    again = invoke(str(path), "--kind", "pitch", "--owner", "鹤岗碳材")
    assert again.exit_code == 0 and "stored 0, 2 already present" in again.output
    assert len(pitches(data_dir)) == 2


def test_a_file_with_a_bad_row_is_refused_whole_with_a_table(data_dir: Path):
    path = data_dir / "pitches.csv"
    path.write_bytes(csv_bytes([PITCH_HEADERS, pitch_row(), pitch_row(title="项目二", stage="Z轮")]))
    report = data_dir / "report.json"
    result = invoke(str(path), "--kind", "pitch", "--owner", "e", "--report", str(report))
    assert result.exit_code == 1
    assert "融资阶段" in result.output and "nothing was imported" in result.output
    assert pitches(data_dir) == []
    written = json.loads(report.read_text())
    assert [(error["row"], error["field"]) for error in written["rejected"]] == [(3, "stage")]

    dry = invoke(str(path), "--kind", "pitch", "--owner", "e", "--dry-run", "--skip-invalid")
    assert dry.exit_code == 0 and "would store 1" in dry.output and pitches(data_dir) == []
    partial = invoke(str(path), "--kind", "pitch", "--owner", "e", "--skip-invalid")
    assert partial.exit_code == 0 and "stored 1" in partial.output
    assert [p.title for p in pitches(data_dir)] == [pitch_row()[1]]


def test_an_xlsx_with_kind_and_owner_columns_and_unknown_kinds(data_dir: Path):
    path = data_dir / "mixed.xlsx"
    path.write_bytes(xlsx_bytes(mixed_rows()))
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    assert "mandate 1, need 1, pitch 1" in result.output
    with Session(make_engine(f"sqlite:///{data_dir / 'salon.db'}")) as session:
        assert len(session.exec(select(OutboxMessage)).all()) == 3
    assert invoke(str(path), "--kind", "widget").exit_code == 2
