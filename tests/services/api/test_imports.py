"""POST /v1/imports over HTTP: uploads and raw bodies, the caller's rights, 422 with the
per-row report and nothing stored, dry runs, Idempotency-Key, and the import body cap."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from services.api.imports.reading import XLSX_MIME
from services.api.main import create_app
from shared.audit import AuditAction, AuditEntry
from shared.confidential import service as confidential
from shared.db import make_engine
from shared.models import Mandate, OutboxMessage, Pitch, Role
from shared.settings import Settings
from tests.payloads import MANDATE, PITCH
from tests.services.api.imports.tables import PITCH_HEADERS, csv_bytes, jsonl_bytes, mixed_rows, pitch_row, xlsx_bytes


def stored(settings, table) -> list:
    with Session(make_engine(settings.resolved_database_url)) as session:
        return list(session.exec(select(table)).all())


def pitches_csv(*rows) -> bytes:
    return csv_bytes([PITCH_HEADERS, *(rows or [pitch_row()])])


def test_an_organizer_uploads_a_mixed_workbook_for_participants(client, key_for, api_settings):
    files = {"file": ("会客厅报名表.xlsx", xlsx_bytes(mixed_rows()), XLSX_MIME)}
    response = client.post("/v1/imports", files=files, headers=key_for(Role.ORGANIZER, "organizer"))
    assert response.status_code == 202, response.text
    report = response.json()
    assert report["accepted"] == 3 and report["kinds"] == {"pitch": 1, "mandate": 1, "need": 1}
    [pitch] = stored(api_settings, Pitch)
    assert pitch.owner == "鹤岗碳材科技" and pitch.id in report["ids"]
    assert len(stored(api_settings, OutboxMessage)) == 3


def test_a_participant_imports_its_own_kind_as_itself_from_a_raw_csv_body(client, key_for, api_settings):
    headers = {**key_for(Role.ENTERPRISE, "鹤岗碳材"), "content-type": "text/csv"}
    response = client.post("/v1/imports", content=pitches_csv(), headers=headers)
    assert response.status_code == 202, response.text
    [pitch] = stored(api_settings, Pitch)
    assert pitch.owner == "鹤岗碳材" and response.json()["ids"] == [pitch.id]
    mine = client.get(f"/v1/pitches/{pitch.id}", headers=headers).json()
    assert mine["status"] == "accepted" and mine["funding_ask"] == 8e7


def test_participants_cannot_import_for_others_or_other_kinds(client, key_for, api_settings):
    enterprise = {**key_for(Role.ENTERPRISE, "e"), "content-type": "text/csv"}
    assert client.post("/v1/imports?owner=someone", content=pitches_csv(), headers=enterprise).status_code == 403
    assert client.post("/v1/imports?kind=基金", content=pitches_csv(), headers=enterprise).status_code == 403
    response = client.post("/v1/imports", content=csv_bytes(mixed_rows()), headers=enterprise)
    assert response.status_code == 422
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(1, "owner")]
    fund = {**key_for(Role.FUND, "f"), "content-type": "application/x-ndjson"}
    ok = client.post("/v1/imports", content=jsonl_bytes([MANDATE]), headers=fund)
    assert ok.status_code == 202, ok.text
    assert [m.owner for m in stored(api_settings, Mandate)] == ["f"]
    assert stored(api_settings, Pitch) == []


def test_rejected_rows_are_a_422_with_row_column_field_and_nothing_is_stored(client, key_for, api_settings):
    headers = {**key_for(Role.ENTERPRISE, "e"), "content-type": "text/csv", "Accept-Language": "zh-CN"}
    body = pitches_csv(pitch_row(), pitch_row(title="项目二", funding_ask=-5), pitch_row(title="项目三", region=""))
    response = client.post("/v1/imports", content=body, headers=headers)
    assert response.status_code == 422
    problem = response.json()
    assert "nothing was imported" in problem["detail"] and "未导入任何内容" in problem["detail"]
    assert [(e["row"], e["column"], e["field"]) for e in problem["errors"]] == [
        (3, "融资金额（万元）", "funding_ask"),
        (4, "地区", "region"),
    ]
    assert problem["report"]["valid"] == 1 and problem["report"]["accepted"] == 0
    assert stored(api_settings, Pitch) == [] and stored(api_settings, OutboxMessage) == []

    partial = client.post("/v1/imports?skip_invalid=true", content=body, headers=headers)
    assert partial.status_code == 202 and partial.json()["accepted"] == 1
    assert len(partial.json()["rejected"]) == 2 and len(stored(api_settings, Pitch)) == 1


def test_dry_run_answers_200_and_stores_nothing(client, key_for, api_settings):
    headers = {**key_for(Role.ORGANIZER, "o"), "content-type": "text/csv"}
    response = client.post("/v1/imports?dry_run=true&kind=pitch&owner=鹤岗碳材", content=pitches_csv(), headers=headers)
    assert response.status_code == 200 and response.json()["accepted"] == 1 and response.json()["dry_run"]
    assert stored(api_settings, Pitch) == []


def test_files_that_cannot_be_read_or_are_empty_are_422(client, key_for):
    headers = key_for(Role.ORGANIZER, "o")
    for body, content_type in ((b"", "text/csv"), (b"PK\x03\x04junk", XLSX_MIME), (b"\xd0\xcf\x11\xe0", "x/y")):
        response = client.post(
            "/v1/imports?kind=pitch", content=body, headers={**headers, "content-type": content_type}
        )
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"][0]["field"] == "file"
    missing = client.post("/v1/imports", files={"other": ("a.csv", b"x")}, headers=headers)
    assert missing.status_code == 422
    assert client.post("/v1/imports?kind=widget", content=pitches_csv(), headers=headers).status_code == 422


def test_idempotency_key_replays_the_first_answer(client, key_for, api_settings):
    headers = {**key_for(Role.ENTERPRISE, "e"), "content-type": "text/csv", "Idempotency-Key": "import-2026-05-01"}
    first = client.post("/v1/imports", content=pitches_csv(), headers=headers)
    again = client.post("/v1/imports", content=pitches_csv(), headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers.get("idempotent-replayed") == "true" and again.json() == first.json()
    other = client.post("/v1/imports", content=pitches_csv(pitch_row(title="别的")), headers=headers)
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert len(stored(api_settings, Pitch)) == 1


def test_imports_have_their_own_body_cap(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        kafka_bootstrap="127.0.0.1:9",
        api_key_pepper="test-pepper-0123456789",
        max_body_bytes=4096,
        import_max_bytes=64 * 1024,
    )
    from shared.db import init_db
    from shared.security import create_key

    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    with Session(engine) as session:
        _, raw = create_key(session, role=Role.ENTERPRISE, name="e", owner="e", pepper=settings.api_key_pepper)
        session.commit()
    headers = {"Authorization": f"Bearer {raw}", "content-type": "text/csv"}
    body = pitches_csv(*(pitch_row(title=f"项目{n:03d}") for n in range(40)))
    assert 4096 < len(body) < 64 * 1024
    with TestClient(create_app(settings, background=False)) as client:
        assert client.post("/v1/imports", content=body, headers=headers).status_code == 202
        assert client.post("/v1/pitches", content=body, headers=headers).status_code == 413, "other routes keep theirs"
        huge = pitches_csv(*(pitch_row(title=f"项目{n:04d}") for n in range(400)))
        assert client.post("/v1/imports", content=huge, headers=headers).status_code == 413
        keyed = {**headers, "Idempotency-Key": "k1"}
        assert client.post("/v1/imports", content=body, headers=keyed).status_code == 202


@pytest.mark.parametrize("path", ["/openapi.json"])
def test_the_openapi_documents_the_upload_and_the_report(client, path):
    operation = client.get(path).json()["paths"]["/v1/imports"]["post"]
    assert {"multipart/form-data", "text/csv", "application/x-ndjson", XLSX_MIME} <= set(
        operation["requestBody"]["content"]
    )
    assert {"200", "202", "422"} <= set(operation["responses"])


def test_confidential_parts_are_stored_apart_and_writing_them_for_someone_is_audited(client, key_for, api_settings):
    contact = {"name": "赵林", "phone": "+86 468 555 0123"}
    lines = [{**PITCH, "owner": "鹤岗碳材", "contact": contact}, {**PITCH, "owner": "别家", "title": "另一个项目"}]
    headers = {**key_for(Role.ORGANIZER, "organizer"), "content-type": "application/x-ndjson"}
    response = client.post("/v1/imports?kind=pitch", content=jsonl_bytes(lines), headers=headers)
    assert response.status_code == 202, response.text
    first, second = response.json()["ids"]
    with Session(make_engine(api_settings.resolved_database_url)) as session:
        assert confidential.stored_parts(session, first)["contact"]["name"] == "赵林"
        assert confidential.stored_parts(session, second) == {}
        [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == AuditAction.CONFIDENTIAL_WRITE)).all()
        assert (entry.object_id, entry.actor_owner) == (first, "organizer")
    [pitch] = [p for p in stored(api_settings, Pitch) if p.id == first]
    assert "赵林" not in str(pitch.model_dump()), "never a column of the pitch (nor its text or event)"
