"""The worker probe that Kubernetes and compose run: heartbeat rows in a real database, topics
on the real (Tansu) broker."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from services import probe
from services.runtime import all_topics, report_status
from shared.bus import ensure_topics
from shared.db import init_db, make_engine
from shared.models import ServiceStatus, utcnow
from shared.settings import Settings, get_settings


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Settings]]:
    """Set SALON_* for the probe (it reads settings like the worker it checks)."""

    def apply(**env: str) -> Settings:
        monkeypatch.setenv("SALON_DATA_DIR", str(tmp_path))
        for key, value in env.items():
            monkeypatch.setenv(f"SALON_{key.upper()}", value)
        get_settings.cache_clear()
        return get_settings()

    yield apply
    get_settings.cache_clear()


def beat(settings: Settings, name: str, state: str = "ready", *, age_s: float = 0) -> None:
    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    report_status(engine, name, state)
    if age_s:
        with Session(engine) as session:
            row = session.get(ServiceStatus, name)
            assert row is not None
            row.updated_at = utcnow() - timedelta(seconds=age_s)
            session.add(row)
            session.commit()
    engine.dispose()


def test_a_ready_fresh_worker_passes_and_anything_else_fails(configure, capsys):
    settings = configure()
    init_db(make_engine(settings.resolved_database_url))
    assert probe.main(["matcher"]) == 1
    assert "no heartbeat yet" in capsys.readouterr().err

    beat(settings, "matcher", "rebuilding")
    assert probe.main(["matcher"]) == 1
    assert "state rebuilding" in capsys.readouterr().err

    beat(settings, "matcher")
    assert probe.main(["matcher"]) == 0
    assert "matcher: ready" in capsys.readouterr().out

    beat(settings, "matcher", age_s=40)
    assert probe.main(["matcher"]) == 1, "a heartbeat that stopped fails readiness"
    assert probe.main(["matcher", "--max-age", "60"]) == 0, "… and liveness only later"


def test_each_replica_checks_its_own_row(configure):
    settings = configure(instance_id="matcher-{hostname}")
    beat(settings, "matcher")  # another replica's (or a single matcher's) row
    assert probe.main(["matcher"]) == 1
    beat(settings, f"matcher-{socket.gethostname()}")
    assert probe.main(["matcher"]) == 0


def test_an_unreachable_database_fails(configure, capsys):
    configure(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert probe.main(["embedder"]) == 1
    assert "database unreachable" in capsys.readouterr().err


def test_topics_pass_once_every_topic_and_dead_letter_topic_exists(configure, broker, capsys):
    settings = configure(kafka_bootstrap=broker, topic_prefix=f"probe{uuid.uuid4().hex[:8]}")
    assert probe.main(["topics"]) == 1
    assert f"{settings.topic_prefix}.vectors.dlq" in capsys.readouterr().err
    ensure_topics(broker, all_topics(settings), partitions=2)
    assert probe.main(["topics"]) == 0
