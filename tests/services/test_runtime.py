"""Service runtime: JSON/text logs carrying the event in hand, uncaught errors, the metrics endpoint."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services import runtime
from shared.logs import log_context
from shared.models import ServiceStatus
from shared.settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """setup_logging changes process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, root.name, sys.excepthook, threading.excepthook)
    detail = dict(runtime._process_detail)
    environment = dict(os.environ)
    yield
    for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        if name not in environment:
            os.environ.pop(name, None)
    root.handlers[:], level, root.name, sys.excepthook, threading.excepthook = saved
    root.setLevel(level)
    logging.captureWarnings(False)
    runtime._process_detail.clear()
    runtime._process_detail.update(detail)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_the_service_and_the_event_in_hand(tmp_path: Path, restore_logging):
    stream = io.StringIO()
    runtime.setup_logging(Settings(data_dir=tmp_path), "matcher", stream=stream)
    log = logging.getLogger("services.matcher.handlers")
    with log_context(event_id="ev-1", topic="salon.vectors", partition=2, offset=41, entity_id="p-1"):
        log.info("proposed %d matches", 3, extra={"proposals": 3})
        with log_context(event_id="ev-2"):  # an inner event (one of a batch) wins, then is undone
            log.warning("stale vector")
        try:
            1 / 0  # noqa: B018 - the traceback is what is being logged
        except ZeroDivisionError:
            log.exception("handler failed")
    log.info("idle")

    first, inner, failed, idle = lines(stream)
    assert first["message"] == "proposed 3 matches" and first["level"] == "INFO"
    assert first["service"] == "matcher" and first["logger"] == "services.matcher.handlers"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert (first["event_id"], first["topic"], first["partition"], first["offset"], first["entity_id"]) == (
        "ev-1",
        "salon.vectors",
        2,
        41,
        "p-1",
    )
    assert first["proposals"] == 3
    assert inner["event_id"] == "ev-2" and inner["offset"] == 41
    assert failed["event_id"] == "ev-1" and failed["exc_type"] == "ZeroDivisionError"
    assert failed["exception"].startswith("Traceback") and "1 / 0" in failed["exception"]
    assert "event_id" not in idle


def test_a_replica_names_itself_beside_its_service(tmp_path: Path, restore_logging):
    stream = io.StringIO()
    runtime.setup_logging(Settings(data_dir=tmp_path, instance_id="matcher-2"), "matcher", stream=stream)
    logging.getLogger("x").info("ready")
    (entry,) = lines(stream)
    assert (entry["service"], entry["instance"]) == ("matcher", "matcher-2")


def test_text_format_is_readable_and_keeps_the_context(tmp_path: Path, restore_logging):
    stream = io.StringIO()
    runtime.setup_logging(Settings(data_dir=tmp_path, log_format="text"), "embedder", stream=stream)
    with log_context(event_id="ev-9"):
        logging.getLogger("x").warning("slow batch")
    line = stream.getvalue().strip()
    assert " WARNING " in line and "embedder x: slow batch" in line and "[event_id=ev-9]" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_an_uncaught_error_in_a_thread_is_one_json_line_with_its_traceback(tmp_path: Path, restore_logging):
    stream = io.StringIO()
    runtime.setup_logging(Settings(data_dir=tmp_path), "notifier", stream=stream)

    def crash() -> None:
        raise ValueError("boom")

    thread = threading.Thread(target=crash, name="webhooks")
    thread.start()
    thread.join()
    (entry,) = lines(stream)
    assert entry["level"] == "CRITICAL" and "webhooks" in entry["message"]
    assert entry["exc_type"] == "ValueError" and 'raise ValueError("boom")' in entry["exception"]


def test_the_metrics_port_is_served_and_reported_in_the_heartbeat(
    tmp_path: Path, sqlite_engine: Engine, restore_logging
):
    settings = Settings(data_dir=tmp_path, metrics_port=0)
    port = runtime.serve_metrics(settings, "embedder")
    assert port
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "# TYPE salon_events_handled_total counter" in body
    assert "# TYPE salon_embed_batch_size histogram" in body
    runtime.report_status(sqlite_engine, "embedder", "ready", model="m")
    with Session(sqlite_engine) as session:
        row = session.get(ServiceStatus, "embedder")
        assert row is not None
        assert row.detail == {"metrics_port": port, "metrics_host": "127.0.0.1", "model": "m"}


def test_metrics_can_be_switched_off(tmp_path: Path, restore_logging):
    runtime._process_detail.clear()
    assert runtime.serve_metrics(Settings(data_dir=tmp_path, metrics_port=-1), "matcher") is None
    assert "metrics_port" not in runtime._process_detail
