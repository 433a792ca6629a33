"""Import files for the tests: the shared payloads as CSV, XLSX and JSONL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook

from tests.payloads import MANDATE, NEED, PITCH

# The headers a Chinese template would use for the pitch payload, and the row for it.
PITCH_HEADERS = ["企业名称", "项目名称", "项目简介", "行业", "融资阶段", "融资金额（万元）", "币种", "地区", "企业需求"]


def pitch_row(**changes: Any) -> list[Any]:
    body = {**PITCH, **changes}
    return [
        body["company"],
        body["title"],
        body["summary"],
        "、".join(body["sectors"]),
        body["stage"],
        body["funding_ask"] / 1e4 if isinstance(body["funding_ask"], int | float) else body["funding_ask"],
        body["currency"],
        body["region"],
        "，".join(body["needs"]),
    ]


def csv_bytes(rows: Sequence[Sequence[Any]], *, encoding: str = "utf-8", delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows: Sequence[Sequence[Any]], *, leading_blank_rows: int = 0) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for _ in range(leading_blank_rows):
        sheet.append([])
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def jsonl_bytes(items: Sequence[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(item, ensure_ascii=False) for item in items).encode()


def mixed_rows() -> list[list[Any]]:
    """One pitch, one mandate and one need in one sheet with a 类型 and an 所有者 column."""
    headers = ["类型", "所有者", "项目名称", "企业名称", "描述", "行业", "阶段", "融资金额", "地区", "基金名称"]
    headers += ["基金类型", "单笔投资下限", "单笔投资上限", "发布单位", "产业链行动", "资源要素", "可提供资源"]
    blank = dict.fromkeys(headers, "")
    pitch = {
        **blank,
        "类型": "项目",
        "所有者": "鹤岗碳材科技",
        "项目名称": PITCH["title"],
        "企业名称": PITCH["company"],
        "描述": PITCH["summary"],
        "行业": "新材料、石墨负极",
        "阶段": "A轮",
        "融资金额": "8000万",
        "地区": PITCH["region"],
    }
    mandate = {
        **blank,
        "类型": "基金",
        "所有者": "龙江基金",
        "基金名称": MANDATE["fund_name"],
        "描述": MANDATE["thesis"],
        "行业": "新材料",
        "阶段": "A轮；B轮",
        "地区": "黑龙江省",
        "基金类型": "政府引导基金",
        "单笔投资下限": "2000万",
        "单笔投资上限": "1亿",
    }
    need = {
        **blank,
        "类型": "政府需求",
        "所有者": "鹤岗市人民政府",
        "发布单位": NEED["issuer"],
        "描述": NEED["description"],
        "行业": "新材料",
        "地区": NEED["region"],
        "产业链行动": "补链",
        "资源要素": "环境：晶质石墨储量亚洲第一\n区位：靠近对俄口岸",
        "可提供资源": "土地|中试|联合投资",
    }
    return [headers] + [[row[h] for h in headers] for row in (pitch, mandate, need)]
