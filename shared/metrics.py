"""Prometheus metrics of every salon process (`salon_*`; README → Operations lists them).

All metrics live in prometheus_client's default registry, next to its `process_*` and
`python_*` collectors. The api serves them at `GET /metrics`; the workers (embedder,
matcher, notifier) on their own small HTTP server (`serve`). Labels carry only bounded,
non-tenant values — consumer groups, topics, partitions, route templates, entity kinds,
result names — never ids, owners or raw paths.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.errors import SalonError

log = logging.getLogger(__name__)

disable_created_metrics()  # no `*_created` series: they double the output and nobody graphs them

_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class MetricsError(SalonError):
    """The metrics endpoint could not be started."""


# --- the bus (shared/bus.py) -----------------------------------------------------------
EVENTS_CONSUMED = Counter(
    "salon_events_consumed", "Records polled from a topic, duplicates and poison included.", ["group", "topic"]
)
EVENTS_HANDLED = Counter("salon_events_handled", "Events whose handler stored its effect.", ["group", "topic"])
EVENTS_DUPLICATE = Counter("salon_events_duplicate", "Events skipped as already handled (same id).", ["group", "topic"])
EVENTS_FAILED = Counter(
    "salon_events_failed", "Events in a handler attempt that failed (counted per attempt).", ["group", "topic"]
)
EVENTS_DEAD_LETTERED = Counter("salon_events_dead_lettered", "Records sent to <topic>.dlq.", ["group", "topic"])
TOPICS_RECREATED = Counter(
    "salon_topics_recreated",
    "Topics deleted and re-created because the broker kept failing produces UNKNOWN.",
    ["topic"],
)
HANDLER_DURATION = Histogram(
    "salon_handler_duration_seconds", "Time the handler took per polled batch.", ["group"], buckets=_SECONDS_BUCKETS
)
CONSUMER_LAG = Gauge(
    "salon_consumer_lag",
    "End offset minus committed offset of each partition this consumer owns (refreshed every few seconds).",
    ["group", "topic", "partition"],
)

# --- outbox (shared/outbox.py) ---------------------------------------------------------
OUTBOX_PUBLISHED = Counter("salon_outbox_published", "Outbox events this process's relay published.")
OUTBOX_PUBLISH_FAILURES = Counter("salon_outbox_publish_failures", "Relay batches the broker did not acknowledge.")

# --- embedder --------------------------------------------------------------------------
EMBED_BATCH_SIZE = Histogram(
    "salon_embed_batch_size", "Texts per encoder call.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
)
EMBED_DURATION = Histogram(
    "salon_embed_duration_seconds", "Time one encoder call took.", buckets=(*_SECONDS_BUCKETS, 60.0)
)
EMBED_REUSED = Counter(
    "salon_embed_reused",
    "Submissions answered from the embedder's vector cache (re-deliveries, re-drives) instead of the model.",
)

# --- matcher ---------------------------------------------------------------------------
MATCH_PROPOSALS = Counter(
    "salon_matcher_proposals", "Match proposals stored, each queued as match.proposed events to salon.matches."
)

# --- notifier: webhooks ----------------------------------------------------------------
WEBHOOK_RESULTS = ("delivered", "retried", "failed", "disabled", "superseded")
WEBHOOK_ATTEMPTS = Counter(
    "salon_webhook_attempts",
    "Webhook attempts by result: delivered; retried (failed, will retry); failed (failed, schedule spent: "
    "message dead); disabled (failed and the endpoint was disabled); superseded (message changed meanwhile).",
    ["result"],
)
WEBHOOK_DURATION = Histogram(
    "salon_webhook_attempt_duration_seconds",
    "Duration of one webhook attempt by the receiver's status class (error: no HTTP answer).",
    ["status_class"],
    buckets=_SECONDS_BUCKETS,
)

# --- api -------------------------------------------------------------------------------
HTTP_DURATION = Histogram(
    "salon_http_request_duration_seconds",
    "HTTP requests by method, route template and status class (the _count series counts requests).",
    ["method", "route", "status_class"],
    buckets=_SECONDS_BUCKETS,
)
RECONCILER_REDRIVEN = Counter("salon_reconciler_redriven", "Entities the reconciler re-drove (stuck before `matched`).")
NOTIFICATIONS_REDRIVEN = Counter(
    "salon_notifications_redriven", "`match.proposed` events published again because the notifier had not handled them."
)
OUTBOX_PRUNED = Counter("salon_outbox_pruned", "Published outbox rows deleted after SALON_OUTBOX_RETENTION_HOURS.")


class _HasTopic(Protocol):
    @property
    def topic(self) -> str: ...


def count_by_topic(counter: Counter, group: str, items: Iterable[_HasTopic]) -> None:
    """Add one per item to `counter{group, topic}` (a batch may span topics)."""
    per_topic: dict[str, int] = {}
    for item in items:
        per_topic[item.topic] = per_topic.get(item.topic, 0) + 1
    for topic, count in per_topic.items():
        counter.labels(group, topic).inc(count)


def status_class(status_code: int | None) -> str:
    return f"{status_code // 100}xx" if status_code is not None else "error"


def webhook_result(label: str) -> str:
    """The metric's result name for a delivery worker's outcome label."""
    return {"retry": "retried", "dead": "failed", "endpoint_disabled": "disabled"}.get(label, label)


# --- gauges read at scrape time --------------------------------------------------------
Reading = Mapping[tuple[str, ...], float]


class CallbackGauge(Collector):
    """A gauge whose samples come from `read()` at scrape time, so the figure is never stale
    and nothing has to remember to update it. A failing `read` yields no samples."""

    def __init__(self, name: str, documentation: str, read: Callable[[], Reading], labelnames: Sequence[str] = ()):
        self.name, self.documentation, self.labelnames, self._read = name, documentation, tuple(labelnames), read

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        try:
            reading = self._read()
        except Exception:  # a scrape must not fail because the database blinked
            log.debug("could not read %s", self.name, exc_info=True)
            reading = {}
        for labels, value in reading.items():
            family.add_metric(list(labels), value)
        yield family


_watched: dict[tuple[int, str], CallbackGauge] = {}  # (id of the registry, name)
_watched_lock = threading.Lock()


def watch(
    name: str,
    documentation: str,
    read: Callable[[], Reading],
    *,
    labelnames: Sequence[str] = (),
    registry: CollectorRegistry = REGISTRY,
) -> CallbackGauge:
    """Expose a CallbackGauge; a later call with the same name replaces the earlier one."""
    gauge = CallbackGauge(name, documentation, read, labelnames)
    with _watched_lock:
        previous = _watched.pop((id(registry), name), None)
        if previous is not None:
            registry.unregister(previous)
        registry.register(gauge)
        _watched[(id(registry), name)] = gauge
    return gauge


def watch_index_sizes(sizes: Callable[[], Mapping[str, int]]) -> CallbackGauge:
    return watch(
        "salon_index_size",
        "Vectors in the matcher's index of each entity kind.",
        lambda: {(kind,): float(size) for kind, size in sizes().items()},
        labelnames=("kind",),
    )


def watch_outbox_backlog(pending: Callable[[], int]) -> CallbackGauge:
    return watch(
        "salon_outbox_backlog",
        "Outbox events not yet published (the whole table: every relay reports the same figure).",
        lambda: {(): float(pending())},
    )


# --- serving ---------------------------------------------------------------------------
CONTENT_TYPE: str = CONTENT_TYPE_LATEST


def exposition(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The registry in the Prometheus text format (served with `CONTENT_TYPE`)."""
    return generate_latest(registry)


def serve(port: int, host: str = "127.0.0.1", *, registry: CollectorRegistry = REGISTRY) -> int | None:
    """Serve the registry over HTTP on a daemon thread; returns the port, None when off (port -1).

    Port 0 picks a free port, so several processes on one machine never collide; a fixed
    port that is taken falls back to a free one with a warning rather than stopping the
    service (the port in use is in the service's heartbeat either way).
    """
    if port < 0:
        return None
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        if port == 0:
            raise MetricsError(f"cannot serve metrics on {host}: {exc}") from exc
        log.warning("metrics port %d on %s is taken (%s); serving on a free port instead", port, host, exc)
        return serve(0, host, registry=registry)
    actual: int = server.server_port
    log.info("metrics at http://%s:%d/metrics", host, actual)
    return actual
