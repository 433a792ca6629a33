"""The taxonomy as data: every code has bilingual labels; words map to codes in any script."""

from __future__ import annotations

import pytest

from shared.taxonomy import load_glossary, load_taxonomy
from shared.vocab import VOCABULARY_OF, ChainAction, Stage, TransferMode, parse_code, vocabularies


def test_every_enum_code_is_in_the_vocabulary_file_with_labels():
    for enum, name in VOCABULARY_OF.items():
        entries = vocabularies()[name]
        assert [entry["code"] for entry in entries] == [member.value for member in enum], name
        for entry in entries:
            assert entry["zh"] and entry["zh_hant"] and entry["en"], entry


@pytest.mark.parametrize(
    ("enum", "word", "code"),
    [
        (ChainAction, "補鏈", "fill"),
        (ChainAction, "强链", "strengthen"),
        (Stage, "A輪", "series_a"),
        (Stage, "Series B", "series_b"),
        (TransferMode, "技術躍升", "leap"),
        (Stage, "nonsense", "nonsense"),  # left for the enum's own validation to refuse
    ],
)
def test_words_map_to_codes(enum, word, code):
    assert parse_code(enum, word) == code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("年产2万吨锂电池石墨负极材料", "new_materials"),
        ("石墨負極材料深加工", "new_materials"),
        ("eVTOL air taxi with tilt rotors", "low_altitude_economy"),
    ],
)
def test_free_text_maps_to_sector_codes(text, code):
    assert code in load_taxonomy().codes_in_text(text)


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("年产2万吨锂电池石墨负极材料", "graphite_anode"),
        ("石墨負極材料深加工", "graphite_anode"),
        ("Synthetic graphite anodes for EV cells", "graphite_anode"),
        ("碳化矽功率器件", "sic"),
        ("a flight-control computer for drones", "flight_control"),
    ],
)
def test_the_glossary_names_one_concept_across_languages_and_scripts(text, concept):
    assert concept in load_glossary().concepts_in(text)


def test_the_glossary_matches_latin_terms_as_whole_words_only():
    glossary = load_glossary()
    assert "gan" not in glossary.concepts_in("an organic fertiliser plant in Gansu")
    assert "gan" in glossary.concepts_in("GaN power transistors")


def test_every_glossary_concept_has_chinese_and_english_terms():
    for concept, terms in load_glossary().concepts.items():
        assert any(not term.isascii() for term in terms), concept
        assert any(term.isascii() for term in terms), concept
