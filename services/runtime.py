"""What every service process shares: logging, a stop signal, heartbeats, bus wiring."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared import faults, metrics
from shared.bus import Consumer, Publisher, ensure_topics
from shared.errors import BusError
from shared.events import Topic
from shared.logs import JsonFormatter, TextFormatter
from shared.models import ServiceStatus, utcnow
from shared.settings import Settings

log = logging.getLogger(__name__)


# Added to every status row this process writes (e.g. the port its metrics are served on).
_process_detail: dict[str, Any] = {}


def setup_logging(settings: Settings, service: str, *, stream: TextIO | None = None) -> None:
    """Root logging for a service process: one JSON object per line (`SALON_LOG_FORMAT=json`,
    the default) or readable text, on stderr; uncaught exceptions are logged with their traceback."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.log_format == "json":
        # Progress bars (loading the model) would break the one-object-per-line stream. Read
        # when huggingface_hub / tqdm are imported: both must be set before the model loads.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    formatter = JsonFormatter if settings.log_format == "json" else TextFormatter
    handler.setFormatter(formatter(service, instance=settings.instance_name(service)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("jieba").setLevel(logging.WARNING)
    logging.getLogger().name = service
    logging.captureWarnings(True)
    crash_log = logging.getLogger(service)

    def _uncaught(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, error, tb)
            return
        crash_log.critical("uncaught %s, exiting", kind.__name__, exc_info=(kind, error, tb))

    def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
        if issubclass(args.exc_type, SystemExit) or args.exc_value is None:
            return
        name = args.thread.name if args.thread else "?"
        error = (args.exc_type, args.exc_value, args.exc_traceback)
        crash_log.critical("uncaught %s in thread %s", args.exc_type.__name__, name, exc_info=error)

    sys.excepthook = _uncaught
    threading.excepthook = _uncaught_in_thread
    faults.configure(settings.fault_inject, service)  # inert unless a fault test armed a crash point


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM/SIGINT, so loops finish their batch and exit cleanly."""
    stop = threading.Event()

    def _handler(signum: int, _frame: Any) -> None:
        log.info("received signal %s, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return stop


def report_status(engine: Engine, name: str, state: str, **detail: Any) -> None:
    """Upsert this service's heartbeat row (best effort: never kills the service)."""
    try:
        with Session(engine) as session:
            row = session.get(ServiceStatus, name) or ServiceStatus(name=name, state=state)
            row.state = state
            row.detail = {**_process_detail, **detail}
            row.updated_at = utcnow()
            session.add(row)
            session.commit()
    except Exception:
        log.debug("could not write status for %s", name, exc_info=True)


def serve_metrics(settings: Settings, service: str) -> int | None:
    """Serve this process's Prometheus metrics (`SALON_METRICS_PORT`; 0 = a free port, -1 = off).

    The port in use goes into every status row the process writes (`metrics_port`), so
    whoever runs several processes on one machine can find each one's endpoint.
    """
    port = metrics.serve(settings.metrics_port, settings.metrics_host)
    if port is not None:
        _process_detail["metrics_port"] = port
        _process_detail["metrics_host"] = settings.metrics_host
    log.debug("%s metrics port: %s", service, port)
    return port


def heartbeat(
    engine: Engine, name: str, stop: threading.Event, detail: Callable[[], dict[str, Any]], every_s: float = 2.0
) -> threading.Thread:
    def _beat() -> None:
        while not stop.wait(every_s):
            report_status(engine, name, "ready", **detail())

    thread = threading.Thread(target=_beat, name=f"{name}-heartbeat", daemon=True)
    thread.start()
    return thread


def all_topics(settings: Settings) -> list[str]:
    return [settings.topic(topic.value) for topic in Topic]


def connect_bus(
    settings: Settings, client_id: str, *, stop: threading.Event | None = None, wait_s: float = 60.0
) -> Publisher:
    """Create the topics and a publisher, waiting for the broker to come up."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            topics = all_topics(settings)
            ensure_topics(settings.bootstrap, topics, partitions=settings.kafka_topic_partitions)
            return Publisher(
                settings.bootstrap,
                client_id=client_id,
                topics=topics,
                partitions=settings.kafka_topic_partitions,
                repair_after=settings.kafka_repair_topics_after,
            )
        except BusError as exc:
            if time.monotonic() > deadline or (stop is not None and stop.is_set()):
                raise
            log.warning("waiting for Kafka at %s: %s", settings.bootstrap, exc)
            time.sleep(1.0)


def make_consumer(
    settings: Settings, topic: Topic, *, group_id: str, publisher: Publisher, client_id: str | None = None
) -> Consumer:
    return Consumer(
        settings.bootstrap,
        [settings.topic(topic.value)],
        group_id=group_id,
        publisher=publisher,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        client_id=client_id or group_id,
    )


def assigned_partitions(consumer: Consumer) -> list[str]:
    """The consumer's partitions as `topic:partition`, for status rows (read from the heartbeat
    thread while the loop may be rebalancing: a set that changed under us is read again)."""
    for _ in range(3):
        try:
            return sorted(f"{tp.topic}:{tp.partition}" for tp in consumer.assignment)
        except RuntimeError:
            continue
    return []
