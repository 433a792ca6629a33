"""Structural checks of the demo data set and the sector taxonomy.

Files under test (relative to the repository root):
  shared/demo/pitches.json, mandates.json, needs.json, expected_matches.json
  shared/taxonomy/sectors.json

Only the standard library and pytest are used, so these checks run without the
application's heavier dependencies.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from tests.language_mix import CJK_RE, language, strings

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "shared" / "demo"
SECTORS_FILE = ROOT / "shared" / "taxonomy" / "sectors.json"

STAGES = {"seed", "angel", "pre_a", "series_a", "series_b", "series_c", "pre_ipo", "growth"}
CURRENCIES = {"CNY", "USD", "EUR", "HKD"}
CHAIN_POSITIONS = {"upstream", "midstream", "downstream"}
PITCH_NEEDS = {"capital", "land", "scenario", "supply_chain", "talent", "pilot_line", "market"}
TRANSFER_MODES = {"migration", "translation", "leap"}
FUND_TYPES = {"vc", "pe", "government_guidance", "bank", "broker", "corporate_vc", "angel"}
LOSS_TOLERANCES = {"low", "medium", "high"}
CHAIN_ACTIONS = {"build", "fill", "stabilise", "strengthen"}
ELEMENT_TYPES = {"environment", "location", "people", "technology_base", "industry_base"}
OFFERINGS = {"land", "scenario", "test_field", "data", "co_investment", "talent", "pilot_line", "energy", "logistics"}
GROUPS = {"strategic_emerging", "future", "traditional"}

REF_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
CODE_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")

KINDS = ("pitch", "mandate", "need")
FILES = {"pitch": "pitches.json", "mandate": "mandates.json", "need": "needs.json"}
TEXT_FIELD = {"pitch": "summary", "mandate": "thesis", "need": "description"}
SECTOR_FIELD = {"pitch": "sectors", "mandate": "sectors", "need": "target_sectors"}
MIN_COUNT = {"pitch": 36, "mandate": 18, "need": 18}

# Sector codes the domain (DOMAIN.md) requires the taxonomy to cover.
REQUIRED_CODES = {
    "next_gen_it",
    "high_end_equipment",
    "new_materials",
    "biotech",
    "new_energy_vehicles",
    "new_energy",
    "energy_saving_environmental",
    "digital_creative",
    "related_services",
    "artificial_intelligence",
    "quantum_information",
    "integrated_circuits",
    "life_health",
    "brain_science",
    "aerospace",
    "low_altitude_economy",
    "humanoid_robots",
    "bio_manufacturing",
    "deep_earth_sea",
    "six_g",
    "industrial_metaverse",
    "computing_power",
    "geo_information",
    "intelligent_connected_vehicles",
    "hydrogen",
    "energy_storage",
    "batteries",
    "equipment_manufacturing",
    "textiles_apparel",
    "furniture_home",
    "metals_metallurgy",
    "chemicals",
    "food_processing",
    "light_industry",
    "building_materials",
    "modern_agriculture",
    "logistics_supply_chain",
}


# --------------------------------------------------------------------------- loading
def _load(path: Path) -> Any:
    raw = path.read_bytes()
    text = raw.decode("utf-8")  # must be valid UTF-8
    return json.loads(text)


@lru_cache
def items(kind: str) -> tuple[dict[str, Any], ...]:
    return tuple(_load(DEMO / FILES[kind]))


@lru_cache
def sectors() -> tuple[dict[str, Any], ...]:
    return tuple(_load(SECTORS_FILE))


@lru_cache
def matches() -> tuple[dict[str, Any], ...]:
    return tuple(_load(DEMO / "expected_matches.json"))


@lru_cache
def ref_kinds() -> dict[str, str]:
    return {item["ref"]: kind for kind in KINDS for item in items(kind)}


@lru_cache
def label_index() -> dict[str, set[str]]:
    """Folded label -> the sector codes it names (CJK exact, English case-insensitive)."""
    index: dict[str, set[str]] = {}
    for sector in sectors():
        for label in (sector["zh"], sector["zh_hant"], sector["en"], *sector["synonyms"]):
            index.setdefault(label.strip().casefold(), set()).add(sector["code"])
    return index


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize(
    "path",
    [DEMO / name for name in (*FILES.values(), "expected_matches.json")] + [SECTORS_FILE],
    ids=lambda path: path.name,
)
def test_file_is_pretty_printed_utf8_json_array(path: Path) -> None:
    data = _load(path)
    assert isinstance(data, list) and data, f"{path.name} must be a non-empty JSON array"
    assert all(isinstance(entry, dict) for entry in data)
    text = path.read_text(encoding="utf-8")
    expected = json.dumps(data, ensure_ascii=False, indent=2)
    assert text.rstrip("\n") == expected, (
        f"{path.name} must be written with json.dumps(data, ensure_ascii=False, indent=2)"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_counts(kind: str) -> None:
    assert len(items(kind)) >= MIN_COUNT[kind]


def test_refs_are_unique_kebab_case_and_prefixed() -> None:
    refs = [item.get("ref") for kind in KINDS for item in items(kind)]
    duplicates = [ref for ref, count in Counter(refs).items() if count > 1]
    assert not duplicates, f"duplicate refs: {duplicates}"
    for kind in KINDS:
        for item in items(kind):
            ref = item.get("ref")
            assert isinstance(ref, str) and REF_RE.fullmatch(ref), f"bad ref {ref!r}"
            assert ref.startswith(f"{kind}-"), f"{ref} should start with '{kind}-'"
            assert _nonempty_str(item.get("owner")), f"{ref}: owner missing"


# --------------------------------------------------------------------------- pitches
def test_some_pitches_carry_a_confidential_part() -> None:
    with_part = [p["ref"] for p in items("pitch") if {"financials", "contact", "attachments"} & set(p)]
    assert len(with_part) >= 3, "the demo shows staged disclosure on a few pitches"


@pytest.mark.parametrize("pitch", items("pitch"), ids=lambda item: item["ref"])
def test_pitch_fields(pitch: dict[str, Any]) -> None:
    expected_keys = {
        "ref",
        "owner",
        "company",
        "title",
        "summary",
        "sectors",
        "stage",
        "funding_ask",
        "currency",
        "region",
        "chain_position",
        "needs",
        "technology_transfer",
    }
    confidential = {"financials", "contact", "attachments"}  # optional: a few pitches show staged disclosure
    assert expected_keys <= set(pitch) <= expected_keys | confidential, f"keys differ: {set(pitch) ^ expected_keys}"
    for key in ("company", "title", "summary", "region"):
        assert _nonempty_str(pitch[key]), key
    assert len(pitch["title"]) <= 120
    assert isinstance(pitch["sectors"], list) and 1 <= len(pitch["sectors"]) <= 4
    assert pitch["stage"] in STAGES
    assert _number(pitch["funding_ask"]) and pitch["funding_ask"] > 0
    assert pitch["currency"] in CURRENCIES
    assert pitch["chain_position"] is None or pitch["chain_position"] in CHAIN_POSITIONS
    assert isinstance(pitch["needs"], list) and set(pitch["needs"]) <= PITCH_NEEDS
    assert len(set(pitch["needs"])) == len(pitch["needs"])
    assert pitch["technology_transfer"] is None or pitch["technology_transfer"] in TRANSFER_MODES


# --------------------------------------------------------------------------- mandates
@pytest.mark.parametrize("mandate", items("mandate"), ids=lambda item: item["ref"])
def test_mandate_fields(mandate: dict[str, Any]) -> None:
    expected_keys = {
        "ref",
        "owner",
        "fund_name",
        "fund_type",
        "thesis",
        "sectors",
        "stages",
        "ticket_min",
        "ticket_max",
        "currency",
        "regions",
        "reinvestment_region",
        "reinvestment_ratio",
        "relocation_required",
        "exclusions",
        "loss_tolerance",
    }
    assert set(mandate) == expected_keys, f"keys differ: {set(mandate) ^ expected_keys}"
    assert _nonempty_str(mandate["fund_name"]) and _nonempty_str(mandate["thesis"])
    assert mandate["fund_type"] in FUND_TYPES
    assert isinstance(mandate["sectors"], list) and 1 <= len(mandate["sectors"]) <= 5
    stages = mandate["stages"]
    assert isinstance(stages, list) and 1 <= len(stages) <= 5 and set(stages) <= STAGES
    assert len(set(stages)) == len(stages)
    assert _number(mandate["ticket_min"]) and _number(mandate["ticket_max"])
    assert 0 < mandate["ticket_min"] <= mandate["ticket_max"]
    assert mandate["currency"] in CURRENCIES
    assert isinstance(mandate["regions"], list) and all(_nonempty_str(region) for region in mandate["regions"])
    region, ratio = mandate["reinvestment_region"], mandate["reinvestment_ratio"]
    assert (region is None) == (ratio is None), "reinvestment region and ratio go together"
    if region is not None:
        assert _nonempty_str(region)
        assert _number(ratio) and 0 < ratio <= 3
    assert isinstance(mandate["relocation_required"], bool)
    assert isinstance(mandate["exclusions"], list) and all(_nonempty_str(x) for x in mandate["exclusions"])
    assert mandate["loss_tolerance"] in LOSS_TOLERANCES


def test_mandate_mix() -> None:
    mandates = items("mandate")
    relocating = [m["ref"] for m in mandates if m["relocation_required"]]
    assert 2 <= len(relocating) <= 4, f"2-3 funds should require relocation, got {relocating}"
    assert any(m["reinvestment_region"] for m in mandates), "some guidance fund must require 返投"
    types = Counter(m["fund_type"] for m in mandates)
    for fund_type in ("vc", "pe", "government_guidance", "bank", "broker", "corporate_vc", "angel"):
        assert types[fund_type] >= 1, f"no {fund_type} mandate"
    assert {m["currency"] for m in mandates} >= {"CNY", "USD", "HKD"}


# --------------------------------------------------------------------------- needs
@pytest.mark.parametrize("need", items("need"), ids=lambda item: item["ref"])
def test_need_fields(need: dict[str, Any]) -> None:
    expected_keys = {
        "ref",
        "owner",
        "issuer",
        "region",
        "chain_action",
        "target_sectors",
        "missing_link",
        "resource_elements",
        "offerings",
        "description",
    }
    assert set(need) == expected_keys, f"keys differ: {set(need) ^ expected_keys}"
    for key in ("issuer", "region", "description"):
        assert _nonempty_str(need[key]), key
    assert need["chain_action"] in CHAIN_ACTIONS
    assert isinstance(need["target_sectors"], list) and 1 <= len(need["target_sectors"]) <= 4
    assert need["missing_link"] is None or _nonempty_str(need["missing_link"])
    elements = need["resource_elements"]
    assert isinstance(elements, list) and 1 <= len(elements) <= 4
    for element in elements:
        assert set(element) == {"type", "description"}
        assert element["type"] in ELEMENT_TYPES
        assert _nonempty_str(element["description"])
    assert isinstance(need["offerings"], list) and set(need["offerings"]) <= OFFERINGS
    assert len(set(need["offerings"])) == len(need["offerings"])


def test_needs_cover_all_chain_actions() -> None:
    assert {need["chain_action"] for need in items("need")} == CHAIN_ACTIONS


# --------------------------------------------------------------------------- texts and languages
@pytest.mark.parametrize("kind", KINDS)
def test_main_texts_are_substantive(kind: str) -> None:
    field = TEXT_FIELD[kind]
    for item in items(kind):
        text = item[field]
        if CJK_RE.search(text):
            assert 80 <= len(text) <= 400, f"{item['ref']}: {field} has {len(text)} characters"
        else:
            words = len(text.split())
            assert 60 <= words <= 220, f"{item['ref']}: {field} has {words} words"


@pytest.mark.parametrize("kind", KINDS)
def test_language_mix_per_file(kind: str) -> None:
    languages = Counter(language(item) for item in items(kind))
    assert languages["en"] >= 1, "some items must contain no CJK characters at all"
    assert languages["zh_hant"] >= 1, "some items must be written in traditional Chinese"
    assert languages["zh"] >= 1, "some items must be written in simplified Chinese"


def test_language_mix_overall() -> None:
    languages = Counter(language(item) for kind in KINDS for item in items(kind))
    total = sum(languages.values())
    assert languages["zh"] / total >= 0.45, languages
    assert 0.2 <= languages["en"] / total <= 0.4, languages
    assert 0.05 <= languages["zh_hant"] / total <= 0.2, languages


def test_english_items_use_no_cjk_and_chinese_items_keep_one_script() -> None:
    for kind in KINDS:
        for item in items(kind):
            text = "".join(strings(item))
            if language(item) == "en":
                assert not CJK_RE.search(text), item["ref"]
            # a traditional item must not fall back to simplified sector labels with traditional twins
            if language(item) == "zh_hant":
                for label in item[SECTOR_FIELD[kind]]:
                    assert not any(label == sector["zh"] != sector["zh_hant"] for sector in sectors()), (
                        f"{item['ref']}: simplified label {label!r} in a traditional item"
                    )


# --------------------------------------------------------------------------- taxonomy
def test_sector_entries() -> None:
    entries = sectors()
    assert 35 <= len(entries) <= 50
    codes = [entry["code"] for entry in entries]
    assert len(codes) == len(set(codes)), f"duplicate codes: {[c for c, n in Counter(codes).items() if n > 1]}"
    for entry in entries:
        assert set(entry) == {"code", "group", "zh", "zh_hant", "en", "synonyms"}, entry.get("code")
        assert CODE_RE.fullmatch(entry["code"]), entry["code"]
        assert entry["group"] in GROUPS
        assert CJK_RE.search(entry["zh"]) or entry["zh"].isascii()
        for key in ("zh", "zh_hant", "en"):
            assert _nonempty_str(entry[key]), (entry["code"], key)
        assert not CJK_RE.search(entry["en"]), entry["code"]
        synonyms = entry["synonyms"]
        assert isinstance(synonyms, list) and 5 <= len(synonyms) <= 20, (entry["code"], len(synonyms))
        assert all(_nonempty_str(s) for s in synonyms)
        assert any(CJK_RE.search(s) for s in synonyms) and any(not CJK_RE.search(s) for s in synonyms), (
            f"{entry['code']}: synonyms should mix Chinese and English"
        )
    assert {entry["group"] for entry in entries} == GROUPS


def test_taxonomy_covers_the_domain() -> None:
    missing = REQUIRED_CODES - {entry["code"] for entry in sectors()}
    assert not missing, f"sector codes missing: {sorted(missing)}"


def test_each_label_names_one_sector() -> None:
    ambiguous = {label: codes for label, codes in label_index().items() if len(codes) > 1}
    assert not ambiguous, f"labels shared by several sectors: {ambiguous}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_sector_label_resolves(kind: str) -> None:
    index = label_index()
    unresolved = [
        (item["ref"], label)
        for item in items(kind)
        for label in item[SECTOR_FIELD[kind]]
        if not isinstance(label, str) or label.strip().casefold() not in index
    ]
    assert not unresolved, f"labels not in sectors.json: {unresolved}"


def test_demo_spans_all_sector_groups() -> None:
    index = label_index()
    group_of = {entry["code"]: entry["group"] for entry in sectors()}
    groups = {
        group_of[code]
        for kind in KINDS
        for item in items(kind)
        for label in item[SECTOR_FIELD[kind]]
        for code in index.get(label.strip().casefold(), ())
    }
    assert groups == GROUPS


# --------------------------------------------------------------------------- expected matches
PAIR_KINDS = {("mandate", "pitch"), ("need", "pitch"), ("mandate", "need")}


def _pairs() -> list[dict[str, Any]]:
    return [entry for entry in matches() if "a" in entry]


def _triads() -> list[dict[str, Any]]:
    return [entry for entry in matches() if "pitch" in entry]


def test_expected_match_entries_are_well_formed() -> None:
    kinds = ref_kinds()
    for entry in matches():
        if "a" in entry:
            assert set(entry) == {"a", "b", "relevance", "why"}, entry
            assert entry["a"] in kinds, f"unknown ref {entry['a']}"
            assert entry["b"] in kinds, f"unknown ref {entry['b']}"
            assert entry["a"] != entry["b"]
            assert entry["relevance"] in (0, 1, 2, 3) and not isinstance(entry["relevance"], bool)
            pair_kind = tuple(sorted((kinds[entry["a"]], kinds[entry["b"]])))
            assert pair_kind in PAIR_KINDS, (
                f"{entry['a']} / {entry['b']} is not a pitch-mandate, pitch-need or mandate-need pair"
            )
        else:
            assert set(entry) == {"pitch", "mandate", "need", "why"}, entry
            for kind in KINDS:
                assert kinds.get(entry[kind]) == kind, f"{entry[kind]!r} is not a {kind} ref"
        assert _nonempty_str(entry["why"])


def test_expected_match_counts() -> None:
    pairs, triads = _pairs(), _triads()
    assert len(pairs) >= 25
    assert len(triads) >= 5
    kinds = ref_kinds()
    per_kind = Counter(tuple(sorted((kinds[p["a"]], kinds[p["b"]]))) for p in pairs)
    for pair_kind in PAIR_KINDS:
        assert per_kind[pair_kind] >= 5, f"only {per_kind[pair_kind]} labelled {pair_kind} pairs"
    relevance = Counter(p["relevance"] for p in pairs)
    assert relevance[3] >= 5 and relevance[0] >= 3, f"need excellent fits and hard negatives: {relevance}"


def test_expected_pairs_are_unique() -> None:
    keys = [frozenset((p["a"], p["b"])) for p in _pairs()]
    duplicates = [tuple(key) for key, count in Counter(keys).items() if count > 1]
    assert not duplicates, f"pairs labelled twice: {duplicates}"


def test_expected_matches_cross_languages() -> None:
    by_ref = {item["ref"]: item for kind in KINDS for item in items(kind)}
    crossing = [p for p in _pairs() if p["relevance"] >= 2 and language(by_ref[p["a"]]) != language(by_ref[p["b"]])]
    assert len(crossing) >= 5, "good matches must also exist across languages"
