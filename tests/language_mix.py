"""Which script a data item is written in, for the data files' language-mix tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Characters that only occur in traditional script (their simplified forms differ).
TRADITIONAL_ONLY = set(
    "體與業術產們這個時來對說會國從發經過還開關點學當無現動將進實長門問間見車東聯網電華導機構資區"
    "義處設計務條農價製氫鋰試線項團隊營額億萬為數據層級園藥醫療"
)


def strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value, except `ref` identifiers."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key != "ref":
                yield from strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from strings(inner)


def language(item: dict[str, Any]) -> str:
    """'en' (no CJK anywhere), 'zh_hant' (traditional-only characters) or 'zh'."""
    text = "".join(strings(item))
    if not CJK_RE.search(text):
        return "en"
    if any(char in TRADITIONAL_ONLY for char in text):
        return "zh_hant"
    return "zh"
