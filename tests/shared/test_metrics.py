"""Metrics: the registry helpers, the workers' endpoint, and the bus's counters and lag on a real broker."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import httpx
import pytest
from kafka.structs import TopicPartition
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from shared import metrics
from shared.bus import Consumer, Publisher, RetryableError
from shared.logs import current_context
from tests.shared.test_bus import FAST_GROUP, submission


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_webhook_result_names_and_status_classes():
    assert [metrics.webhook_result(label) for label in ("delivered", "retry", "dead", "endpoint_disabled")] == [
        "delivered",
        "retried",
        "failed",
        "disabled",
    ]
    assert set(map(metrics.webhook_result, ("delivered", "retry", "dead", "endpoint_disabled", "superseded"))) == set(
        metrics.WEBHOOK_RESULTS
    )
    assert [metrics.status_class(code) for code in (200, 302, 429, 503, None)] == ["2xx", "3xx", "4xx", "5xx", "error"]


def test_a_callback_gauge_is_read_at_scrape_time_and_survives_a_failing_read():
    registry = CollectorRegistry()
    sizes = {"pitch": 2, "mandate": 0}

    def read() -> metrics.Reading:
        return {(kind,): float(size) for kind, size in sizes.items()}

    metrics.watch("salon_test_sizes", "sizes", read, labelnames=("kind",), registry=registry)
    assert registry.get_sample_value("salon_test_sizes", {"kind": "pitch"}) == 2
    sizes["pitch"] = 5  # nothing updates the gauge: the next scrape reads the new figure
    assert registry.get_sample_value("salon_test_sizes", {"kind": "pitch"}) == 5

    def broken() -> metrics.Reading:
        raise RuntimeError("database away")

    # The same name again replaces the first one (a restarted relay, a second state), and a
    # failing read yields no samples instead of failing the whole scrape.
    metrics.watch("salon_test_sizes", "sizes", broken, labelnames=("kind",), registry=registry)
    assert registry.get_sample_value("salon_test_sizes", {"kind": "pitch"}) is None
    assert b"salon_test_sizes" in metrics.exposition(registry)


def test_the_worker_endpoint_serves_the_registry_on_a_free_or_fallback_port():
    registry = CollectorRegistry()
    metrics.watch("salon_test_up", "up", lambda: {(): 1.0}, registry=registry)
    port = metrics.serve(0, registry=registry)
    assert port and port > 0
    assert scrape(f"http://127.0.0.1:{port}/metrics")[("salon_test_up", ())] == 1.0
    assert metrics.serve(-1, registry=registry) is None
    with socket.socket() as taken:  # a fixed port in use: a free one instead, not a dead service
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        fallback = metrics.serve(busy, registry=registry)
        assert fallback not in (None, busy)
        assert scrape(f"http://127.0.0.1:{fallback}/")[("salon_test_up", ())] == 1.0


@pytest.fixture
def consumer(broker: str, topic_factory, publisher: Publisher):
    topic = topic_factory()
    made = Consumer(
        broker, [topic], group_id=f"g-{uuid.uuid4().hex[:8]}", publisher=publisher, lag_every_s=3600, **FAST_GROUP
    )  # type: ignore[arg-type]
    yield made, topic
    made.close()


def test_consumer_counters_lag_and_log_context_move_on_the_real_broker(consumer, publisher: Publisher, caplog):
    consumer, topic = consumer
    group = consumer.group_id
    events = [submission(i) for i in range(5)]
    publisher.publish_many([(topic, event) for event in events])
    publisher.publish_many([(topic, events[0])])  # a redelivery: the same event id again
    publisher.publish_raw([(topic, b"k", b"not json", [])])  # poison
    tp = TopicPartition(topic, 0)

    # Only part of the topic consumed: lag is what is left, measured against the broker.
    first = 0
    deadline = time.monotonic() + 30
    while not first and time.monotonic() < deadline:
        first = consumer.process_once(lambda batch: None, max_batch=2, max_wait_ms=500)
    assert 0 < first < 7
    assert consumer.refresh_lag() == {tp: 7 - first}
    assert sample("salon_consumer_lag", group=group, topic=topic, partition="0") == 7 - first
    assert consumer.stats["lag"] == 7 - first

    # The rest, through the per-event loop: one failed attempt, and each handler call sees its
    # event in the log context.
    seen: dict[str, str] = {}
    failed_once: list[bool] = []
    stop = threading.Event()

    def per_event(envelope):
        if not failed_once:
            failed_once.append(True)
            raise RetryableError("database busy")
        seen[envelope.id] = current_context()["event_id"]
        if len(seen) == 5 - first:
            stop.set()

    caplog.set_level("INFO", logger="shared.bus")
    runner = threading.Thread(target=consumer.run, args=(per_event,), kwargs={"stop": stop, "max_wait_ms": 300})
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert seen and all(event_id == logged for event_id, logged in seen.items())
    assert consumer.refresh_lag() == {tp: 0}
    assert sample("salon_consumer_lag", group=group, topic=topic, partition="0") == 0

    assert sample("salon_events_consumed_total", group=group, topic=topic) == 7
    assert sample("salon_events_handled_total", group=group, topic=topic) == 5
    assert sample("salon_events_duplicate_total", group=group, topic=topic) == 1
    assert sample("salon_events_dead_lettered_total", group=group, topic=topic) == 1
    assert sample("salon_events_failed_total", group=group, topic=topic) >= 1
    assert sample("salon_handler_duration_seconds_count", group=group) >= 2

    # The summary line names the events it handled (fields, not just text).
    handled = [r for r in caplog.records if r.getMessage().startswith("handled ") and getattr(r, "topic", "") == topic]
    named = {getattr(r, "event_id", None) for r in handled} | {i for r in handled for i in getattr(r, "event_ids", [])}
    assert set(seen) <= named
    dead = [
        r for r in caplog.records if r.getMessage().startswith("dead-lettered") and getattr(r, "topic", "") == topic
    ]
    assert dead and dead[0].exc_info is not None and dead[0].offset == 6  # type: ignore[attr-defined]
