"""Structured rules on single pairs: declared exclusions gate only what they name."""

from __future__ import annotations

from typing import Any

from services.api.intake import build_entity
from services.matcher.ranking import text_similarity
from services.matcher.scoring import concept_overlap, structured_fit
from shared.models import CREATE_MODELS, Entity
from tests.payloads import MANDATE, NEED, PITCH

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


ENGLISH_ANODE_PITCH = {
    **PITCH,
    "company": "Northern Carbon Materials",
    "title": "Synthetic graphite anode plant",
    "summary": "Graphitization and coating line turning flake graphite into graphite anodes for EV cells.",
    "sectors": ["new materials"],
}
ENGLISH_SOLAR_PITCH = {
    **ENGLISH_ANODE_PITCH,
    "company": "Northern Sun Materials",
    "title": "Perovskite tandem solar modules",
    "summary": "A pilot line for perovskite-on-silicon tandem solar modules on new glass substrates.",
}


def test_concepts_link_an_english_text_and_a_chinese_one() -> None:
    similarity, terms = concept_overlap("鹤岗石墨负极材料深加工", "graphite anodes for EV cells")
    assert similarity > 0.5
    assert terms == ["graphite anodes"]
    assert concept_overlap("鹤岗石墨负极材料深加工", "perovskite tandem solar modules")[0] == 0.0


def test_the_lexical_signal_is_the_stronger_of_bm25_and_concepts() -> None:
    assert text_similarity(0.9, "石墨负极", "perovskite modules")[0] == 0.9
    assert text_similarity(0.0, "石墨负极", "graphite anode")[0] == 1.0


def chain_link(pitch: dict[str, Any]) -> float:
    rules = structured_fit(entity("pitch", pitch, "enterprise"), entity("need", NEED, "government"))
    return next(r.contribution for r in rules.reasons if r.rule == "chain_link")


def test_an_english_pitch_can_supply_a_chinese_missing_link() -> None:
    # The need's missing link is 石墨负极材料深加工: the anode maker supplies it, the solar one does not.
    assert chain_link(ENGLISH_ANODE_PITCH) > chain_link(ENGLISH_SOLAR_PITCH)
    assert chain_link(ENGLISH_SOLAR_PITCH) == 0.0
