"""The api's own observability: `GET /metrics` and one log line and one histogram sample per request.

`/metrics` needs no API key and is not rate limited (the limiter covers `/v1/` only): what
it shows is aggregate — route templates, status classes, topics — never a tenant's ids or
data. Public deployments keep it off the public ingress and let Prometheus scrape the pod.

Requests are labelled by route *template* (`/v1/pitches/{entity_id}`), never the raw path,
so the series stay few and no id or token reaches a metric or a log line.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
import weakref
from typing import Any

import fastapi.routing
from fastapi import APIRouter, Response
from starlette.datastructures import MutableHeaders
from starlette.routing import compile_path

from services.api.guards import ASGIApp, Message, Receive, Scope, Send, header
from shared import metrics
from shared.logs import log_context

log = logging.getLogger("salon.http")

router = APIRouter(include_in_schema=False)

UNMATCHED = "unmatched"  # 404s: their raw paths would make one series per typo
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_QUIET_ROUTES = frozenset({"/metrics", "/v1/healthz"})  # scraped and probed all day: DEBUG, not INFO
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@router.get("/metrics")
def prometheus_metrics() -> Response:
    """This process's metrics in the Prometheus text format."""
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)


def route_template(scope: Scope) -> str:
    """The template of the route that served (or would serve) this request."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    # Answered before routing (429 from the limiter, 413 from the body cap): match it here.
    app = scope.get("app")
    if app is None:
        return UNMATCHED
    if app not in _templates:
        _templates[app] = _route_table(app)
    requested = scope.get("path", "")
    return next((template for regex, template in _templates[app] if regex.match(requested)), UNMATCHED)


_templates: weakref.WeakKeyDictionary[Any, list[tuple[re.Pattern[str], str]]] = weakref.WeakKeyDictionary()


def _route_table(app: Any) -> list[tuple[re.Pattern[str], str]]:
    """(regex, template) of every route in routing order, included routers flattened."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)  # newer FastAPI nests included routers
    routes = flatten(app.routes) if flatten is not None else app.routes
    table = []
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str) and path:
            regex, template, _convertors = compile_path(path)
            table.append((regex, template))
    return table


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-ID` when it is a sane token, else a new one."""
    given = header(scope, b"x-request-id")
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestObservability:
    """Outermost middleware: a request id for the logs (echoed as `X-Request-ID`), the
    `salon_http_request_duration_seconds` sample and one log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        status = 500  # what the server answers if the app raises before responding
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                status = 500
                log.exception("unhandled error in %s %s", scope["method"], route_template(scope))
                raise
            finally:
                self._observe(scope, status, time.perf_counter() - started)

    @staticmethod
    def _observe(scope: Scope, status: int, elapsed_s: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = route_template(scope)
        metrics.HTTP_DURATION.labels(method, route, metrics.status_class(status)).observe(elapsed_s)
        log.log(
            logging.DEBUG if route in _QUIET_ROUTES else logging.INFO,
            "%s %s %d %.1f ms",
            method,
            route,
            status,
            elapsed_s * 1000,
            extra={"method": method, "route": route, "status": status, "duration_ms": round(elapsed_s * 1000, 1)},
        )
