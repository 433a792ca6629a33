"""Bytes → rows of (header, value) cells: CSV/TSV, XLSX, JSONL (and a JSON array).

Row numbers are the ones the user sees: the spreadsheet row (the header is row 1 when it
is the first row) or the JSONL line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from shared.errors import SalonError

FORMATS = ("csv", "xlsx", "jsonl", "json")
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MIME_FORMATS = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "csv",
    "text/plain": "csv",
    XLSX_MIME: "xlsx",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/jsonlines": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/json": "json",
}
EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls


class ImportFileError(SalonError):
    """The file cannot be read as a table (wrong format, encoding, or a broken spreadsheet)."""


@dataclass
class RawRow:
    number: int
    cells: list[tuple[str, Any]]  # (header as written, value) in column order


@dataclass
class RawTable:
    format: str
    rows: list[RawRow]
    headers: list[str] | None = None  # None when every row names its own keys (JSON)
    header_row: int = 1
    broken: list[tuple[int, str]] = field(default_factory=list)  # (row, why) for unreadable JSON lines


def detect_format(data: bytes, *, filename: str | None = None, content_type: str | None = None) -> str:
    """The format from the content itself where it is unambiguous, else the name, else the type."""
    if data.startswith(_OLE_MAGIC):
        raise ImportFileError(
            "legacy .xls files are not supported; save as .xlsx or CSV / 不支持旧版 .xls，请另存为 .xlsx 或 CSV"
        )
    if data.startswith(_ZIP_MAGIC):
        return "xlsx"
    if filename:
        suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if suffix in EXTENSION_FORMATS:
            return EXTENSION_FORMATS[suffix]
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in MIME_FORMATS:
        return MIME_FORMATS[mime]
    start = data.lstrip()[:1]
    if start == b"{":
        return "jsonl"
    if start == b"[":
        return "json"
    return "csv"


def decode(data: bytes, encoding: str | None = None) -> str:
    """Text of a CSV/JSON file: the given encoding, else UTF-8 (with or without BOM), UTF-16
    with a BOM (Excel's "Unicode text"), or GB18030 (what Excel on Chinese Windows writes)."""
    if encoding:
        try:
            return data.decode(encoding)
        except LookupError as exc:
            raise ImportFileError(f"unknown encoding {encoding!r} / 未知编码") from exc
        except UnicodeDecodeError as exc:
            raise ImportFileError(f"the file is not valid {encoding} (byte {exc.start}) / 文件编码不符") from exc
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    for candidate in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(candidate)
        except UnicodeDecodeError:
            continue
    raise ImportFileError("the file is neither UTF-8 nor GB18030; pass its encoding / 无法识别文件编码，请指定编码")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _table(format_: str, records: list[tuple[int, list[Any]]]) -> RawTable:
    """The first non-empty record is the header; later empty records are skipped."""
    records = [(number, values) for number, values in records if not all(_blank(v) for v in values)]
    if not records:
        return RawTable(format_, [], headers=[])
    header_row, header_values = records[0]
    headers = ["" if _blank(v) else str(v).strip() for v in header_values]
    while headers and not headers[-1]:
        headers.pop()
    rows = []
    for number, values in records[1:]:
        cells = [(headers[i] if i < len(headers) else "", value) for i, value in enumerate(values)]
        rows.append(RawRow(number, cells))
    return RawTable(format_, rows, headers=headers, header_row=header_row)


def read_csv(text: str) -> RawTable:
    first_line = text.split("\n", 1)[0]
    delimiter = max(",\t;", key=first_line.count) if any(d in first_line for d in ",\t;") else ","
    try:
        records = list(enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1))
    except csv.Error as exc:
        raise ImportFileError(f"not a readable CSV file: {exc} / CSV 格式错误") from exc
    return _table("csv", [(number, list(values)) for number, values in records])


def read_xlsx(data: bytes) -> RawTable:
    """The first worksheet, read-only (streamed, formulas as their last computed values)."""
    from openpyxl import load_workbook  # imported here: the API must not pay for it at start-up

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ImportFileError(f"not a readable .xlsx workbook: {exc} / 无法读取 Excel 文件") from exc
    try:
        if not workbook.worksheets:
            raise ImportFileError("the workbook has no worksheet / 工作簿没有工作表")
        sheet = workbook.worksheets[0]
        records = [(number, list(values)) for number, values in enumerate(sheet.iter_rows(values_only=True), start=1)]
    finally:
        workbook.close()
    return _table("xlsx", records)


def read_jsonl(text: str) -> RawTable:
    rows, broken = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            broken.append((number, f"not valid JSON: {exc.msg} / JSON 格式错误"))
            continue
        if not isinstance(item, dict):
            broken.append((number, "each line must be a JSON object / 每行须为一个 JSON 对象"))
            continue
        rows.append(RawRow(number, list(item.items())))
    return RawTable("jsonl", rows, broken=broken)


def read_json(text: str) -> RawTable:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"not valid JSON: {exc} / JSON 格式错误") from exc
    if not isinstance(items, list):
        raise ImportFileError("a .json import must be an array of objects / JSON 文件须为对象数组")
    rows, broken = [], []
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict):
            rows.append(RawRow(number, list(item.items())))
        else:
            broken.append((number, "each item must be a JSON object / 每项须为一个 JSON 对象"))
    return RawTable("json", rows, broken=broken)


def read_table(
    data: bytes, *, filename: str | None = None, content_type: str | None = None, encoding: str | None = None
) -> RawTable:
    format_ = detect_format(data, filename=filename, content_type=content_type)
    if format_ == "xlsx":
        return read_xlsx(data)
    text = decode(data, encoding)
    if format_ == "jsonl":
        return read_jsonl(text)
    if format_ == "json":
        return read_json(text)
    return read_csv(text)
