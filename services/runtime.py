"""What every service process shares: logging, a stop signal, heartbeats, bus wiring."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.bus import Consumer, Publisher, ensure_topics
from shared.errors import BusError
from shared.events import Topic
from shared.models import ServiceStatus, utcnow
from shared.settings import Settings

log = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(settings: Settings, service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("jieba").setLevel(logging.WARNING)
    logging.getLogger().name = service


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
            row.detail = detail
            row.updated_at = utcnow()
            session.add(row)
            session.commit()
    except Exception:
        log.debug("could not write status for %s", name, exc_info=True)


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
            ensure_topics(settings.bootstrap, all_topics(settings), partitions=settings.kafka_topic_partitions)
            return Publisher(settings.bootstrap, client_id=client_id)
        except BusError as exc:
            if time.monotonic() > deadline or (stop is not None and stop.is_set()):
                raise
            log.warning("waiting for Kafka at %s: %s", settings.bootstrap, exc)
            time.sleep(1.0)


def make_consumer(settings: Settings, topic: Topic, *, group_id: str, publisher: Publisher) -> Consumer:
    return Consumer(
        settings.bootstrap,
        [settings.topic(topic.value)],
        group_id=group_id,
        publisher=publisher,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        client_id=group_id,
    )
