"""The sector taxonomy (shipped as `sectors.json`) and mapping of free labels to codes.

Users type sector labels in any language ("新材料", "先進材料", "graphene"); matching
compares codes, so a Chinese mandate and an English pitch in one sector meet.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from opencc import OpenCC

_t2s = OpenCC("t2s")


@dataclass(frozen=True)
class Sector:
    code: str
    group: str
    zh: str
    zh_hant: str
    en: str
    synonyms: tuple[str, ...]

    def label(self, language: str) -> str:
        return {"zh": self.zh, "zh_hant": self.zh_hant}.get(language, self.en)


def fold(text: str) -> str:
    """Compare text across width, case and script (traditional → simplified)."""
    return _t2s.convert(unicodedata.normalize("NFKC", text)).strip().lower()


class Taxonomy:
    def __init__(self, sectors: list[Sector]) -> None:
        self.sectors = {sector.code: sector for sector in sectors}
        self._exact: dict[str, str] = {}
        self._terms: list[tuple[str, str]] = []  # (folded term, code), longest first
        for sector in sectors:
            for term in (sector.code, sector.zh, sector.zh_hant, sector.en, *sector.synonyms):
                folded = fold(term.replace("_", " ") if term == sector.code else term)
                self._exact.setdefault(folded, sector.code)
                if len(folded) >= 2:
                    self._terms.append((folded, sector.code))
        self._terms.sort(key=lambda item: -len(item[0]))

    def exact_code(self, label: str) -> str | None:
        """The code of a label that *is* a sector name or synonym (no partial matches)."""
        return self._exact.get(fold(label))

    def code_for(self, label: str) -> str | None:
        """The code of a label: exact match first, else the longest known term inside it."""
        folded = fold(label)
        if folded in self._exact:
            return self._exact[folded]
        for term, code in self._terms:
            # Latin terms must match whole words; CJK terms may sit inside a longer phrase.
            if term in folded and (not term.isascii() or f" {term} " in f" {folded} "):
                return code
        return None

    def codes_for(self, labels: list[str]) -> list[str]:
        codes: list[str] = []
        for label in labels:
            code = self.code_for(label)
            if code and code not in codes:
                codes.append(code)
        return codes

    def codes_in_text(self, text: str, limit: int = 5) -> list[str]:
        """Sector codes whose terms occur in free text, most mentioned first."""
        folded = fold(text)
        counts: dict[str, int] = {}
        for term, code in self._terms:
            if term.isascii():
                hits = f" {folded} ".count(f" {term} ")
            else:
                hits = folded.count(term)
            if hits:
                counts[code] = counts.get(code, 0) + hits
        return [code for code, _ in sorted(counts.items(), key=lambda item: -item[1])][:limit]


@lru_cache
def load_taxonomy() -> Taxonomy:
    raw = resources.files(__package__).joinpath("sectors.json").read_text(encoding="utf-8")
    return Taxonomy(
        [
            Sector(
                code=item["code"],
                group=item["group"],
                zh=item["zh"],
                zh_hant=item.get("zh_hant", item["zh"]),
                en=item["en"],
                synonyms=tuple(item.get("synonyms", ())),
            )
            for item in json.loads(raw)
        ]
    )
