"""Column headers → fields, from the data file `aliases.json` (English, 简体 and 繁體 headers).

A header is compared folded: width, case and script (traditional → simplified) do not
matter, nor do spaces, `_` and `-`. Templates often write a unit or a translation beside
the name — `融资金额（万元）`, `标题 / Title` — so the part in brackets and each side of a
`/` are tried too; a money unit in brackets scales that column's plain numbers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from shared.errors import ConfigurationError
from shared.taxonomy import fold

KINDS = ("pitch", "mandate", "need")
META = ("kind", "owner", "external_ref")

# Money units written in a header or a cell, folded (lower case, simplified script).
UNITS: dict[str, float] = {
    "元": 1.0,
    "千": 1e3,
    "千元": 1e3,
    "k": 1e3,
    "万": 1e4,
    "万元": 1e4,
    "十万": 1e5,
    "百万": 1e6,
    "百万元": 1e6,
    "m": 1e6,
    "mn": 1e6,
    "million": 1e6,
    "千万": 1e7,
    "千万元": 1e7,
    "亿": 1e8,
    "亿元": 1e8,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
}

_BRACKETED = re.compile(r"^(?P<name>.*?)\s*[(（\[【](?P<inner>[^()（）\[\]【】]*)[)）\]】]\s*$")


@lru_cache(maxsize=4096)  # headers and kind words repeat on every row
def fold_header(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", fold(text))


@dataclass(frozen=True)
class Column:
    """What one header means: a meta column, or a field per kind (empty when ignored)."""

    header: str
    meta: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    unit: float | None = None  # a money unit from the header, for amount columns
    ignored: bool = False

    def field_for(self, kind: str) -> str | None:
        return self.fields.get(kind)


@dataclass(frozen=True)
class Aliases:
    meta: dict[str, str]  # folded alias → kind | owner | external_ref
    ignored: frozenset[str]
    kind_words: dict[str, str]  # folded word → kind
    fields: dict[str, dict[str, str]]  # kind → folded alias → field

    def kind_of(self, word: str) -> str | None:
        return self.kind_words.get(fold_header(word))

    def resolve(self, header: str) -> Column | None:
        """The column a header names; None if it names nothing known."""
        text = header.strip()
        if text.startswith("#") and len(text) > 1:
            return Column(header, ignored=True)
        unit: float | None = None
        candidates = [text]
        bracketed = _BRACKETED.match(text)
        if bracketed:
            inner = fold_header(bracketed["inner"])
            if inner in UNITS:
                unit = UNITS[inner]
                candidates = [bracketed["name"]]
            else:
                candidates += [bracketed["name"], bracketed["inner"]]
        candidates += [part for candidate in list(candidates) for part in candidate.split("/") if "/" in candidate]
        for candidate in candidates:
            column = self._exact(header, fold_header(candidate), unit)
            if column is not None:
                return column
        return None

    def _exact(self, header: str, folded: str, unit: float | None) -> Column | None:
        if not folded:
            return None
        if folded in self.ignored:
            return Column(header, ignored=True)
        if folded in self.meta:
            return Column(header, meta=self.meta[folded])
        fields = {kind: by_alias[folded] for kind, by_alias in self.fields.items() if folded in by_alias}
        return Column(header, fields=fields, unit=unit) if fields else None

    def suggestions(self, kinds: tuple[str, ...] = KINDS) -> list[str]:
        """The canonical header of every field of these kinds, for error messages."""
        names = {name for kind in kinds for name in self.fields[kind].values()}
        return sorted(names) + list(META)


def _load(data: dict[str, Any]) -> Aliases:
    meta: dict[str, str] = {}
    for name, words in data["meta"].items():
        for word in [name, *words]:
            meta[fold_header(word)] = name
    kind_words = {fold_header(word): kind for kind, words in data["kinds"].items() for word in [kind, *words]}
    fields: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    for entry in data["columns"]:
        for kind, name in entry["fields"].items():
            for word in [name, *entry["aliases"]]:
                folded = fold_header(word)
                known = fields[kind].setdefault(folded, name)
                if known != name:
                    raise ConfigurationError(f"aliases.json: header {word!r} means both {known} and {name} for {kind}")
                if folded in meta:
                    raise ConfigurationError(f"aliases.json: header {word!r} is a field and a meta column")
    return Aliases(
        meta=meta,
        ignored=frozenset(fold_header(word) for word in data["ignored"]),
        kind_words=kind_words,
        fields=fields,
    )


@lru_cache
def load_aliases() -> Aliases:
    raw = resources.files("services.api.imports").joinpath("aliases.json").read_text(encoding="utf-8")
    return _load(json.loads(raw))
