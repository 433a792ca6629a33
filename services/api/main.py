"""The api process: REST API v1 (OpenAPI at /docs) and the outbox relay for its events."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.api import observability
from services.api.errors import (
    DATABASE_UNAVAILABLE,
    Problem,
    ValidationProblem,
    database_unavailable_handler,
    http_error_handler,
    validation_error_handler,
)
from services.api.guards import BodySizeLimit, Idempotency, RateLimit, TokenBuckets
from services.api.observability import RequestObservability
from services.api.reconcile import run_reconciler
from services.api.routes import audit as audit_log
from services.api.routes import (
    confidential,
    console,
    health,
    imports,
    matches,
    notifications,
    submissions,
    taxonomy,
    triads,
    webhooks,
)
from services.api.routes import sessions as salon_sessions
from services.api.stream import MatchHub, run_match_feed
from services.runtime import connect_bus, setup_logging
from shared.bus import broker_topics
from shared.db import init_db, make_engine
from shared.errors import BusError
from shared.outbox import OutboxRelay
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)


class BrokerProbe:
    """Checks the broker in the background so /v1/healthz never waits on Kafka."""

    def __init__(self, bootstrap: str, every_s: float = 5.0) -> None:
        self._bootstrap = bootstrap
        self._every_s = every_s
        self._state: dict[str, Any] = {"ok": False, "bootstrap": bootstrap, "detail": "not checked yet"}

    def state(self) -> dict[str, Any]:
        return dict(self._state)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                topics = broker_topics(self._bootstrap)
                self._state = {
                    "ok": True,
                    "bootstrap": self._bootstrap,
                    "topics": sorted(t for t in topics if t.startswith("salon.")),
                }
            except BusError as exc:
                self._state = {"ok": False, "bootstrap": self._bootstrap, "detail": str(exc)}
            stop.wait(self._every_s)


def _run_relay(settings: Settings, engine: Any, stop: threading.Event, holder: dict[str, OutboxRelay]) -> None:
    while not stop.is_set():
        try:
            publisher = connect_bus(settings, "api", stop=stop, wait_s=5)
            break
        except BusError as exc:
            log.warning("api outbox relay waiting for Kafka: %s", exc)
            time.sleep(1)
    else:
        return
    relay = OutboxRelay(engine, publisher, poll_interval_s=settings.outbox_poll_ms / 1000, name="api-relay")
    holder["relay"] = relay
    try:
        relay.run(stop)
    finally:
        publisher.close()


def create_app(settings: Settings | None = None, *, background: bool = True) -> FastAPI:
    """The app; `background=False` runs neither the broker probe nor the outbox relay (tests)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        # A request waits at most db_lock_timeout_ms for a lock, then gets a 503 (errors.py).
        engine = make_engine(settings.resolved_database_url, lock_timeout_ms=settings.db_lock_timeout_ms)
        # The relay and the reconciler have no client waiting: they wait out locks instead.
        background_engine = make_engine(settings.resolved_database_url)
        init_db(engine)
        probe = BrokerProbe(settings.bootstrap)
        holder: dict[str, OutboxRelay] = {}
        app.state.settings = settings
        app.state.engine = engine
        app.state.broker_probe = probe
        app.state.relay_stats = lambda: holder["relay"].published if "relay" in holder else 0
        app.state.match_hub = hub = MatchHub()  # the console's live queue
        threads = []
        if background:
            threads = [
                threading.Thread(target=probe.run, args=(stop,), name="broker-probe", daemon=True),
                threading.Thread(
                    target=_run_relay, args=(settings, background_engine, stop, holder), name="api-relay", daemon=True
                ),
                threading.Thread(
                    target=run_reconciler, args=(background_engine, settings, stop), name="reconciler", daemon=True
                ),
                threading.Thread(target=run_match_feed, args=(settings, hub, stop), name="match-feed", daemon=True),
            ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            engine.dispose()
            background_engine.dispose()

    app = FastAPI(
        title="salon API",
        version="1.0",
        description="Matchmaking for innovation salons (新质生产力会客厅): pitches, mandates, needs, matches.",
        lifespan=lifespan,
        responses={
            400: {"model": Problem, "description": "The body is not parseable JSON"},
            401: {"model": Problem, "description": "Missing, unknown or revoked API key"},
            403: {"model": Problem, "description": "The key's role may not do this"},
            404: {"model": Problem, "description": "Not found, or not the caller's"},
            413: {"model": Problem, "description": "Request body too large"},
            422: {"model": ValidationProblem, "description": "Invalid input; nothing was stored"},
            429: {"model": Problem, "description": "Rate limited; see Retry-After"},
            503: {"model": Problem, "description": "Database busy or away; nothing was stored; see Retry-After"},
        },
    )
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    for database_error in DATABASE_UNAVAILABLE:
        app.add_exception_handler(database_error, database_unavailable_handler)
    # Added last = runs first: rate limit, then the body cap, then idempotent replay.
    body_limits = {imports.IMPORTS_PATH: settings.import_max_bytes}  # files get their own documented cap
    app.add_middleware(Idempotency, max_body_bytes=settings.max_body_bytes, path_limits=body_limits)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, path_limits=body_limits)
    app.add_middleware(
        RateLimit,
        buckets=TokenBuckets(rate=settings.rate_limit_per_minute / 60, burst=settings.rate_limit_burst),
    )
    app.add_middleware(RequestObservability)  # outermost: times and logs refusals too
    app.include_router(observability.router)  # GET /metrics
    for router in submissions.routers:
        app.include_router(router)
    app.include_router(matches.router)
    app.include_router(imports.router)
    app.include_router(confidential.router)
    app.include_router(audit_log.router)
    app.include_router(triads.router)
    app.include_router(taxonomy.router)
    app.include_router(notifications.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(salon_sessions.router)
    app.include_router(console.router)
    app.include_router(console.pages)
    return app


def main() -> None:
    settings = get_settings()
    setup_logging(settings, "api")
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,  # RequestObservability logs each request, with its request id
        log_config=None,  # uvicorn's own lines go through setup_logging's handler (JSON) too
    )


if __name__ == "__main__":
    main()
