"""A small ANN-style vector index over FAISS, keyed by our own int64 ids.

Exact inner-product search (`IndexFlatIP`) over L2-normalised vectors, i.e. cosine
similarity. Flat is deliberate: the corpus (pitches, mandates, needs) is in the tens
of thousands at most, where exact search is fast and needs no training. The
`IndexIDMap2` wrapper lets FAISS store our database ids and remove by id.

Snapshots are a cache, never the source of truth: vectors live in the database and
`VectorIndex.rebuild` recreates the index whenever `load` raises `SnapshotError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embeddings.errors import SnapshotError, VectorIndexError

__all__ = ["SNAPSHOT_FORMAT_VERSION", "VectorIndex", "meta_path_for"]

SNAPSHOT_FORMAT_VERSION = 1


def meta_path_for(path: str | os.PathLike[str]) -> Path:
    """The JSON sidecar written next to a snapshot: `<path>.meta.json`."""
    return Path(f"{os.fspath(path)}.meta.json")


def _normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows in place; all-zero rows stay zero (they score 0 everywhere)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    vectors /= norms
    return vectors


def _as_float32_matrix(vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
    """Validate and copy to a C-contiguous, normalised float32 (n, dim) matrix."""
    try:
        matrix = np.array(vectors, dtype=np.float32, copy=True, order="C")
    except (TypeError, ValueError) as exc:
        raise VectorIndexError(f"{what} must be numeric arrays: {exc}") from exc
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2:
        raise VectorIndexError(f"{what} must be 1-D or 2-D, got shape {matrix.shape}")
    if matrix.shape[1] != dim:
        raise VectorIndexError(f"{what} have dim {matrix.shape[1]}, index dim is {dim}")
    if not np.isfinite(matrix).all():
        raise VectorIndexError(f"{what} contain NaN or infinite values")
    return _normalise_rows(matrix)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory + os.replace: readers never see
    a half-written file, and a crash leaves the previous snapshot intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp_file:
            tmp_file.write(data)
            tmp_file.flush()
            os.fsync(tmp_file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


class VectorIndex:
    """Cosine-similarity index with upsert/remove by int64 id. Thread-safe."""

    def __init__(self, dim: int) -> None:
        if dim <= 0:
            raise VectorIndexError(f"dim must be positive, got {dim}")
        self.dim = int(dim)
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        # Mirror of the ids inside FAISS: O(1) membership for __contains__ / upsert.
        self._id_set: set[int] = set()
        self._lock = threading.RLock()
        # The `meta` dict stored with the snapshot this index was loaded from.
        self.meta: dict[str, Any] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._id_set)

    def __contains__(self, vector_id: object) -> bool:
        with self._lock:
            return vector_id in self._id_set

    def __repr__(self) -> str:
        return f"VectorIndex(dim={self.dim}, size={len(self)})"

    # -- mutation -----------------------------------------------------------------

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Upsert: ids already present are replaced. Vectors are cast to float32 and
        re-normalised; one id with a 1-D vector is accepted."""
        id_array = self._as_id_array(ids)
        if len(np.unique(id_array)) != len(id_array):
            raise VectorIndexError("duplicate ids within one add() call")
        matrix = _as_float32_matrix(vectors, self.dim, "vectors")
        if matrix.shape[0] != len(id_array):
            raise VectorIndexError(f"{len(id_array)} ids but {matrix.shape[0]} vectors")
        if not len(id_array):
            return
        with self._lock:
            self._remove_locked(id_array)
            self._index.add_with_ids(matrix, id_array)
            self._id_set.update(id_array.tolist())

    def remove(self, ids: Sequence[int]) -> int:
        """Remove ids; unknown ids are ignored. Returns how many were removed."""
        id_array = self._as_id_array(ids)
        with self._lock:
            return self._remove_locked(id_array)

    def _remove_locked(self, id_array: np.ndarray) -> int:
        present = np.array(
            [vector_id for vector_id in set(id_array.tolist()) if vector_id in self._id_set],
            dtype=np.int64,
        )
        if not len(present):
            return 0
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(present)))
        self._id_set.difference_update(present.tolist())
        return removed

    @staticmethod
    def _as_id_array(ids: Sequence[int]) -> np.ndarray:
        try:
            id_array = np.asarray(ids, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise VectorIndexError(f"ids must be int64-compatible integers: {exc}") from exc
        return id_array

    # -- queries ------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, *, exclude: Collection[int] = ()) -> list[list[tuple[int, float]]]:
        """Per query row, up to k (id, cosine score) best first, never an excluded id.

        A 1-D query is treated as one row. Queries are re-normalised, so raw model
        output works too.
        """
        matrix = _as_float32_matrix(queries, self.dim, "queries")
        if k <= 0:
            return [[] for _ in range(matrix.shape[0])]
        excluded = {int(vector_id) for vector_id in exclude}
        with self._lock:
            size = len(self._id_set)
            if size == 0 or matrix.shape[0] == 0:
                return [[] for _ in range(matrix.shape[0])]
            # Over-fetch by the number of excluded ids actually indexed: after
            # filtering, exactly min(k, size - excluded) results remain.
            excluded_present = sum(1 for vector_id in excluded if vector_id in self._id_set)
            fetch = min(size, k + excluded_present)
            scores, labels = self._index.search(matrix, fetch)
        results: list[list[tuple[int, float]]] = []
        for row_scores, row_labels in zip(scores.tolist(), labels.tolist(), strict=True):
            row = [
                (label, score)
                for label, score in zip(row_labels, row_scores, strict=True)
                if label != -1 and label not in excluded  # -1: FAISS padding
            ]
            results.append(row[:k])
        return results

    def ids(self) -> np.ndarray:
        """A copy of all stored ids (int64), in FAISS storage order."""
        with self._lock:
            return np.array(faiss.vector_to_array(self._index.id_map), dtype=np.int64)

    def reconstruct(self, vector_id: int) -> np.ndarray:
        """The stored (normalised) vector for an id; VectorIndexError if absent."""
        with self._lock:
            if vector_id not in self._id_set:
                raise VectorIndexError(f"id {vector_id} is not in the index")
            return np.asarray(self._index.reconstruct(int(vector_id)), dtype=np.float32)

    # -- persistence --------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, meta: Mapping[str, Any] | None = None) -> None:
        """Atomically write the index plus a `<path>.meta.json` sidecar.

        The sidecar holds dim, count, a sha256 of the index bytes and `meta` (must be
        JSON-serialisable, e.g. the model name and the last applied event offset).
        The index file is replaced first; a crash before the sidecar is replaced
        leaves a checksum mismatch, which `load` reports as `SnapshotError`.
        """
        target = Path(path)
        with self._lock:
            payload = faiss.serialize_index(self._index).tobytes()
            count = len(self._id_set)
        sidecar = {
            "format": SNAPSHOT_FORMAT_VERSION,
            "dim": self.dim,
            "count": count,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "meta": dict(meta or {}),
        }
        try:
            sidecar_bytes = json.dumps(sidecar, ensure_ascii=False, indent=2).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise SnapshotError(f"snapshot meta is not JSON-serialisable: {exc}") from exc
        try:
            _write_atomically(target, payload)
            _write_atomically(meta_path_for(target), sidecar_bytes)
        except OSError as exc:
            raise SnapshotError(f"could not write snapshot {target}: {exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, expected_dim: int | None = None) -> VectorIndex:
        """Load a snapshot written by `save`.

        Raises SnapshotError when the file or sidecar is missing, the checksum or
        structure does not match, or the dim differs from `expected_dim` (e.g. the
        model changed); the caller should then `rebuild` from stored vectors.
        """
        target = Path(path)
        sidecar = cls._read_sidecar(target)
        try:
            payload = target.read_bytes()
        except OSError as exc:
            raise SnapshotError(f"cannot read snapshot {target}: {exc}") from exc
        if hashlib.sha256(payload).hexdigest() != sidecar["sha256"]:
            raise SnapshotError(f"snapshot {target} does not match its checksum")
        dim = sidecar["dim"]
        if expected_dim is not None and dim != expected_dim:
            raise SnapshotError(f"snapshot {target} has dim {dim}, expected {expected_dim}")
        try:
            faiss_index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        except Exception as exc:  # faiss raises RuntimeError, but be defensive
            raise SnapshotError(f"snapshot {target} is not a readable FAISS index: {exc}") from exc
        if not isinstance(faiss_index, faiss.IndexIDMap2) or faiss_index.d != dim:
            raise SnapshotError(f"snapshot {target} has an unexpected index structure")
        stored_ids = faiss.vector_to_array(faiss_index.id_map).tolist()
        id_set = set(stored_ids)
        if len(id_set) != len(stored_ids) or len(stored_ids) != sidecar["count"]:
            raise SnapshotError(f"snapshot {target} has inconsistent ids")
        index = cls(dim)
        index._index = faiss_index
        index._id_set = id_set
        index.meta = sidecar["meta"]
        return index

    @staticmethod
    def _read_sidecar(target: Path) -> dict[str, Any]:
        meta_path = meta_path_for(target)
        try:
            sidecar: Any = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"cannot read snapshot metadata {meta_path}: {exc}") from exc
        valid = (
            isinstance(sidecar, dict)
            and sidecar.get("format") == SNAPSHOT_FORMAT_VERSION
            and isinstance(sidecar.get("dim"), int)
            and sidecar["dim"] > 0
            and isinstance(sidecar.get("count"), int)
            and isinstance(sidecar.get("sha256"), str)
            and isinstance(sidecar.get("meta"), dict)
        )
        if not valid:
            raise SnapshotError(f"snapshot metadata {meta_path} is malformed or of another format")
        return dict(sidecar)

    @classmethod
    def rebuild(cls, dim: int, items: Iterable[tuple[int, np.ndarray]], *, chunk: int = 10000) -> VectorIndex:
        """Build an index from stored (id, vector) pairs, adding `chunk` at a time to
        bound memory. A repeated id behaves like an upsert: the last vector wins."""
        if chunk <= 0:
            raise VectorIndexError(f"chunk must be positive, got {chunk}")
        index = cls(dim)
        # A dict, so a repeated id within one chunk also keeps the last vector.
        pending: dict[int, np.ndarray] = {}
        for vector_id, vector in items:
            pending[int(vector_id)] = vector
            if len(pending) >= chunk:
                index._add_pending(pending)
        index._add_pending(pending)
        return index

    def _add_pending(self, pending: dict[int, np.ndarray]) -> None:
        if not pending:
            return
        try:
            matrix = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in pending.values()])
        except ValueError as exc:
            raise VectorIndexError(f"stored vectors have inconsistent shapes: {exc}") from exc
        self.add(list(pending.keys()), matrix)
        pending.clear()
