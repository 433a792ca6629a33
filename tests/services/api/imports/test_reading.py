"""Reading files: formats, encodings, row numbers as the user sees them."""

from __future__ import annotations

import codecs

import pytest
from opencc import OpenCC

from services.api.imports.reading import ImportFileError, detect_format, read_table
from tests.services.api.imports.tables import PITCH_HEADERS, csv_bytes, jsonl_bytes, pitch_row, xlsx_bytes


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "utf-16"])
def test_csv_in_the_encodings_excel_writes(encoding):
    table = read_table(csv_bytes([PITCH_HEADERS, pitch_row()], encoding=encoding), filename="项目.csv")
    assert table.format == "csv" and table.headers == PITCH_HEADERS
    [row] = table.rows
    assert row.number == 2 and row.cells[1] == ("项目名称", "高纯石墨负极材料深加工")


def test_tab_separated_traditional_text_in_an_explicit_encoding():
    to_traditional = OpenCC("s2t").convert
    rows = [[to_traditional(str(cell)) for cell in row] for row in (PITCH_HEADERS, pitch_row())]
    data = csv_bytes(rows, encoding="big5", delimiter="\t")
    table = read_table(data, content_type="text/tab-separated-values", encoding="big5")
    assert table.headers == rows[0] and "項目名稱" in table.headers
    assert len(table.rows[0].cells) == len(PITCH_HEADERS)
    with pytest.raises(ImportFileError, match="unknown encoding"):
        read_table(data, encoding="klingon")


def test_xlsx_rows_keep_their_sheet_numbers_and_types():
    data = xlsx_bytes([PITCH_HEADERS, pitch_row(), [None] * 3, pitch_row(title="第二个项目")], leading_blank_rows=2)
    table = read_table(data, content_type="application/octet-stream")  # recognised by its content
    assert table.format == "xlsx" and table.header_row == 3
    assert [row.number for row in table.rows] == [4, 6], "the empty sheet row is skipped, numbering is kept"
    assert dict(table.rows[0].cells)["融资金额（万元）"] == 8000


def test_jsonl_lines_are_numbered_and_broken_lines_reported():
    data = jsonl_bytes([{"title": "a"}]) + b"\n\nnot json\n[1, 2]\n" + jsonl_bytes([{"title": "b"}])
    table = read_table(data, filename="rows.ndjson")
    assert [row.number for row in table.rows] == [1, 5]
    assert [number for number, _ in table.broken] == [3, 4]


def test_a_json_array_is_read_too():
    table = read_table(b'[{"title": "a"}, 3]', content_type="application/json")
    assert table.format == "json" and [row.number for row in table.rows] == [1] and table.broken[0][0] == 2


def test_unreadable_files_are_refused_with_a_reason():
    with pytest.raises(ImportFileError, match=r"\.xls"):
        read_table(b"\xd0\xcf\x11\xe0" + b"\0" * 100, filename="old.xls")
    with pytest.raises(ImportFileError, match="xlsx"):
        read_table(b"PK\x03\x04 broken zip", filename="x.xlsx")
    with pytest.raises(ImportFileError, match="JSON"):
        read_table(b"[{", filename="x.json")
    with pytest.raises(ImportFileError, match="UTF-8"):
        read_table(codecs.BOM_UTF8[:2] + b"\xff\xfe\x80\x81" * 3 + b"\x81")


def test_format_from_content_then_name_then_type():
    assert detect_format(b"PK\x03\x04", filename="a.csv") == "xlsx"
    assert detect_format(b"a,b", filename="a.jsonl") == "jsonl"
    assert detect_format(b"a,b", content_type="application/x-ndjson; charset=utf-8") == "jsonl"
    assert detect_format(b'  {"a": 1}') == "jsonl" and detect_format(b"a,b") == "csv"
