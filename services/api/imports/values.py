"""Cell values → the JSON values the Create models take.

Spreadsheets hold lists as text (`新材料、石墨烯`), amounts with units (`8000万`, `1.2亿元`,
`80m`), yes/no as words (`是`/`否`) and numbers where text is meant (a region code). Values
that do not convert are passed on unchanged, so the model rejects them with its usual
field-level message.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from typing import Any

from services.api.imports.aliases import UNITS
from shared.taxonomy import fold

LIST_SEPARATORS = re.compile(r"[、,，;；|\n]")
ELEMENT_SEPARATORS = re.compile(r"[;；|\n]")
LIST_FIELDS = frozenset({"sectors", "needs", "stages", "regions", "exclusions", "target_sectors", "offerings"})
ELEMENT_FIELDS = frozenset({"resource_elements"})
AMOUNT_FIELDS = frozenset({"funding_ask", "ticket_min", "ticket_max"})
RATIO_FIELDS = frozenset({"reinvestment_ratio"})
BOOL_FIELDS = frozenset({"relocation_required"})
JSON_FIELDS = frozenset({"financials", "contact", "attachments"})  # a pitch's confidential parts

_AMOUNT = re.compile(r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)(?P<unit>[^\d.]*)$")
_TRUE = {"true", "yes", "y", "1", "是", "需要", "要求", "必须", "√", "✓", "t"}
_FALSE = {"false", "no", "n", "0", "否", "不需要", "不要求", "无", "×", "✗", "f"}


class CellError(ValueError):
    """A cell that cannot be read as its field's type (e.g. a broken JSON list)."""


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def as_text(value: Any) -> Any:
    """Spreadsheet numbers and dates in text fields become the text they display."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value.strip() if isinstance(value, str) else value


def _json_list(text: str) -> list[Any]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CellError(f"starts with '[' but is not a JSON list: {exc.msg} / 以“[”开头但不是有效的 JSON 列表") from exc
    if not isinstance(items, list):
        raise CellError("not a JSON list / 不是 JSON 列表")
    return items


def as_list(value: Any) -> Any:
    """`a、b，c; d|e` or a JSON list → a list of texts."""
    if isinstance(value, list):
        return [as_text(item) for item in value]
    text = as_text(value)
    if not isinstance(text, str):
        return [text]
    if text.startswith("["):
        return [as_text(item) for item in _json_list(text)]
    return [part.strip() for part in LIST_SEPARATORS.split(text) if part.strip()]


def as_elements(value: Any) -> Any:
    """Resource elements: a JSON list of {type, description}, or `类型：描述` entries separated
    by a line break, `|` or `；` (a description may contain commas)."""
    if isinstance(value, list):
        return value
    text = as_text(value)
    if not isinstance(text, str):
        return text
    if text.startswith("["):
        return _json_list(text)
    elements = []
    for entry in (part.strip() for part in ELEMENT_SEPARATORS.split(text)):
        if not entry:
            continue
        parts = re.split(r"[:：]", entry, maxsplit=1)
        if len(parts) != 2:
            raise CellError(
                f"resource element {entry[:40]!r} needs the form 类型：描述 (e.g. 区位：靠近口岸) "
                "/ 资源要素须写作“类型：描述”"
            )
        elements.append({"type": parts[0].strip(), "description": parts[1].strip()})
    return elements


def as_amount(value: Any, unit: float | None = None) -> Any:
    """`80000000`, `8,000万`, `1.2亿元`, `80m` → a number; the header's unit scales bare numbers."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value * (unit or 1.0)
    if not isinstance(value, str):
        return value
    text = re.sub(r"[\s,，_]", "", value.lower() if value.isascii() else fold(value))
    match = _AMOUNT.match(text)
    if not match:
        return value
    number = float(match["number"])
    own_unit = match["unit"]
    if own_unit:
        if own_unit not in UNITS:
            return value
        number *= UNITS[own_unit]
    elif unit:
        number *= unit
    return number if math.isfinite(number) else value


def as_ratio(value: Any) -> Any:
    """`1.2`, `120%` → 1.2 (a reinvestment ratio is a multiple of the investment)."""
    if isinstance(value, str) and value.strip().endswith(("%", "％")):
        number = as_amount(value.strip()[:-1])
        return number / 100 if isinstance(number, float) else value
    return as_amount(value)


def as_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = fold(value)
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return value


def as_json(value: Any) -> Any:
    """A nested value: native in JSON files, JSON text in a spreadsheet cell."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise CellError(f"not valid JSON: {exc.msg} / 须为 JSON 格式") from exc


def convert(field: str, value: Any, unit: float | None = None) -> Any:
    if field in LIST_FIELDS:
        return as_list(value)
    if field in ELEMENT_FIELDS:
        return as_elements(value)
    if field in AMOUNT_FIELDS:
        return as_amount(value, unit)
    if field in RATIO_FIELDS:
        return as_ratio(value)
    if field in BOOL_FIELDS:
        return as_bool(value)
    if field in JSON_FIELDS:
        return as_json(value)
    return as_text(value)
