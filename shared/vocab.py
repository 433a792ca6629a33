"""Controlled vocabularies (codes) with the Chinese and English words users type for them.

Users never have to type codes: `parse_code` accepts the code, its English words or its
Chinese (simplified or traditional) words, case- and width-insensitively.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum
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


# Words people type for each code (simplified and traditional Chinese, English variants).
ALIASES: dict[type[StrEnum], dict[str, tuple[str, ...]]] = {
    Stage: {
        "seed": ("种子轮", "種子輪", "种子期", "seed round"),
        "angel": ("天使轮", "天使輪", "angel round"),
        "pre_a": ("pre-a", "pre-a轮", "pre-a輪", "pre a"),
        "series_a": ("a轮", "a輪", "series a", "a"),
        "series_b": ("b轮", "b輪", "series b", "b"),
        "series_c": ("c轮", "c輪", "series c", "c", "c+轮"),
        "pre_ipo": ("pre-ipo", "pre ipo", "拟上市"),
        "growth": ("成长期", "成長期", "growth stage", "扩张期", "并购", "战略投资"),
    },
    PitchNeed: {
        "capital": ("资金", "資金", "融资", "融資", "funding"),
        "land": ("土地", "用地", "场地", "場地", "厂房", "site"),
        "scenario": ("应用场景", "應用場景", "场景", "場景", "application scenario"),
        "supply_chain": ("供应链", "供應鏈", "产业链配套", "supply chain"),
        "talent": ("人才", "talents", "people"),
        "pilot_line": ("中试", "中試", "中试线", "pilot", "pilot line"),
        "market": ("市场", "市場", "订单", "customers"),
    },
    ChainPosition: {
        "upstream": ("上游",),
        "midstream": ("中游",),
        "downstream": ("下游",),
    },
    TransferMode: {
        "migration": ("技术迁移", "技術遷移", "迁移", "遷移"),
        "translation": ("技术平移", "技術平移", "平移"),
        "leap": ("技术跃升", "技術躍升", "跃升", "躍升"),
    },
    FundType: {
        "vc": ("风险投资", "風險投資", "创投", "創投", "venture capital"),
        "pe": ("私募股权", "私募股權", "private equity"),
        "government_guidance": ("政府引导基金", "政府引導基金", "引导基金", "引導基金", "guidance fund"),
        "bank": ("银行", "銀行"),
        "broker": ("券商", "证券", "證券", "brokerage"),
        "corporate_vc": ("产业资本", "產業資本", "cvc", "corporate venture capital"),
        "angel": ("天使投资", "天使投資", "angel investor"),
    },
    LossTolerance: {
        "low": ("低",),
        "medium": ("中",),
        "high": ("高", "耐心资本", "耐心資本", "patient capital"),
    },
    ChainAction: {
        "build": ("建链", "建鏈"),
        "fill": ("补链", "補鏈"),
        "stabilise": ("稳链", "穩鏈", "stabilize"),
        "strengthen": ("强链", "強鏈"),
    },
    ElementType: {
        "environment": ("环境", "環境", "环境资源", "environmental"),
        "location": ("区位", "區位", "区位枢纽", "区位枢纽化"),
        "people": ("人力", "人才", "人力资源"),
        "technology_base": ("技术", "技術", "技术平台", "technology"),
        "industry_base": ("产业", "產業", "产业基础", "industry"),
    },
    Offering: {
        "land": ("土地", "用地", "厂房", "廠房"),
        "scenario": ("应用场景", "應用場景", "场景", "場景"),
        "test_field": ("试验场", "試驗場", "测试空域", "試飛空域", "test airspace", "testbed"),
        "data": ("数据", "數據", "数据开放"),
        "co_investment": ("跟投", "联合投资", "聯合投資", "基金跟投", "co-investment"),
        "talent": ("人才", "人才政策"),
        "pilot_line": ("中试", "中試", "中试平台", "pilot"),
        "energy": ("能源", "电力", "電力", "绿电", "綠電", "power"),
        "logistics": ("物流", "港口", "通道"),
    },
    Currency: {
        "CNY": ("rmb", "人民币", "人民幣", "元", "yuan"),
        "USD": ("美元", "us$", "$"),
        "EUR": ("欧元", "歐元", "€"),
        "HKD": ("港币", "港幣", "港元", "hk$"),
    },
}

E = TypeVar("E", bound=StrEnum)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().lower().replace("_", " ").replace("-", " ")


_LOOKUP: dict[type[StrEnum], dict[str, str]] = {}
for _enum, _aliases in ALIASES.items():
    table = {_fold(member.value): member.value for member in _enum}
    for _code, _words in _aliases.items():
        for _word in _words:
            table[_fold(_word)] = _code
    _LOOKUP[_enum] = table


def parse_code(enum: type[E], value: Any) -> Any:
    """Map a code or one of its words to the code; anything else passes through for the
    enum's own validation to reject with the list of allowed values."""
    if isinstance(value, str):
        return _LOOKUP.get(enum, {}).get(_fold(value), value)
    return value
