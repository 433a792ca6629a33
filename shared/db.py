"""Engine and sessions: SQLite file by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, SQLModel, create_engine

from shared import (
    audit,  # noqa: F401 - and the audit log
    models,  # noqa: F401 - registers every table on SQLModel.metadata
)
from shared.bus import RetryableError
from shared.confidential import models as confidential_models  # noqa: F401 - and the confidential tables
from shared.models import ProcessedEvent
from shared.sessions import models as session_models  # noqa: F401 - and the session tables
from shared.webhooks import models as webhook_models  # noqa: F401 - and the webhook tables


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the driver we ship), not psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


DEFAULT_LOCK_TIMEOUT_MS = 30000  # background workers wait long for a lock; they retry anyway


def make_engine(url: str, *, lock_timeout_ms: int | None = None, **kwargs: Any) -> Engine:
    """An engine for `url`. `lock_timeout_ms` bounds how long a statement waits for a lock
    (SQLite busy timeout, PostgreSQL `lock_timeout`); past it the statement fails with an
    OperationalError, which the API answers with 503 and workers retry. None: 30 s on
    SQLite, the server's setting on PostgreSQL."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        busy_ms = lock_timeout_ms or DEFAULT_LOCK_TIMEOUT_MS
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_ms / 1000}, **kwargs)
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_ms=busy_ms))
        return engine
    connect_args: dict[str, Any] = {"connect_timeout": 10}
    if lock_timeout_ms is not None:
        connect_args["options"] = f"-c lock_timeout={int(lock_timeout_ms)}"
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=connect_args, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_ms: int = DEFAULT_LOCK_TIMEOUT_MS) -> None:
    # WAL lets the api, matcher and notifier processes read while one writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def init_db(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)


def database_ok(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on error; a database that is
    away or locked surfaces as RetryableError so consumers retry instead of dead-lettering."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise RetryableError(f"database unavailable: {exc.orig}") from exc
        except BaseException:
            session.rollback()
            raise


def already_handled(session: Session, consumer: str, event_id: str) -> bool:
    return session.get(ProcessedEvent, (consumer, event_id)) is not None


def claim_event(session: Session, consumer: str, event_id: str) -> bool:
    """Record that `consumer` handles `event_id` in this transaction; False if it already did.

    A concurrent duplicate that slips past the check fails the transaction's commit on the
    primary key, and the retry then sees the row and skips.
    """
    if already_handled(session, consumer, event_id):
        return False
    session.add(ProcessedEvent(consumer=consumer, event_id=event_id))
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return False
    return True
