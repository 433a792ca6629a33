"""Validation errors as field-level messages, in Chinese when the caller prefers it; a
database that is locked or away as a retryable 503, never a 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shared.bus import RetryableError

log = logging.getLogger(__name__)

# The database errors that say "not now" rather than "never": locked (SQLite busy timeout,
# PostgreSQL lock_timeout), unreachable, a connection killed under us, no pooled connection free.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeoutError, RetryableError)
RETRY_AFTER_S = 2
DATABASE_BUSY_DETAIL = (
    "the database is busy or unavailable; nothing was stored, retry / 数据库繁忙或不可用，未保存任何内容，请稍后重试"
)

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


def database_unavailable_response() -> JSONResponse:
    """503 + Retry-After with a bilingual Problem body (the transaction was rolled back)."""
    return JSONResponse(
        status_code=503, content={"detail": DATABASE_BUSY_DETAIL}, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


async def database_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: database unavailable, answered 503: %s", request.method, request.url.path, exc)
    return database_unavailable_response()


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (routes sharing a path are separate objects,
    so Starlette's own 405 lists only the first one's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match in (Match.FULL, Match.PARTIAL):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's HTTP error answers, except a 405: bilingual, with a complete `Allow` header."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 405:
        return await http_exception_handler(request, exc)
    allow = ", ".join(allowed_methods(request))
    return JSONResponse(
        status_code=405,
        content={"detail": f"method {request.method} not allowed here; allowed: {allow} / 不支持该请求方法"},
        headers={"Allow": allow},
    )
