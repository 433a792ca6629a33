"""The matcher's derived state: per entity kind, a FAISS index and a BM25 index.

Both are keyed by `EntityVector.id` (our int64 FAISS id). They are rebuilt from the
database on start (the FAISS part from a snapshot when it is still current), so they can
always be thrown away.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import cast

import numpy as np
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from embeddings import BM25Index, SnapshotError, VectorIndex
from shared.events import ENTITY_KINDS
from shared.models import ENTITY_TABLES, Entity, EntityVector, entity_text

log = logging.getLogger(__name__)


@dataclass
class KindIndex:
    """One entity kind's retrieval structures, all keyed by FAISS id."""

    kind: str
    vectors: VectorIndex
    lexical: BM25Index = field(default_factory=BM25Index)
    entity_of: dict[int, str] = field(default_factory=dict)  # FAISS id → entity id
    by_sector: dict[str, set[int]] = field(default_factory=dict)  # taxonomy code → FAISS ids
    _codes_of: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def add_metadata(self, vector_id: int, entity: Entity) -> None:
        """Everything but the vector: text for BM25, the entity id, its sector codes."""
        self.lexical.add(vector_id, entity_text(entity))
        self.entity_of[vector_id] = entity.id
        for code in self._codes_of.pop(vector_id, ()):
            self.by_sector.get(code, set()).discard(vector_id)
        self._codes_of[vector_id] = tuple(entity.sector_codes)
        for code in entity.sector_codes:
            self.by_sector.setdefault(code, set()).add(vector_id)

    def sharing_sectors(self, codes: list[str], limit: int) -> list[int]:
        """Ids sharing a sector code with `codes`, most codes in common first."""
        counts: dict[int, int] = {}
        for code in codes:
            for vector_id in self.by_sector.get(code, ()):
                counts[vector_id] = counts.get(vector_id, 0) + 1
        return sorted(counts, key=lambda vector_id: (-counts[vector_id], vector_id))[:limit]


class MatcherState:
    def __init__(self, dim: int, snapshot_dir: Path, *, snapshot_every: int = 200) -> None:
        self.dim = dim
        self.snapshot_dir = snapshot_dir
        self.snapshot_every = snapshot_every
        self.kinds: dict[str, KindIndex] = {kind: KindIndex(kind, VectorIndex(dim)) for kind in ENTITY_KINDS}
        self._adds_since_snapshot = 0
        self._lock = threading.Lock()

    def sizes(self) -> dict[str, int]:
        return {kind: len(index.vectors) for kind, index in self.kinds.items()}

    def add(self, entity: Entity, vector_id: int, vector: np.ndarray) -> None:
        index = self.kinds[entity.kind]
        with self._lock:
            index.vectors.add([vector_id], vector.reshape(1, -1))
            index.add_metadata(vector_id, entity)
            self._adds_since_snapshot += 1
            due = self._adds_since_snapshot >= self.snapshot_every
        if due:
            self.snapshot()

    def snapshot(self) -> None:
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for kind, index in self.kinds.items():
                index.vectors.save(self.snapshot_dir / f"{kind}.faiss", meta={"count": len(index.vectors)})
            self._adds_since_snapshot = 0

    def rebuild(self, engine: Engine) -> dict[str, str]:
        """Load every stored vector and text; returns how each kind's FAISS index was obtained."""
        how: dict[str, str] = {}
        with Session(engine) as session:
            for kind in ENTITY_KINDS:
                table = ENTITY_TABLES[kind]
                rows = session.exec(
                    select(EntityVector, table)
                    .join(table, table.id == EntityVector.entity_id)  # type: ignore[arg-type]
                    .where(EntityVector.kind == kind)
                ).all()
                index = KindIndex(kind, VectorIndex(self.dim))
                stored_ids = {vector_row.id for vector_row, _ in rows if vector_row.id is not None}
                snapshot = self._load_snapshot(kind, stored_ids, session)
                if snapshot is not None:
                    index.vectors = snapshot
                    how[kind] = "snapshot"
                else:
                    index.vectors = VectorIndex.rebuild(
                        self.dim,
                        (
                            (vector_row.id, np.frombuffer(vector_row.vector, dtype=np.float32))
                            for vector_row, _ in rows
                            if vector_row.id is not None and vector_row.dim == self.dim
                        ),
                    )
                    how[kind] = "database"
                for vector_row, row in rows:
                    assert vector_row.id is not None
                    index.add_metadata(vector_row.id, cast(Entity, row))
                self.kinds[kind] = index
        log.info("indices rebuilt: %s sizes %s", how, self.sizes())
        return how

    def _load_snapshot(self, kind: str, stored_ids: set[int], session: Session) -> VectorIndex | None:
        path = self.snapshot_dir / f"{kind}.faiss"
        if not path.exists():
            return None
        try:
            snapshot = VectorIndex.load(path, expected_dim=self.dim)
        except SnapshotError as exc:
            log.warning("snapshot %s unusable, rebuilding from the database: %s", path, exc)
            return None
        # A snapshot is current only if it holds exactly the stored ids; vectors updated in
        # place since then are caught by comparing the newest update time.
        if set(int(i) for i in snapshot.ids()) != stored_ids:
            return None
        newest = session.exec(select(func.max(EntityVector.updated_at)).where(EntityVector.kind == kind)).one()
        if newest is not None and path.stat().st_mtime < newest.replace(tzinfo=newest.tzinfo or UTC).timestamp():
            return None
        return snapshot
