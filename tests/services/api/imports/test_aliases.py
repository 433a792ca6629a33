"""The header aliases data file: complete, consistent, and read across scripts and templates."""

from __future__ import annotations

import pytest

from services.api.imports.aliases import KINDS, _load, load_aliases
from services.api.imports.values import ELEMENT_FIELDS, LIST_FIELDS
from shared.confidential.fields import CONFIDENTIAL_PARTS
from shared.errors import ConfigurationError
from shared.models import CREATE_MODELS


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_of_every_create_model_is_importable_by_its_own_name(kind):
    aliases = load_aliases()
    for name in CREATE_MODELS[kind].model_fields:
        column = aliases.resolve(name)
        assert column is not None and column.field_for(kind) == name, name


def test_list_fields_are_exactly_the_models_list_fields():
    listed = {
        name
        for model in CREATE_MODELS.values()
        for name, info in model.model_fields.items()
        if "list[" in str(info.annotation) and name not in CONFIDENTIAL_PARTS  # those are JSON cells
    }
    assert listed == LIST_FIELDS | ELEMENT_FIELDS


def test_simplified_traditional_and_english_headers_mean_the_same_field():
    aliases = load_aliases()
    for header in ("项目名称", "項目名稱", "Project Name", "project_title", "标题 / Title", "標題"):
        assert aliases.resolve(header).field_for("pitch") == "title", header
    for header in ("行业", "產業", "所屬行業", "Sectors"):
        column = aliases.resolve(header)
        assert column.fields == {"pitch": "sectors", "mandate": "sectors", "need": "target_sectors"}, header
    assert aliases.resolve("地区").fields == {"pitch": "region", "mandate": "regions", "need": "region"}
    assert aliases.resolve("單筆投資下限").field_for("mandate") == "ticket_min"


def test_units_in_brackets_scale_amounts_and_other_brackets_are_translations():
    aliases = load_aliases()
    assert aliases.resolve("融资金额（万元）").unit == 1e4
    assert aliases.resolve("融資金額(億元)").unit == 1e8
    assert aliases.resolve("项目名称（Project）").field_for("pitch") == "title"


def test_meta_ignored_and_unknown_headers():
    aliases = load_aliases()
    assert aliases.resolve("类型").meta == "kind" and aliases.resolve("所有者").meta == "owner"
    assert aliases.resolve("ref").meta == "external_ref"
    assert aliases.resolve("备注").ignored and aliases.resolve("# 内部评分").ignored
    assert aliases.resolve("融资额度啊") is None
    assert aliases.kind_of("基金") == "mandate" and aliases.kind_of("項目") == "pitch"


def test_a_header_meaning_two_fields_of_one_kind_is_a_data_error():
    data = {
        "meta": {"kind": [], "owner": [], "external_ref": []},
        "ignored": [],
        "kinds": {},
        "columns": [
            {"fields": {"pitch": "title"}, "aliases": ["名称"]},
            {"fields": {"pitch": "company"}, "aliases": ["名称"]},
        ],
    }
    with pytest.raises(ConfigurationError, match="名称"):
        _load(data)
