"""Shared fixtures: a real Tansu broker, topic and database factories."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.launcher import ManagedProcess, free_port, port_open, tansu_binary
from shared.bus import Publisher, ensure_topics
from shared.db import init_db, make_engine

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PG_ADMIN_URL = os.environ.get("SALON_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu) for the whole test session; yields bootstrap."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = ManagedProcess(
        "broker",
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        tmp_path_factory.mktemp("broker") / "broker.log",
    )
    process.start()
    import time

    deadline = time.monotonic() + 20
    while not port_open("127.0.0.1", port):
        assert process.alive and time.monotonic() < deadline, process.tail()
        time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    process.kill()


@pytest.fixture
def topic_factory(broker: str) -> Callable[..., str]:
    """Creates a fresh topic (and its .dlq) per call."""

    def make(partitions: int = 1) -> str:
        name = f"test.{uuid.uuid4().hex[:10]}"
        ensure_topics(broker, [name], partitions=partitions)
        return name

    return make


@pytest.fixture
def publisher(broker: str) -> Iterator[Publisher]:
    pub = Publisher(broker, client_id="tests")
    yield pub
    pub.close()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'salon.db'}")
    init_db(engine)
    yield engine
    engine.dispose()


def _pg_available() -> bool:
    try:
        engine = make_engine(PG_ADMIN_URL)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means: no PostgreSQL here
        return False


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "salon_test") -> Iterator[str]:
    """The URL of a new PostgreSQL database, dropped on exit; skips (fails on CI) without PostgreSQL."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
        pytest.skip("PostgreSQL not reachable")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The same test on SQLite and on the local PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'salon.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = make_engine(url)
    init_db(engine)
    yield engine
    engine.dispose()
