"""Structured rules on single pairs: declared exclusions gate only what they name."""

from __future__ import annotations

from typing import Any

from services.api.intake import build_entity
from services.matcher.scoring import structured_fit
from shared.models import CREATE_MODELS, Entity
from tests.payloads import MANDATE, PITCH

EVTOL = {
    **PITCH,
    "company": "Pearl Delta Aeromobility",
    "title": "Five-seat tilt-rotor eVTOL for intercity routes",
    "summary": "A piloted tilt-rotor eVTOL for intercity passenger routes around the Pearl River estuary.",
    "sectors": ["eVTOL"],
    "region": "广东省深圳市",
}
TOY_DRONES = {
    **EVTOL,
    "company": "澄海飞趣玩具",
    "title": "消费级玩具无人机与航模",
    "summary": "面向儿童和爱好者的消费级玩具无人机、遥控航模，年销量百万台。",
    "sectors": ["无人机"],
}
LOW_ALTITUDE_FUND = {
    **MANDATE,
    "fund_name": "深圳低空经济产业引导基金",
    "thesis": "投资eVTOL整机、工业级无人机与飞控系统。",
    "sectors": ["低空经济"],
    "regions": ["广东省"],
    "reinvestment_region": None,
    "reinvestment_ratio": None,
}


def entity(kind: str, body: dict[str, Any], owner: str) -> Entity:
    return build_entity(kind, CREATE_MODELS[kind].model_validate(body), owner=owner)


def exclusion_reason(pitch: dict[str, Any], exclusions: list[str]) -> tuple[bool, str]:
    fund = entity("mandate", {**LOW_ALTITUDE_FUND, "exclusions": exclusions}, "fund")
    rules = structured_fit(entity("pitch", pitch, "enterprise"), fund)
    reason = next(r for r in rules.reasons if r.rule == "exclusions")
    return reason.passed, reason.detail


def test_a_narrow_exclusion_does_not_exclude_its_whole_sector() -> None:
    # "消费级航模与玩具无人机" contains 无人机, a low-altitude synonym; it must not gate an eVTOL maker.
    passed, detail = exclusion_reason(EVTOL, ["消费级航模与玩具无人机", "consumer toy drones"])
    assert passed, detail


def test_a_narrow_exclusion_excludes_the_segment_it_names() -> None:
    passed, detail = exclusion_reason(TOY_DRONES, ["消费级航模与玩具无人机"])
    assert not passed
    assert "消费级航模与玩具无人机" in detail


def test_an_exclusion_naming_a_sector_excludes_the_sector() -> None:
    passed, _ = exclusion_reason(EVTOL, ["低空经济"])
    assert not passed


def test_an_exclusion_phrase_in_the_text_excludes_across_scripts() -> None:
    passed, _ = exclusion_reason({**EVTOL, "summary": "主營消費級玩具無人機"}, ["玩具无人机"])
    assert not passed
