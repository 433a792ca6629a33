"""Controlled vocabularies (codes) with the Chinese and English words users type for them.

Users never have to type codes: `parse_code` accepts the code, its English words or its
Chinese (simplified or traditional) words, case- and width-insensitively.
"""

from __future__ import annotations

import json
import unicodedata
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from typing import Any, TypeVar


class Stage(StrEnum):
    SEED = "seed"
    ANGEL = "angel"
    PRE_A = "pre_a"
    SERIES_A = "series_a"
    SERIES_B = "series_b"
    SERIES_C = "series_c"
    PRE_IPO = "pre_ipo"
    GROWTH = "growth"


class Currency(StrEnum):
    CNY = "CNY"
    USD = "USD"
    EUR = "EUR"
    HKD = "HKD"


class PitchNeed(StrEnum):
    CAPITAL = "capital"
    LAND = "land"
    SCENARIO = "scenario"
    SUPPLY_CHAIN = "supply_chain"
    TALENT = "talent"
    PILOT_LINE = "pilot_line"
    MARKET = "market"


class ChainPosition(StrEnum):
    UPSTREAM = "upstream"
    MIDSTREAM = "midstream"
    DOWNSTREAM = "downstream"


class TransferMode(StrEnum):
    MIGRATION = "migration"
    TRANSLATION = "translation"
    LEAP = "leap"


class FundType(StrEnum):
    VC = "vc"
    PE = "pe"
    GOVERNMENT_GUIDANCE = "government_guidance"
    BANK = "bank"
    BROKER = "broker"
    CORPORATE_VC = "corporate_vc"
    ANGEL = "angel"


class LossTolerance(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ChainAction(StrEnum):
    BUILD = "build"
    FILL = "fill"
    STABILISE = "stabilise"
    STRENGTHEN = "strengthen"


class ElementType(StrEnum):
    ENVIRONMENT = "environment"
    LOCATION = "location"
    PEOPLE = "people"
    TECHNOLOGY_BASE = "technology_base"
    INDUSTRY_BASE = "industry_base"


class Offering(StrEnum):
    LAND = "land"
    SCENARIO = "scenario"
    TEST_FIELD = "test_field"
    DATA = "data"
    CO_INVESTMENT = "co_investment"
    TALENT = "talent"
    PILOT_LINE = "pilot_line"
    ENERGY = "energy"
    LOGISTICS = "logistics"


# The vocabulary file (shared/taxonomy/vocabularies.json) names each enum's codes with
# Chinese (simplified, traditional) and English labels and the synonyms people type.
VOCABULARY_OF: dict[type[StrEnum], str] = {
    Stage: "stage",
    Currency: "currency",
    PitchNeed: "pitch_need",
    ChainPosition: "chain_position",
    TransferMode: "transfer_mode",
    FundType: "fund_type",
    LossTolerance: "loss_tolerance",
    ChainAction: "chain_action",
    ElementType: "element_type",
    Offering: "offering",
}


@lru_cache
def vocabularies() -> dict[str, list[dict[str, Any]]]:
    raw = resources.files("shared").joinpath("taxonomy", "vocabularies.json").read_text(encoding="utf-8")
    data: dict[str, list[dict[str, Any]]] = json.loads(raw)
    return data


E = TypeVar("E", bound=StrEnum)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().lower().replace("_", " ").replace("-", " ")


@lru_cache
def _lookup(enum: type[StrEnum]) -> dict[str, str]:
    """Folded word → code, from the codes themselves and every label and synonym."""
    table = {_fold(member.value): member.value for member in enum}
    for entry in vocabularies()[VOCABULARY_OF[enum]]:
        for word in (entry["zh"], entry["zh_hant"], entry["en"], *entry["synonyms"]):
            table.setdefault(_fold(word), entry["code"])
    return table


def parse_code(enum: type[E], value: Any) -> Any:
    """Map a code or one of its words to the code; anything else passes through for the
    enum's own validation to reject with the list of allowed values."""
    if isinstance(value, str):
        return _lookup(enum).get(_fold(value), value) if enum in VOCABULARY_OF else value
    return value
