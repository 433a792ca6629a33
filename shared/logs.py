"""Structured logs: one JSON object per line, carrying the event or request being handled.

`log_context(...)` binds fields (`event_id`, `topic`, `partition`, `offset`, `entity_id`,
`request_id`, …) to the code running inside it. The bus binds them around each batch and
each event, the API around each request, so a handler's own log lines say which event or
request they are about without passing ids down every call. A contextvar (not a
thread-local) so that asyncio tasks and `run_in_threadpool` calls inherit it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("salon_log_context", default=MappingProxyType({}))

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged
# (but not uvicorn's `color_message`, the message again with terminal colour codes).
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` (None values skipped) to every log line written inside the block."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{key: value for key, value in fields.items() if value is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_CONTEXT.get())


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES and value is not None}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "service", ["instance",] "logger", "message", <context>, <extra>, "exception"}`
    per line; `instance` names the replica when it is not simply the service."""

    def __init__(self, service: str, *, instance: str | None = None) -> None:
        super().__init__()
        self.service = service
        self.instance = instance if instance != service else None

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "service": self.service,
            **({"instance": self.instance} if self.instance else {}),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # The line's own `extra=` fields are more specific than the context; neither may
        # overwrite the fixed keys above.
        for key, value in [*_extras(record).items(), *_CONTEXT.get().items()]:
            entry.setdefault(key, value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines (`SALON_LOG_FORMAT=text`), context as trailing key=value pairs."""

    def __init__(self, service: str, *, instance: str | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)-7s " + (instance or service) + " %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {**_CONTEXT.get(), **_extras(record)}
        if not fields:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the pairs
        pairs = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{first} [{pairs}]{newline}{rest}"
