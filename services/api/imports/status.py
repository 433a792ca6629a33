"""How far the pipeline has carried a set of imported entities (accepted → embedded → matched)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.models import ENTITY_TABLES, EntityStatus

CHUNK = 500  # ids per IN (…) query: well under every database's parameter limit


def status_counts(engine: Engine, ids: Sequence[str]) -> dict[str, int]:
    """How many of these entities are in each status (ids of any kind)."""
    counts = {status.value: 0 for status in EntityStatus}
    with Session(engine) as session:
        for start in range(0, len(ids), CHUNK):
            chunk = list(ids[start : start + CHUNK])
            for table in ENTITY_TABLES.values():
                query = select(table.status, func.count()).where(col(table.id).in_(chunk)).group_by(table.status)
                for status, count in session.exec(query):
                    counts[status] = counts.get(status, 0) + count
    return counts
