"""Abuse resistance at the front door, as plain ASGI middleware (no request parsing twice):

* `BodySizeLimit` — a body over the limit is a 413, whether or not it declared its length
                    (a route may have its own limit: file imports get SALON_IMPORT_MAX_BYTES);
* `RateLimit`     — a token bucket per API key (per client address without one): 429 with
                    `Retry-After`. Buckets live in the api process, so with N replicas a key
                    gets N times the rate; a shared store is the scaling work's concern;
* `Idempotency`   — a POST with `Idempotency-Key` runs once per (key, caller, path): repeats,
                    even concurrent ones, get the first response back (`Idempotent-Replayed`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services.api.errors import DATABASE_BUSY_DETAIL, DATABASE_UNAVAILABLE, RETRY_AFTER_S
from shared.models import IdempotencyRecord

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REPLAY_WAIT_S = 15.0  # how long a repeat waits for the first request to finish
COMPLETE_RETRY_S = 60.0  # how long the outcome of a request is retried into a busy database


async def send_json(send: Send, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def caller_fingerprint(scope: Scope) -> str:
    """Who is asking, without keeping the secret: a hash of the credential, else the address."""
    credential = header(scope, b"authorization")
    if credential:
        return "key:" + hashlib.sha256(credential.encode()).hexdigest()[:32]
    client = scope.get("client") or ("?", 0)
    return f"addr:{client[0]}"


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyTooLarge("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands an already-read body to the app, then the client's own events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def limit_for(scope: Scope, default: int, path_limits: Mapping[str, int]) -> int:
    """The body cap of this request: a route's own (e.g. file imports) or the default."""
    return path_limits.get(scope.get("path", ""), default)


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int, path_limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope, self.max_bytes, self.path_limits)
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        try:
            body = await read_body(receive, limit)
        except BodyTooLarge:
            await self._refuse(send, limit)
            return
        await self.app(scope, replaying(body, receive), send)

    async def _refuse(self, send: Send, limit: int) -> None:
        await send_json(send, 413, {"detail": f"request body over {limit} bytes / 请求体过大"})


class TokenBuckets:
    """Per-caller token buckets: `rate` requests per second sustained, `burst` at once."""

    def __init__(self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller → (tokens, updated)
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """0 if allowed; otherwise the seconds until a token is available."""
        now = self.clock()
        with self._lock:
            tokens, updated = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - updated) * self.rate)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1 - tokens) / self.rate


class RateLimit:
    def __init__(self, app: ASGIApp, *, buckets: TokenBuckets, exempt: tuple[str, ...] = ("/v1/healthz",)) -> None:
        self.app = app
        self.buckets = buckets
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/") or path in self.exempt:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(caller_fingerprint(scope))
        if wait:
            retry_after = str(max(1, math.ceil(wait))).encode()
            await send_json(
                send,
                429,
                {"detail": "too many requests; retry later / 请求过于频繁，请稍后重试"},
                [(b"retry-after", retry_after)],
            )
            return
        await self.app(scope, receive, send)


class Idempotency:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, path_limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if key is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if not 1 <= len(key) <= 200:
            await send_json(
                send,
                422,
                {
                    "detail": "invalid request",
                    "errors": [
                        {"field": "Idempotency-Key", "message": "must be 1–200 characters", "type": "value_error"}
                    ],
                },
            )
            return
        try:
            limit = limit_for(scope, self.max_body_bytes, self.path_limits)
            body = await read_body(receive, limit)
        except BodyTooLarge:
            await send_json(send, 413, {"detail": f"request body over {limit} bytes / 请求体过大"})
            return
        engine = scope["app"].state.engine
        record_scope = f"{caller_fingerprint(scope)}:{scope['path']}"
        request_hash = hashlib.sha256(body).hexdigest()
        try:
            record_id = await asyncio.to_thread(self._claim, engine, record_scope, key, request_hash)
            if record_id is None:
                await self._replay(engine, record_scope, key, request_hash, send)
                return
        except DATABASE_UNAVAILABLE as exc:  # nothing claimed or sent yet: the client retries with the same key
            log.warning("idempotency record: database unavailable, answered 503: %s", exc)
            await send_json(
                send, 503, {"detail": DATABASE_BUSY_DETAIL}, [(b"retry-after", str(RETRY_AFTER_S).encode())]
            )
            return
        captured: dict[str, Any] = {"status": 500, "body": [], "content_type": "application/json"}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name == b"content-type":
                        captured["content_type"] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replaying(body, receive), capture)
        finally:
            await asyncio.to_thread(self._complete, engine, record_id, captured)

    @staticmethod
    def _claim(engine: Any, scope: str, key: str, request_hash: str) -> int | None:
        """Insert the pending record; None if another request holds this key already."""
        with Session(engine) as session:
            record = IdempotencyRecord(scope=scope, key=key, request_hash=request_hash)
            session.add(record)
            try:
                session.commit()
            except IntegrityError:
                return None
            return record.id

    @staticmethod
    def _complete(engine: Any, record_id: int | None, captured: dict[str, Any]) -> None:
        """Store the response for replay (or forget a failure), retrying while the database is busy:
        a record left pending would answer every repeat with 409 "in progress"."""
        deadline = time.monotonic() + COMPLETE_RETRY_S
        delay = 0.1
        while True:
            try:
                Idempotency._complete_once(engine, record_id, captured)
                return
            except DATABASE_UNAVAILABLE:
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    @staticmethod
    def _complete_once(engine: Any, record_id: int | None, captured: dict[str, Any]) -> None:
        with Session(engine) as session:
            record = session.get(IdempotencyRecord, record_id)
            if record is None:
                return
            if captured["status"] >= 500:
                session.delete(record)  # a failure is not remembered: the client may retry
            else:
                record.status_code = captured["status"]
                record.body = b"".join(captured["body"])
                record.content_type = captured["content_type"]
                session.add(record)
            session.commit()

    async def _replay(self, engine: Any, scope: str, key: str, request_hash: str, send: Send) -> None:
        deadline = time.monotonic() + REPLAY_WAIT_S
        while True:
            record = await asyncio.to_thread(self._find, engine, scope, key)
            if record is None:  # the first attempt failed and was forgotten
                await send_json(send, 409, {"detail": "the first request with this key failed; retry / 请重试"})
                return
            if record.request_hash != request_hash:
                await send_json(
                    send,
                    422,
                    {
                        "detail": "invalid request",
                        "errors": [
                            {
                                "field": "Idempotency-Key",
                                "type": "value_error",
                                "message": "this key was used with a different request body / 该幂等键已用于不同的请求",
                            }
                        ],
                    },
                )
                return
            if record.status_code is not None:
                body = record.body or b""
                await send(
                    {
                        "type": "http.response.start",
                        "status": record.status_code,
                        "headers": [
                            (b"content-type", record.content_type.encode()),
                            (b"content-length", str(len(body)).encode()),
                            (b"idempotent-replayed", b"true"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            if time.monotonic() > deadline:
                await send_json(send, 409, {"detail": "a request with this key is still in progress / 处理中"})
                return
            await asyncio.sleep(0.05)

    @staticmethod
    def _find(engine: Any, scope: str, key: str) -> IdempotencyRecord | None:
        with Session(engine) as session:
            return session.exec(
                select(IdempotencyRecord).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            ).first()
