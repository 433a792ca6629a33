"""Structural checks of the labelled matching benchmark (shared/bench/matching_set.json).

The set holds invented pitches, mandates and needs (not the demo texts), per-entity
activity, and queries whose graded judgments list every relevant candidate of one kind.
These checks keep the file loadable by the API models, consistent with itself and the
sector taxonomy, multilingual, and independent of the demo data's wording. They also check
the grading rubric's cheap promises: every query has same-sector candidates graded at most
marginal (so sector labels alone cannot rank well), and no graded pitch-mandate pair fails
the stage or ticket gate.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from shared.models import MandateCreate, NeedCreate, PitchCreate
from shared.taxonomy import load_taxonomy
from tests.language_mix import CJK_RE, language, strings

ROOT = Path(__file__).resolve().parents[2]
BENCH_FILE = ROOT / "shared" / "bench" / "matching_set.json"
DEMO_DIR = ROOT / "shared" / "demo"
SECTORS_FILE = ROOT / "shared" / "taxonomy" / "sectors.json"

KINDS = ("pitch", "mandate", "need")
GROUP_KEYS = {"pitch": "pitches", "mandate": "mandates", "need": "needs"}
PREFIX = {"pitch": "p-", "mandate": "m-", "need": "n-"}
MODELS: dict[str, type[PitchCreate] | type[MandateCreate] | type[NeedCreate]] = {
    "pitch": PitchCreate,
    "mandate": MandateCreate,
    "need": NeedCreate,
}
SECTOR_FIELD = {"pitch": "sectors", "mandate": "sectors", "need": "target_sectors"}
MAIN_TEXT = {"pitch": "summary", "mandate": "thesis", "need": "description"}
CHECKED_TEXTS = ("title", "summary", "thesis", "description")
MIN_COUNT = {"pitch": 95, "mandate": 80, "need": 75}
MIN_QUERIES = 60
MIN_PER_GROUP = 16
MIN_CROSS_LANGUAGE = 12
PAIR_GROUPS = (frozenset({"pitch", "mandate"}), frozenset({"pitch", "need"}), frozenset({"mandate", "need"}))
LANGUAGES = {"zh", "zh_hant", "en"}
# Share of entities per language (target ~55% / ~30% / ~15%).
LANGUAGE_RANGES = {"zh": (0.45, 0.65), "en": (0.22, 0.38), "zh_hant": (0.10, 0.20)}
SHARED_SUBSTRING = 20
# Same-sector candidates graded 0 or 1 that every query must have (the rubric's hard cases).
MIN_SAME_SECTOR_NEGATIVES = 2
# Rough conversion to CNY for the ticket gate; only ratios near 3x matter, so rates are approximate.
CNY_PER_UNIT = {"CNY": 1.0, "USD": 7.2, "EUR": 7.8, "HKD": 0.92}
TICKET_GATE = 3.0


# --------------------------------------------------------------------------- loading
def _load(path: Path) -> Any:
    return json.loads(path.read_bytes().decode("utf-8"))


@lru_cache
def bench() -> dict[str, Any]:
    data = _load(BENCH_FILE)
    assert isinstance(data, dict), "matching_set.json must hold one JSON object"
    return data


def entities(kind: str) -> list[dict[str, Any]]:
    return list(bench()["entities"][GROUP_KEYS[kind]])


def all_entities() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in KINDS:
        for item in entities(kind):
            yield kind, item


@lru_cache
def kind_of() -> dict[str, str]:
    return {item["ref"]: kind for kind, item in all_entities()}


@lru_cache
def by_ref() -> dict[str, dict[str, Any]]:
    return {item["ref"]: item for _, item in all_entities()}


def queries() -> list[dict[str, Any]]:
    return list(bench()["queries"])


@lru_cache
def label_index() -> frozenset[str]:
    """Every sector label (zh, zh_hant, en, synonyms), folded as the taxonomy test folds them."""
    labels: set[str] = set()
    for sector in _load(SECTORS_FILE):
        for label in (sector["zh"], sector["zh_hant"], sector["en"], *sector["synonyms"]):
            labels.add(label.strip().casefold())
    return frozenset(labels)


def group_of(query: dict[str, Any]) -> frozenset[str]:
    return frozenset({kind_of()[query["subject"]], query["candidate_kind"]})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@lru_cache
def demo_texts() -> tuple[str, ...]:
    texts: list[str] = []
    for path in sorted(DEMO_DIR.glob("*.json")):
        texts.extend(strings(_load(path)))
    return tuple(texts)


@lru_cache
def demo_substrings() -> frozenset[str]:
    grams: set[str] = set()
    for text in demo_texts():
        grams.update(text[i : i + SHARED_SUBSTRING] for i in range(len(text) - SHARED_SUBSTRING + 1))
    return frozenset(grams)


# --------------------------------------------------------------------------- file and counts
def test_file_is_pretty_printed_utf8_json() -> None:
    data = bench()
    assert set(data) == {"description", "entities", "activity", "queries"}
    assert isinstance(data["description"], str) and data["description"].strip()
    assert set(data["entities"]) == set(GROUP_KEYS.values())
    text = BENCH_FILE.read_text(encoding="utf-8")
    assert text.rstrip("\n") == json.dumps(data, ensure_ascii=False, indent=2), (
        "matching_set.json must be written with json.dumps(data, ensure_ascii=False, indent=2)"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_entity_counts(kind: str) -> None:
    assert len(entities(kind)) >= MIN_COUNT[kind]


def test_query_count() -> None:
    assert len(queries()) >= MIN_QUERIES


def test_refs_are_unique_prefixed_and_owned() -> None:
    refs = [item.get("ref") for _, item in all_entities()]
    duplicates = [ref for ref, count in Counter(refs).items() if count > 1]
    assert not duplicates, f"duplicate refs: {duplicates}"
    for kind, item in all_entities():
        ref = item["ref"]
        assert isinstance(ref, str) and re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", ref), ref
        assert ref.startswith(PREFIX[kind]), f"{ref} should start with {PREFIX[kind]!r}"
        assert isinstance(item.get("owner"), str) and item["owner"].strip(), f"{ref}: owner missing"


# --------------------------------------------------------------------------- entities
@pytest.mark.parametrize(
    ("kind", "item"), list(all_entities()), ids=lambda value: value["ref"] if isinstance(value, dict) else value
)
def test_entity_validates_against_api_model(kind: str, item: dict[str, Any]) -> None:
    MODELS[kind].model_validate({key: value for key, value in item.items() if key not in ("ref", "owner")})


def test_every_sector_label_resolves() -> None:
    index = label_index()
    unresolved = [
        (item["ref"], label)
        for kind, item in all_entities()
        for label in item[SECTOR_FIELD[kind]]
        if not isinstance(label, str) or label.strip().casefold() not in index
    ]
    assert not unresolved, f"labels not in sectors.json: {unresolved}"


def test_main_texts_are_substantive() -> None:
    for kind, item in all_entities():
        text = item[MAIN_TEXT[kind]]
        if language(item) == "en":
            assert 50 <= len(text.split()) <= 180, f"{item['ref']}: {len(text.split())} words"
        else:
            assert 60 <= len(CJK_RE.findall(text)) <= 250, f"{item['ref']}: {len(CJK_RE.findall(text))} characters"


def test_language_mix() -> None:
    languages = Counter(language(item) for _, item in all_entities())
    total = sum(languages.values())
    for lang, (low, high) in LANGUAGE_RANGES.items():
        assert low <= languages[lang] / total <= high, f"{lang}: {languages[lang]}/{total} ({dict(languages)})"
    for kind in KINDS:
        per_kind = Counter(language(item) for item in entities(kind))
        assert set(per_kind) == LANGUAGES, f"{kind}: every language should occur ({dict(per_kind)})"


def test_no_text_copied_from_demo_data() -> None:
    demo = set(demo_texts())
    grams = demo_substrings()
    copied = []
    for _, item in all_entities():
        for field in CHECKED_TEXTS:
            text = item.get(field)
            if not isinstance(text, str):
                continue
            if text in demo:
                copied.append((item["ref"], field, "identical"))
                continue
            shared = next(
                (
                    text[i : i + SHARED_SUBSTRING]
                    for i in range(len(text) - SHARED_SUBSTRING + 1)
                    if text[i : i + SHARED_SUBSTRING] in grams
                ),
                None,
            )
            if shared is not None:
                copied.append((item["ref"], field, shared))
    assert not copied, f"texts shared with shared/demo: {copied}"


# --------------------------------------------------------------------------- activity
def test_activity_covers_every_mandate_and_need() -> None:
    activity = bench()["activity"]
    expected = {item["ref"] for kind in ("mandate", "need") for item in entities(kind)}
    assert set(activity) == expected, f"missing: {expected - set(activity)}, unknown: {set(activity) - expected}"
    for ref, record in activity.items():
        assert set(record) == {"deals", "last_deal_days_ago"}, ref
        assert _is_int(record["deals"]) and 0 <= record["deals"] <= 60, ref
        assert _is_int(record["last_deal_days_ago"]) and 0 <= record["last_deal_days_ago"] <= 1500, ref


# --------------------------------------------------------------------------- queries
def test_query_ids_are_unique() -> None:
    ids = [query["id"] for query in queries()]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]


@pytest.mark.parametrize("query", queries(), ids=lambda query: query["id"])
def test_query_is_well_formed(query: dict[str, Any]) -> None:
    assert set(query) == {"id", "subject", "candidate_kind", "language", "judgments", "why"}
    assert query["subject"] in kind_of(), f"unknown subject {query['subject']}"
    assert query["candidate_kind"] in KINDS
    assert query["candidate_kind"] != kind_of()[query["subject"]], "candidates must be of another kind"
    assert query["language"] in LANGUAGES
    assert query["language"] == language(by_ref()[query["subject"]]), "language is the subject's language"
    assert isinstance(query["why"], str) and query["why"].strip()
    judgments = query["judgments"]
    assert isinstance(judgments, dict) and judgments, "a query needs judged candidates"
    assert query["subject"] not in judgments, "self-judgment"
    for ref, grade in judgments.items():
        assert kind_of().get(ref) == query["candidate_kind"], f"{ref} is not a {query['candidate_kind']}"
        assert _is_int(grade) and grade in (1, 2, 3), f"{ref}: grade {grade!r}"
    assert 3 in judgments.values(), "every query needs at least one excellent (grade 3) candidate"


def test_subject_and_kind_pairs_are_not_repeated() -> None:
    pairs = Counter((query["subject"], query["candidate_kind"]) for query in queries())
    assert not [pair for pair, count in pairs.items() if count > 1]


def test_queries_per_pair_group() -> None:
    groups = Counter(group_of(query) for query in queries())
    assert set(groups) <= set(PAIR_GROUPS)
    for group in PAIR_GROUPS:
        assert groups[group] >= MIN_PER_GROUP, f"{sorted(group)}: {groups[group]} queries"


def test_cross_language_queries() -> None:
    crossing = [
        query["id"]
        for query in queries()
        if any(grade == 3 and language(by_ref()[ref]) != query["language"] for ref, grade in query["judgments"].items())
    ]
    assert len(crossing) >= MIN_CROSS_LANGUAGE, f"only {len(crossing)} cross-language queries"


def test_query_subjects_span_languages() -> None:
    assert {query["language"] for query in queries()} == LANGUAGES


# --------------------------------------------------------------------------- rubric
def sector_codes(ref: str) -> frozenset[str]:
    item = by_ref()[ref]
    return frozenset(load_taxonomy().codes_for(item[SECTOR_FIELD[kind_of()[ref]]]))


def passes_stage_and_ticket(pitch: dict[str, Any], mandate: dict[str, Any]) -> bool:
    """The rubric's structural hard gates for a pitch and a mandate (stage, ask within ~3x of the ticket)."""
    ask = pitch["funding_ask"] * CNY_PER_UNIT[pitch["currency"]]
    low = mandate["ticket_min"] * CNY_PER_UNIT[mandate["currency"]]
    high = mandate["ticket_max"] * CNY_PER_UNIT[mandate["currency"]]
    return pitch["stage"] in mandate["stages"] and low / TICKET_GATE <= ask <= high * TICKET_GATE


def pitch_and_mandate(subject: str, candidate: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    if {kind_of()[subject], kind_of()[candidate]} != {"pitch", "mandate"}:
        return None
    first, second = by_ref()[subject], by_ref()[candidate]
    return (first, second) if kind_of()[subject] == "pitch" else (second, first)


def same_sector_negatives(query: dict[str, Any]) -> list[str]:
    """Candidates that share a sector code with the subject yet are graded 0 (unlisted) or 1."""
    codes = sector_codes(query["subject"])
    return [
        item["ref"]
        for item in entities(query["candidate_kind"])
        if sector_codes(item["ref"]) & codes and query["judgments"].get(item["ref"], 0) <= 1
    ]


def test_description_states_the_rubric() -> None:
    description = bench()["description"]
    for grade in ("3 = excellent", "2 = good", "1 = marginal", "0 = a hard gate fails"):
        assert grade in description, f"rubric grade missing: {grade!r}"


@pytest.mark.parametrize("query", queries(), ids=lambda query: query["id"])
def test_query_has_same_sector_candidates_graded_at_most_marginal(query: dict[str, Any]) -> None:
    """Sharing a sector code is never enough: each query has same-sector candidates an organizer rejects."""
    negatives = same_sector_negatives(query)
    assert len(negatives) >= MIN_SAME_SECTOR_NEGATIVES, f"{query['id']}: only {negatives}"
    assert any(query["judgments"].get(ref) == 1 for ref in negatives), (
        f"{query['id']}: no same-sector candidate graded 1 (same sector, other technology)"
    )


@pytest.mark.parametrize(
    "query",
    [query for query in queries() if group_of(query) == frozenset({"pitch", "mandate"})],
    ids=lambda query: query["id"],
)
def test_pitch_mandate_query_has_a_structurally_fitting_negative(query: dict[str, Any]) -> None:
    """Some same-sector candidate passes stage and ticket yet is graded at most 1: fields alone can't rank it."""
    fitting = []
    for ref in same_sector_negatives(query):
        pair = pitch_and_mandate(query["subject"], ref)
        if pair is not None and passes_stage_and_ticket(*pair):
            fitting.append(ref)
    assert fitting, f"{query['id']}: every same-sector candidate graded <= 1 already fails stage or ticket"


def test_graded_pitch_mandate_pairs_pass_stage_and_ticket() -> None:
    """A listed (graded 1-3) pitch-mandate pair never fails the stage or ticket hard gate."""
    failing = []
    for query in queries():
        for ref in query["judgments"]:
            pair = pitch_and_mandate(query["subject"], ref)
            if pair is not None and not passes_stage_and_ticket(*pair):
                failing.append((query["id"], ref))
    assert not failing, f"graded pairs failing a hard gate: {failing}"
