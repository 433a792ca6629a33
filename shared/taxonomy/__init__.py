"""The sector taxonomy (shipped as `sectors.json`) and mapping of free labels to codes.

Users type sector labels in any language ("新材料", "先進材料", "graphene"); matching
compares codes, so a Chinese mandate and an English pitch in one sector meet.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from embeddings.lexical import to_simplified


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
    # to_simplified is OpenCC's t2s with a fast path for clauses it would not change (5x faster).
    return to_simplified(unicodedata.normalize("NFKC", text)).strip().lower()


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


_WORD = re.compile(r"[0-9a-z]+")


class Glossary:
    """Technology concepts named in several languages (`glossary.json`).

    `find` maps a text to the concepts it names and the word it used for each, so an English
    pitch on "graphite anodes" and a Chinese need for 石墨负极 share a concept though they
    share no word. CJK terms match inside longer words; Latin terms match whole words,
    plural -s/-es included, hyphens as spaces.
    """

    def __init__(self, concepts: dict[str, tuple[str, ...]]) -> None:
        self.concepts = concepts
        self._cjk: list[tuple[str, str]] = []  # (folded term, concept), longest first
        self._latin: dict[str, tuple[frozenset[str], re.Pattern[str]]] = {}  # (first words, pattern)
        for concept, terms in concepts.items():
            latin = []
            for term in terms:
                folded = fold(term)
                if folded.isascii():
                    latin.append(folded.replace("-", " "))
                else:
                    self._cjk.append((folded, concept))
            if latin:
                alternatives = "|".join(re.escape(term) for term in sorted(latin, key=len, reverse=True))
                pattern = re.compile(rf"(?<![0-9a-z])(?:{alternatives})(?:e?s)?(?![0-9a-z])")
                self._latin[concept] = (frozenset(_WORD.findall(term)[0] for term in latin), pattern)
        self._cjk.sort(key=lambda item: -len(item[0]))
        # Indexed by first character and first word: a text is checked only for the terms that
        # can start in it, not for all ~480, which makes `find` about twice as fast.
        self._cjk_by_first: dict[str, list[int]] = {}  # first character → positions in self._cjk
        for position, (term, _) in enumerate(self._cjk):
            self._cjk_by_first.setdefault(term[0], []).append(position)
        self._latin_by_word: dict[str, list[tuple[int, str]]] = {}  # first word → (order, concept)
        for order, (concept, (first_words, _)) in enumerate(self._latin.items()):
            for word in first_words:
                self._latin_by_word.setdefault(word, []).append((order, concept))

    def find(self, folded: str) -> dict[str, str]:
        """Concept → the (folded) term the text used for it; `folded` as by `fold`."""
        found: dict[str, str] = {}
        positions: list[int] = []
        for first in self._cjk_by_first.keys() & set(folded):
            positions.extend(self._cjk_by_first[first])
        for position in sorted(positions):  # longest term first, as in self._cjk
            term, concept = self._cjk[position]
            if concept not in found and term in folded:
                found[concept] = term
        spaced = folded.replace("-", " ")  # "flight-control" is "flight control"
        words = set(_WORD.findall(spaced))
        words |= {word[:-1] for word in words if word.endswith("s")} | {w[:-2] for w in words if w.endswith("es")}
        candidates = sorted({item for word in words & self._latin_by_word.keys() for item in self._latin_by_word[word]})
        for _, concept in candidates:  # in glossary order, as before the index
            if concept not in found:
                match = self._latin[concept][1].search(spaced)
                if match:
                    found[concept] = match.group()
        return found

    def concepts_in(self, text: str) -> dict[str, str]:
        return self.find(fold(text))


@lru_cache
def load_glossary() -> Glossary:
    raw = json.loads(resources.files(__package__).joinpath("glossary.json").read_text(encoding="utf-8"))
    return Glossary({item["id"]: tuple(item["terms"]) for item in raw["concepts"]})
