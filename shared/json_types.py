"""Input types that accept exactly what their JSON Schema says.

Pydantic's lax mode reads `0` as `False` and `1700000000` as a date (a Unix timestamp). The
OpenAPI promises a boolean and an ISO 8601 string, so anything else is a 422 here, not a guess.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Strict, StrictBool

__all__ = ["JsonBool", "JsonDate", "JsonDateTime", "JsonInt", "JsonNumber"]


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_text_only(value: Any) -> Any:
    if isinstance(value, date):  # datetime is a date subclass; Python callers may pass either
        return value
    if isinstance(value, str) and _ISO_DATE.match(value.strip()):
        return value
    raise ValueError("expected an ISO 8601 date string / 应为 ISO 8601 格式的日期字符串")


JsonBool = StrictBool
JsonNumber = Annotated[float, Strict()]  # an int or a float; not `true`, not "12"
JsonInt = Annotated[int, Strict()]  # not `true`, not 12.0
JsonDate = Annotated[date, BeforeValidator(_iso_text_only)]
JsonDateTime = Annotated[datetime, BeforeValidator(_iso_text_only)]
