"""Import semantics: all rows validated first, nothing half-imported, events as for single
submissions, re-runs store nothing twice."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.api.imports import ImportOptions, ImportWriteError, import_bytes, validate_bytes, writing
from services.api.intake import build_entity, submission_event
from shared.confidential import service as confidential
from shared.events import Envelope
from shared.models import CREATE_MODELS, ENTITY_TABLES, Mandate, Need, OutboxMessage, Pitch
from shared.settings import Settings
from tests.payloads import PITCH
from tests.services.api.imports.tables import PITCH_HEADERS, csv_bytes, jsonl_bytes, mixed_rows, pitch_row, xlsx_bytes

PITCHES = ImportOptions(kind="pitch", default_owner="鹤岗碳材科技")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path)


def stored(engine: Engine, table) -> list:
    with Session(engine) as session:
        return list(session.exec(select(table)).all())


def events(engine: Engine) -> list[Envelope]:
    return [Envelope.model_validate_json(row.payload) for row in stored(engine, OutboxMessage)]


def three_pitches(**bad: object) -> bytes:
    rows = [PITCH_HEADERS, pitch_row(title="项目一"), pitch_row(title="项目二", **bad), pitch_row(title="项目三")]
    return csv_bytes(rows)


def test_a_valid_file_stores_each_row_with_the_event_a_single_submission_writes(sqlite_engine, settings):
    report = import_bytes(three_pitches(), engine=sqlite_engine, settings=settings, options=PITCHES, filename="a.csv")
    assert (report.rows, report.valid, report.accepted, report.rejected) == (3, 3, 3, [])
    pitches = {pitch.id: pitch for pitch in stored(sqlite_engine, Pitch)}
    assert set(report.ids) == set(pitches) and [item.row for item in report.items] == [2, 3, 4]
    first = pitches[report.ids[0]]
    assert first.owner == "鹤岗碳材科技" and first.title == "项目一"
    assert first.stage == "series_a" and first.funding_ask == 8e7 and first.needs == ["capital", "pilot_line", "land"]

    # The event is byte-for-byte what intake builds for the same entity (ids and times aside).
    single = build_entity(
        "pitch", CREATE_MODELS["pitch"].model_validate({**PITCH, "title": "项目一"}), owner=first.owner
    )
    expected = submission_event(single, "submitted").payload().model_dump(exclude={"entity_id"})
    by_subject = {event.subject: event for event in events(sqlite_engine)}
    assert set(by_subject) == set(pitches)
    event = by_subject[first.id]
    assert event.type == "pitch.submitted"
    got = event.payload().model_dump(exclude={"entity_id"})
    for volatile in ("id", "created_at", "updated_at"):
        got["fields"].pop(volatile), expected["fields"].pop(volatile)
    assert got == expected


def test_one_bad_row_rejects_the_file_with_a_report_and_stores_nothing(sqlite_engine, settings):
    report = import_bytes(
        three_pitches(stage="Z轮", funding_ask="很多"), engine=sqlite_engine, settings=settings, options=PITCHES
    )
    assert report.accepted == 0 and report.valid == 2 and report.rejected_rows == 1
    assert report.imported_nothing_because_of_errors
    problems = {(error.row, error.column, error.field) for error in report.rejected}
    assert problems == {(3, "融资阶段", "stage"), (3, "融资金额（万元）", "funding_ask")}
    stage = next(error for error in report.rejected if error.field == "stage")
    assert "series_a" in stage.message and "取值不在允许范围内" in stage.message, "bilingual, with the allowed codes"
    assert stored(sqlite_engine, Pitch) == [] and stored(sqlite_engine, OutboxMessage) == []


def test_skip_invalid_stores_the_valid_rows_and_reports_the_rest(sqlite_engine, settings):
    options = ImportOptions(kind="pitch", default_owner="e", skip_invalid=True)
    report = import_bytes(three_pitches(summary="短"), engine=sqlite_engine, settings=settings, options=options)
    assert report.accepted == 2 and [error.row for error in report.rejected] == [3]
    assert sorted(pitch.title for pitch in stored(sqlite_engine, Pitch)) == ["项目一", "项目三"]
    assert len(stored(sqlite_engine, OutboxMessage)) == 2


def test_dry_run_reports_what_would_be_stored_and_stores_nothing(sqlite_engine, settings):
    options = ImportOptions(kind="pitch", default_owner="e", dry_run=True)
    report = import_bytes(three_pitches(), engine=sqlite_engine, settings=settings, options=options)
    assert report.dry_run and report.accepted == 3 and len(report.ids) == 3
    assert stored(sqlite_engine, Pitch) == []


def test_running_the_same_import_again_stores_nothing_twice(any_engine, settings):
    first = import_bytes(three_pitches(), engine=any_engine, settings=settings, options=PITCHES)
    again = import_bytes(three_pitches(), engine=any_engine, settings=settings, options=PITCHES)
    assert (again.accepted, again.already_present) == (0, 3) and again.ids == first.ids
    assert len(stored(any_engine, Pitch)) == 3 and len(stored(any_engine, OutboxMessage)) == 3
    # Another owner importing the same rows gets rows of its own.
    other = import_bytes(
        three_pitches(), engine=any_engine, settings=settings, options=ImportOptions(kind="pitch", default_owner="x")
    )
    assert other.accepted == 3 and not set(other.ids) & set(first.ids)


def test_an_interrupted_import_is_completed_by_running_it_again(sqlite_engine, settings, monkeypatch):
    rows = [PITCH_HEADERS] + [pitch_row(title=f"项目{n:02d}") for n in range(7)]
    options = ImportOptions(kind="pitch", default_owner="e", batch_size=3)
    real_batch = writing._write_batch
    calls = []

    def dies_on_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ImportWriteError("database went away")
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(writing, "_write_batch", dies_on_the_second_batch)
    with pytest.raises(ImportWriteError):
        import_bytes(csv_bytes(rows), engine=sqlite_engine, settings=settings, options=options)
    assert len(stored(sqlite_engine, Pitch)) == 3, "the first batch committed"
    monkeypatch.setattr(writing, "_write_batch", real_batch)
    report = import_bytes(csv_bytes(rows), engine=sqlite_engine, settings=settings, options=options)
    assert (report.accepted, report.already_present) == (4, 3)
    assert len(stored(sqlite_engine, Pitch)) == 7 and len(stored(sqlite_engine, OutboxMessage)) == 7


def test_an_external_ref_column_is_the_identity_of_a_row(sqlite_engine, settings):
    headers = ["外部编号", *PITCH_HEADERS]
    first = import_bytes(
        csv_bytes([headers, ["P-1", *pitch_row()]]), engine=sqlite_engine, settings=settings, options=PITCHES
    )
    corrected = import_bytes(
        csv_bytes([headers, ["P-1", *pitch_row(summary=PITCH["summary"] + "（已更正）")]]),
        engine=sqlite_engine,
        settings=settings,
        options=PITCHES,
    )
    assert corrected.ids == first.ids and corrected.already_present == 1 and len(stored(sqlite_engine, Pitch)) == 1
    repeated = validate_bytes(csv_bytes([headers, ["P-2", *pitch_row()], ["P-2", *pitch_row(title="别的")]]), PITCHES)
    assert [(error.row, error.type) for error in repeated.errors] == [(3, "duplicate")]


def test_a_repeated_row_in_one_file_is_rejected():
    validation = validate_bytes(csv_bytes([PITCH_HEADERS, pitch_row(), pitch_row(stage="series_a")]), PITCHES)
    [error] = validation.errors
    assert error.row == 3 and "repeats row 2" in error.message and "与第2行重复" in error.message


def test_mixed_kinds_in_one_xlsx_with_kind_and_owner_columns(sqlite_engine, settings):
    report = import_bytes(
        xlsx_bytes(mixed_rows()), engine=sqlite_engine, settings=settings, options=ImportOptions(), filename="x.xlsx"
    )
    assert report.rejected == [] and report.kinds == {"pitch": 1, "mandate": 1, "need": 1}
    [pitch], [mandate], [need] = (stored(sqlite_engine, table) for table in (Pitch, Mandate, Need))
    assert pitch.owner == "鹤岗碳材科技" and pitch.funding_ask == 8e7
    assert mandate.stages == ["series_a", "series_b"] and mandate.ticket_max == 1e8 and mandate.regions == ["黑龙江省"]
    assert need.chain_action == "fill" and need.offerings == ["land", "pilot_line", "co_investment"]
    assert [element["type"] for element in need.resource_elements] == ["environment", "location"]
    assert [event.type for event in events(sqlite_engine)] == ["pitch.submitted", "mandate.submitted", "need.submitted"]


def test_a_value_in_a_column_of_another_kind_is_rejected():
    rows = mixed_rows()
    rows[1][rows[0].index("基金名称")] = "项目行里的基金名"
    validation = validate_bytes(xlsx_bytes(rows), ImportOptions())
    [error] = validation.errors
    assert (error.row, error.column) == (2, "基金名称") and "does not apply to a pitch" in error.message


def test_header_problems_reject_the_whole_file_even_with_skip_invalid():
    rows = [[*PITCH_HEADERS, "融资额度啊", "行業"], [*pitch_row(), "x", "y"]]
    validation = validate_bytes(csv_bytes(rows), ImportOptions(kind="pitch", default_owner="e", skip_invalid=True))
    assert validation.fatal and validation.valid == []
    assert {(error.row, error.column) for error in validation.errors} == {(1, "融资额度啊"), (1, "行業")}
    assert any("both give sectors" in error.message for error in validation.errors)


def test_a_participant_may_not_name_owners_or_submit_other_kinds():
    as_enterprise = ImportOptions(
        default_owner="e", owner_column=False, allowed_kinds=frozenset({"pitch"}), role="enterprise"
    )
    rows = mixed_rows()
    refused = validate_bytes(xlsx_bytes(rows), as_enterprise)
    assert refused.fatal and [error.field for error in refused.errors] == ["owner"]
    without_owner = [[cell for i, cell in enumerate(row) if i != 1] for row in rows]
    validation = validate_bytes(xlsx_bytes(without_owner), as_enterprise)
    assert [row.kind for row in validation.valid] == ["pitch"] and validation.valid[0].owner == "e"
    assert [(error.row, error.field, error.type) for error in validation.errors] == [
        (3, "kind", "forbidden"),
        (4, "kind", "forbidden"),
    ]


def test_rows_need_a_kind_and_an_owner():
    no_kind = validate_bytes(csv_bytes([PITCH_HEADERS, pitch_row()]), ImportOptions(default_owner="e"))
    assert no_kind.fatal and no_kind.errors[0].field == "kind"
    no_owner = validate_bytes(csv_bytes([PITCH_HEADERS, pitch_row()]), ImportOptions(kind="pitch"))
    assert [error.field for error in no_owner.errors] == ["owner"]


def test_ignored_columns_are_reported_and_unreadable_files_are_one_error():
    rows = [[*PITCH_HEADERS, "备注", "#内部评分"], [*pitch_row(), "重点项目", 5]]
    validation = validate_bytes(csv_bytes(rows), PITCHES)
    assert validation.errors == [] and validation.ignored_columns == ["备注", "#内部评分"]
    broken = validate_bytes(b"PK\x03\x04 not a workbook", PITCHES)
    assert broken.fatal and broken.errors[0].row == 0 and broken.errors[0].field == "file"
    empty = validate_bytes(csv_bytes([PITCH_HEADERS]), PITCHES)
    assert empty.fatal and "no data rows" in empty.errors[0].message


def test_jsonl_rows_are_checked_one_by_one():
    lines = [
        {**PITCH, "owner": "a"},
        {**PITCH, "owner": "b", "status": "matched"},
        {**PITCH, "owner": "c", "financials": {"revenue": "lots"}},
        {**PITCH, "owner": "d", "contact": {"name": "赵林", "phone": "+86 468 555 0123"}},
    ]
    validation = validate_bytes(jsonl_bytes(lines) + b"\n{oops", ImportOptions(kind="pitch"), filename="x.jsonl")
    assert [row.owner for row in validation.valid] == ["a", "d"]
    assert [(error.row, error.column) for error in validation.errors] == [
        (2, "status"),
        (3, "financials"),
        (5, None),
    ]


def test_the_demo_files_import_as_they_are(sqlite_engine, settings):
    """The shipped demo JSON (with `ref` and `owner` keys) is a valid import of each kind."""
    total = 0
    for kind, name in (("pitch", "pitches"), ("mandate", "mandates"), ("need", "needs")):
        data = resources.files("shared").joinpath("demo", f"{name}.json").read_bytes()
        report = import_bytes(
            data, engine=sqlite_engine, settings=settings, options=ImportOptions(kind=kind), filename=f"{name}.json"
        )
        assert report.rejected == [] and report.accepted == len(json.loads(data)), kind
        total += report.accepted
        if kind == "pitch":  # the confidential parts are stored apart, as for a single submission
            with_parts = [item for item in json.loads(data) if item.get("contact")]
            assert with_parts, "the demo has pitches with confidential parts"
            with Session(sqlite_engine) as session:
                for number, item in enumerate(json.loads(data), start=1):
                    parts = confidential.stored_parts(session, report.items[number - 1].id)
                    assert bool(parts.get("contact")) == bool(item.get("contact")), item["ref"]
    assert sum(len(stored(sqlite_engine, table)) for table in ENTITY_TABLES.values()) == total
