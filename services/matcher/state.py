"""The matcher's derived state: per entity kind, a FAISS index and a BM25 index.

Both are keyed by `EntityVector.id` (our int64 FAISS id). They are rebuilt from the
database on start, so they can always be thrown away. Snapshots make a restart fast:

* the FAISS index, used when it holds exactly the stored ids and is newer than every
  stored vector (else rebuilt from the stored vectors);
* the BM25 documents' term counts (`<kind>.bm25.npz`), each with a fingerprint of the text
  it was tokenised from: a document whose text is unchanged reuses its terms, any other is
  tokenised again (jieba is what makes a cold rebuild slow: ~3 ms per text). A stale file
  is therefore still useful, so it is rewritten only after many new documents;
* with it, the glossary concepts of the texts ranking has met (`concepts.npz`, keyed by
  the same fingerprints; services/matcher/concepts.py).

Besides the indices, the state keeps counterpart entities between events (`EntityCache`,
checked against the database on every use); the rebuild fills it with the rows it reads.

Snapshots during operation are written by a background thread, off the matching path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, cast

import numpy as np
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from embeddings import BM25Index, SnapshotError, VectorIndex, tokenize
from embeddings.index import IndexConfig, save_npz
from embeddings.lexical import text_fingerprint, tokenizer_signature
from services.matcher import concepts
from services.matcher.entities import EntityCache
from shared.events import ENTITY_KINDS
from shared.models import ENTITY_TABLES, Entity, EntityVector, entity_text

log = logging.getLogger(__name__)

LEXICAL_SNAPSHOT_FORMAT = 1
CONCEPTS_SNAPSHOT = "concepts.npz"  # the glossary concepts of the indexed texts (services/matcher/concepts.py)
KnownTerms = tuple[int, Mapping[str, int]]  # (text fingerprint, term counts) from a snapshot


@dataclass
class KindIndex:
    """One entity kind's retrieval structures, all keyed by FAISS id."""

    kind: str
    vectors: VectorIndex
    lexical: BM25Index = field(default_factory=BM25Index)
    entity_of: dict[int, str] = field(default_factory=dict)  # FAISS id → entity id
    by_sector: dict[str, set[int]] = field(default_factory=dict)  # taxonomy code → FAISS ids
    fingerprints: dict[int, int] = field(default_factory=dict)  # FAISS id → fingerprint of its text
    _codes_of: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def add_metadata(
        self, vector_id: int, entity: Entity, *, known_terms: Mapping[int, KnownTerms] | None = None
    ) -> bool:
        """Everything but the vector: text for BM25, the entity id, its sector codes.

        `known_terms` maps ids to (fingerprint, term counts) from a snapshot; they are used
        when the fingerprint matches the entity's text. Returns True if the text was tokenised.
        """
        text = entity_text(entity)
        fingerprint = text_fingerprint(text)
        known = known_terms.get(vector_id) if known_terms else None
        if known is not None and known[0] == fingerprint:
            self.lexical.add_terms(vector_id, known[1])
        else:
            self.lexical.add(vector_id, text)
        self.fingerprints[vector_id] = fingerprint
        self.entity_of[vector_id] = entity.id
        for code in self._codes_of.pop(vector_id, ()):
            self.by_sector.get(code, set()).discard(vector_id)
        self._codes_of[vector_id] = tuple(entity.sector_codes)
        for code in entity.sector_codes:
            self.by_sector.setdefault(code, set()).add(vector_id)
        return known is None or known[0] != fingerprint

    def sharing_sectors(self, codes: list[str], limit: int) -> list[int]:
        """Ids sharing a sector code with `codes`, most codes in common first (then by id)."""
        if limit <= 0:
            return []
        members = [np.fromiter(self.by_sector[code], dtype=np.int64) for code in codes if self.by_sector.get(code)]
        if not members:
            return []
        ids, counts = np.unique(np.concatenate(members), return_counts=True)  # ids ascending
        # Stable sort on -count keeps ascending ids within a count: (-count, id) order.
        order = np.argsort(-counts, kind="stable")[:limit]
        return [int(vector_id) for vector_id in ids[order]]


class MatcherState:
    def __init__(
        self,
        dim: int,
        snapshot_dir: Path,
        *,
        snapshot_every: int = 200,
        index_config: IndexConfig | None = None,
        entity_cache_size: int = 50_000,
    ) -> None:
        self.dim = dim
        self.index_config = index_config or IndexConfig()  # exact vs IVF by size (SALON_INDEX_*)
        self.snapshot_dir = snapshot_dir
        self.snapshot_every = snapshot_every
        self.kinds: dict[str, KindIndex] = {
            kind: KindIndex(kind, VectorIndex(dim, config=self.index_config)) for kind in ENTITY_KINDS
        }
        self.rebuild_stats: dict[str, Any] = {}
        self.entities = EntityCache(entity_cache_size)  # counterparts between events (checked on use)
        # entity id → version of the vector this process added; lets a replica's index feed skip
        # vectors it already holds (its own matches) instead of re-reading them from the database.
        self.vector_versions: dict[str, int] = {}
        self._adds_since_snapshot = 0
        self._adds_since_lexical_snapshot = 0
        self._lock = threading.Lock()
        self._snapshot_lock = threading.Lock()  # one snapshot writer at a time
        self._background: threading.Thread | None = None

    def sizes(self) -> dict[str, int]:
        return {kind: len(index.vectors) for kind, index in self.kinds.items()}

    def add(self, entity: Entity, vector_id: int, vector: np.ndarray, *, version: int | None = None) -> None:
        """Index the vector of `entity`; `version` is the vector's (default: the entity's).

        A version already held (or an older one) is skipped: a replica's index feed often learns
        the entity being matched just before its handler adds it, and tokenising twice is waste.
        """
        version = version if version is not None else entity.version
        index = self.kinds[entity.kind]
        with self._lock:
            if self.vector_versions.get(entity.id, 0) >= version:
                return
            index.vectors.add([vector_id], vector.reshape(1, -1))
            index.add_metadata(vector_id, entity)
            self.vector_versions[entity.id] = version
            self._adds_since_snapshot += 1
            self._adds_since_lexical_snapshot += 1
            due = self._adds_since_snapshot >= self.snapshot_every
            busy = self._background is not None and self._background.is_alive()
            if due and not busy:
                lexical = self._adds_since_lexical_snapshot >= max(self.snapshot_every, self._documents() // 10)
                self._background = threading.Thread(
                    target=self._snapshot_quietly, kwargs={"lexical": lexical}, name="matcher-snapshot", daemon=True
                )
                self._background.start()

    def _documents(self) -> int:
        return sum(len(index.lexical) for index in self.kinds.values())

    def _snapshot_quietly(self, *, lexical: bool) -> None:
        try:
            self.snapshot(lexical=lexical)
        except Exception:  # a snapshot is a cache: failing to write one must not stop matching
            log.exception("index snapshot failed")

    def wait_for_snapshots(self, timeout: float = 60.0) -> None:
        background = self._background
        if background is not None:
            background.join(timeout)

    def snapshot(self, *, lexical: bool = True) -> None:
        """Write the FAISS snapshots (and, with `lexical`, the BM25 terms and the concepts) of every kind."""
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        with self._snapshot_lock:
            with self._lock:
                self._adds_since_snapshot = 0
                if lexical:
                    self._adds_since_lexical_snapshot = 0
                # References taken under the lock; serialising happens outside it.
                parts = [
                    (kind, index.vectors, index.lexical.documents() if lexical else None, dict(index.fingerprints))
                    for kind, index in self.kinds.items()
                ]
            for kind, vectors, documents, fingerprints in parts:
                vectors.save(self.snapshot_dir / f"{kind}.faiss", meta={"count": len(vectors)})
                if documents is not None:
                    save_lexical(self.snapshot_dir / f"{kind}.bm25.npz", documents, fingerprints)
            if lexical:
                texts = [fingerprint for *_, fingerprints in parts for fingerprint in fingerprints.values()]
                concepts.save_concepts(self.snapshot_dir / CONCEPTS_SNAPSHOT, texts)

    def rebuild(self, engine: Engine) -> dict[str, str]:
        """Load every stored vector and text; returns how each kind's FAISS index was obtained."""
        how: dict[str, str] = {}
        started = time.perf_counter()
        tokenised = reused = 0
        concepts_loaded = concepts.load_concepts(self.snapshot_dir / CONCEPTS_SNAPSHOT)
        with Session(engine) as session:
            for kind in ENTITY_KINDS:
                table = ENTITY_TABLES[kind]
                # Ids and entities only: the vectors (1.5 kB each) are read when no snapshot serves.
                rows = session.exec(
                    select(EntityVector.id, table)
                    .join(table, table.id == EntityVector.entity_id)  # type: ignore[arg-type]
                    .where(EntityVector.kind == kind)
                ).all()
                index = KindIndex(kind, VectorIndex(self.dim, config=self.index_config))
                stored_ids = {vector_id for vector_id, _ in rows if vector_id is not None}
                snapshot = self._load_snapshot(kind, stored_ids, session)
                if snapshot is not None:
                    index.vectors = snapshot
                    how[kind] = "snapshot"
                else:
                    stored = session.exec(
                        select(EntityVector.id, EntityVector.dim, EntityVector.vector).where(EntityVector.kind == kind)
                    )
                    index.vectors = VectorIndex.rebuild(
                        self.dim,
                        (
                            (vector_id, np.frombuffer(vector, dtype=np.float32))
                            for vector_id, dim, vector in stored
                            if vector_id is not None and dim == self.dim
                        ),
                        config=self.index_config,
                    )
                    how[kind] = "database"
                known = load_lexical(self.snapshot_dir / f"{kind}.bm25.npz")
                for vector_id, row in rows:
                    assert vector_id is not None
                    if index.add_metadata(vector_id, cast(Entity, row), known_terms=known):
                        tokenised += 1
                    else:
                        reused += 1
                self.kinds[kind] = index
                # Rows loaded anyway: a restarted matcher ranks against a warm cache, not ~200
                # row loads per event until it fills (kinds in order, so the most numerous,
                # pitches, are the ones a small cache drops). Closing the session detaches them.
                self.entities.put([cast(Entity, row) for _, row in rows])
        # Load jieba's and OpenCC's dictionaries now (seconds), not on the first event to rank
        # after a start from snapshots, which tokenises nothing.
        tokenize("預熱 warm-up")
        self.rebuild_stats = {
            "seconds": round(time.perf_counter() - started, 2),
            "texts_tokenised": tokenised,
            "texts_from_snapshot": reused,
            "concepts_from_snapshot": concepts_loaded,
        }
        log.info("indices rebuilt: %s sizes %s (%s)", how, self.sizes(), self.rebuild_stats)
        return how

    def _load_snapshot(self, kind: str, stored_ids: set[int], session: Session) -> VectorIndex | None:
        path = self.snapshot_dir / f"{kind}.faiss"
        if not path.exists():
            return None
        try:
            snapshot = VectorIndex.load(path, expected_dim=self.dim, config=self.index_config)
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


# --- BM25 term snapshots ---------------------------------------------------------------------
def save_lexical(path: Path, documents: Mapping[int, Mapping[str, int]], fingerprints: Mapping[int, int]) -> None:
    """Write term counts per document as flat numpy arrays (no pickle), atomically."""
    vocabulary: dict[str, int] = {}
    ids = [doc_id for doc_id in documents if doc_id in fingerprints]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    terms: list[int] = []
    counts: list[int] = []
    for position, doc_id in enumerate(ids):
        for term, count in documents[doc_id].items():
            terms.append(vocabulary.setdefault(term, len(vocabulary)))
            counts.append(count)
        offsets[position + 1] = len(terms)
    save_npz(
        path,
        format=np.array([LEXICAL_SNAPSHOT_FORMAT]),
        signature=np.array([tokenizer_signature()]),
        ids=np.array(ids, dtype=np.int64),
        fingerprints=np.array([fingerprints[doc_id] for doc_id in ids], dtype=np.int64),
        offsets=offsets,
        terms=np.array(terms, dtype=np.int32),
        counts=np.array(counts, dtype=np.int32),
        vocabulary=np.array(list(vocabulary), dtype=np.str_),
    )


def load_lexical(path: Path) -> dict[int, tuple[int, dict[str, int]]]:
    """id → (fingerprint, term counts) from `save_lexical`; empty if missing, unreadable or
    written by another tokeniser (then every text is tokenised again)."""
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"][0]) != LEXICAL_SNAPSHOT_FORMAT or str(data["signature"][0]) != tokenizer_signature():
                log.info("lexical snapshot %s is of another format or tokeniser: not used", path)
                return {}
            ids, fingerprints, offsets = data["ids"].tolist(), data["fingerprints"].tolist(), data["offsets"].tolist()
            terms, counts, vocabulary = data["terms"].tolist(), data["counts"].tolist(), data["vocabulary"].tolist()
    except (OSError, ValueError, KeyError) as exc:
        log.warning("lexical snapshot %s unusable, tokenising again: %s", path, exc)
        return {}
    known: dict[int, tuple[int, dict[str, int]]] = {}
    for position, doc_id in enumerate(ids):
        start, end = offsets[position], offsets[position + 1]
        known[doc_id] = (
            fingerprints[position],
            {vocabulary[term]: count for term, count in zip(terms[start:end], counts[start:end], strict=True)},
        )
    return known
