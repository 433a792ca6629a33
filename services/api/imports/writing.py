"""Validated rows → entity rows + their `*.submitted` events, a batch per transaction.

Each row is written exactly as a single submission writes it (`build_entity`, then the
outbox event from `submission_event`), so the embedder and matcher see identical events.
Batches keep each transaction short: the matcher writes to the same database meanwhile.
A row whose id is already stored (an earlier run of the same import) is skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from services.api.imports.mapping import ValidRow
from services.api.imports.report import ImportedRow
from services.api.intake import _store_confidential as store_confidential  # the single-submission step
from services.api.intake import build_entity, submission_event
from shared.audit import Actor
from shared.confidential.fields import CONFIDENTIAL_PARTS
from shared.errors import SalonError
from shared.events import Topic
from shared.models import ENTITY_TABLES
from shared.outbox import enqueue
from shared.settings import Settings

Progress = Callable[[str, int, int], None]


class ImportWriteError(SalonError):
    """The database refused a batch; batches before it are stored, and re-running the same
    import stores the rest (row ids are deterministic)."""


def _stored_ids(session: Session, rows: Sequence[ValidRow]) -> set[str]:
    by_kind: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_kind[row.kind].append(row.entity_id)
    found: set[str] = set()
    for kind, ids in by_kind.items():
        table = ENTITY_TABLES[kind]
        found.update(session.exec(select(table.id).where(col(table.id).in_(ids))))
    return found


def preview_rows(engine: Engine, rows: Sequence[ValidRow], *, batch_size: int = 500) -> list[ImportedRow]:
    """What writing would do, without writing: which rows are new and which already stored."""
    preview: list[ImportedRow] = []
    with Session(engine) as session:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            stored = _stored_ids(session, batch)
            preview += [
                ImportedRow(row=row.row, kind=row.kind, id=row.entity_id, created=row.entity_id not in stored)
                for row in batch
            ]
    return preview


def _has_confidential_parts(row: ValidRow) -> bool:
    return any(getattr(row.body, part, None) for part in CONFIDENTIAL_PARTS)


def _write_batch(engine: Engine, topic: str, batch: Sequence[ValidRow], actor: Actor) -> list[ImportedRow]:
    with Session(engine, expire_on_commit=False) as session:
        stored = _stored_ids(session, batch)
        new = [
            (row, build_entity(row.kind, row.body, owner=row.owner, entity_id=row.entity_id))
            for row in batch
            if row.entity_id not in stored
        ]
        session.add_all([entity for _, entity in new])
        session.flush()
        for row, entity in new:
            if _has_confidential_parts(row):  # a new pitch without them has nothing to store or compare
                store_confidential(session, entity, row.body, replacing=False, actor=actor)
            enqueue(session, topic, submission_event(entity, "submitted"))
        session.commit()
    return [
        ImportedRow(row=row.row, kind=row.kind, id=row.entity_id, created=row.entity_id not in stored) for row in batch
    ]


def write_rows(
    engine: Engine,
    settings: Settings,
    rows: Sequence[ValidRow],
    *,
    batch_size: int,
    actor: Actor,
    on_progress: Progress | None = None,
) -> list[ImportedRow]:
    topic = settings.topic(Topic.SUBMISSIONS)
    written: list[ImportedRow] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        try:
            written += _write_batch(engine, topic, batch, actor)
        except IntegrityError:
            # Another run of the same import stored some of these ids meanwhile: look again.
            try:
                written += _write_batch(engine, topic, batch, actor)
            except IntegrityError as exc:
                raise ImportWriteError(_stopped_at(start, len(rows), exc)) from exc
        except OperationalError as exc:
            raise ImportWriteError(_stopped_at(start, len(rows), exc)) from exc
        if on_progress is not None:
            on_progress("writing", len(written), len(rows))
    return written


def _stopped_at(start: int, total: int, exc: Exception) -> str:
    return (
        f"the database refused the batch starting at valid row {start + 1} of {total}: {exc.__class__.__name__}; "
        "rows before it are stored — run the same import again to store the rest "
        "/ 数据库写入失败，已写入的批次保留，重新导入同一文件即可补全"
    )
