"""Spreadsheet cells → API values: lists, amounts with units, yes/no, resource elements."""

from __future__ import annotations

import pytest

from services.api.imports.values import CellError, as_amount, as_bool, as_elements, as_list, as_ratio, as_text


def test_lists_split_on_chinese_and_latin_separators_or_read_as_json():
    assert as_list("新材料、石墨负极，石墨烯;储能；氢能|电池\n光伏, 风电") == [
        "新材料",
        "石墨负极",
        "石墨烯",
        "储能",
        "氢能",
        "电池",
        "光伏",
        "风电",
    ]
    assert as_list('["Hegang, Heilongjiang", "黑龙江省"]') == ["Hegang, Heilongjiang", "黑龙江省"]
    assert as_list(["a", 3.0]) == ["a", "3"]
    with pytest.raises(CellError):
        as_list("[broken")


@pytest.mark.parametrize(
    ("cell", "unit", "expected"),
    [
        ("80000000", None, 8e7),
        ("80,000,000", None, 8e7),
        ("8000万", None, 8e7),
        ("8,000 万元", None, 8e7),
        ("0.8亿", None, 8e7),
        ("80m", None, 8e7),
        ("8000", 1e4, 8e7),
        (8000, 1e4, 8e7),
        ("1.2亿", 1e4, 1.2e8),  # the cell's own unit wins over the header's
        ("8千萬", None, 8e7),  # traditional script
    ],
)
def test_amounts_with_units(cell, unit, expected):
    assert as_amount(cell, unit) == pytest.approx(expected)


def test_what_is_not_an_amount_is_left_for_the_model_to_reject():
    assert as_amount("about eight million") == "about eight million"
    assert as_amount("8 parsecs") == "8 parsecs"


def test_ratios_booleans_and_text():
    assert as_ratio("120%") == pytest.approx(1.2) and as_ratio("1.5") == pytest.approx(1.5)
    assert [as_bool(v) for v in ("是", "否", "Yes", "N", 1, True)] == [True, False, True, False, True, True]
    assert as_bool("maybe") == "maybe"
    assert as_text(230100.0) == "230100" and as_text(1.5) == "1.5" and as_text("  x ") == "x"


def test_resource_elements_as_type_description_lines_or_json():
    assert as_elements("环境：储量大，品位高\nlocation: near the port | 人才：高校3所") == [
        {"type": "环境", "description": "储量大，品位高"},
        {"type": "location", "description": "near the port"},
        {"type": "人才", "description": "高校3所"},
    ]
    assert as_elements('[{"type": "environment", "description": "x；y"}]')[0]["description"] == "x；y"
    with pytest.raises(CellError, match="类型：描述"):
        as_elements("just a description")
