"""Validation errors as field-level messages, in Chinese when the caller prefers it."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

ZH_MESSAGES = {
    "missing": "必填字段缺失",
    "extra_forbidden": "不允许的字段（未知字段或由服务器设置的字段）",
    "string_too_short": "文本过短",
    "string_too_long": "文本过长",
    "string_type": "应为文本",
    "enum": "取值不在允许范围内",
    "greater_than": "数值必须大于下限",
    "less_than_equal": "数值超出上限",
    "too_short": "列表项目过少",
    "too_long": "列表项目过多",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "list_type": "应为列表",
    "bool_parsing": "应为布尔值",
    "value_error": "取值无效",
    "json_invalid": "JSON 格式错误",
    "model_attributes_type": "应为对象",
    "dict_type": "应为对象",
    "url_refused": "不接受此网址（须为公网 HTTPS 地址）",
}


class Problem(BaseModel):
    """Any other refusal: what went wrong, in English and Chinese."""

    detail: str


class FieldError(BaseModel):
    field: str
    message: str
    type: str | None = None


class ValidationProblem(BaseModel):
    """What every 422 carries: a summary and one message per field (the OpenAPI documents this)."""

    detail: str
    errors: list[FieldError]


def requested_language(request: Request) -> str | None:
    """'zh' or 'en' when Accept-Language names one first, else None (the caller decides)."""
    accept = request.headers.get("accept-language", "").lower()
    return "zh" if accept.startswith("zh") else "en" if accept.startswith("en") else None


def prefers_chinese(request: Request) -> bool:
    return requested_language(request) == "zh"


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    chinese = prefers_chinese(request)
    errors = []
    for error in exc.errors():
        message = error.get("msg", "invalid")
        if chinese and error.get("type") in ZH_MESSAGES:
            message = f"{ZH_MESSAGES[error['type']]}（{message}）"
        errors.append({"field": _field(error.get("loc", ())), "message": message, "type": error.get("type")})
    return JSONResponse(
        status_code=422,
        content=jsonable_encoder(
            {
                "detail": "请求无效，未保存任何内容" if chinese else "invalid request; nothing was stored",
                "errors": errors,
            }
        ),
    )
