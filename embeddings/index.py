"""A vector index over FAISS, keyed by our own int64 ids, that picks its structure by size.

Cosine similarity = inner product over L2-normalised vectors. Two structures:

* **exact** — `IndexIDMap2(IndexFlatIP)`: every query scans every vector. Perfect recall,
  no training, and fast while the corpus is small (a flat scan is memory-bound: roughly
  linear in size, a few ms per query at tens of thousands of 384-d vectors).
* **ivf-sq8** — `IndexIVFScalarQuantizer` (k-means coarse lists, 8-bit scalar-quantised
  residuals, a hashtable direct map): a query scans only `nprobe` of the `nlist` lists,
  and each vector takes `dim` bytes instead of `4 × dim`. The direct map gives O(1)
  `remove_ids` and `reconstruct` by our ids, so upsert/remove work as in the exact index
  (HNSW was rejected: FAISS cannot remove from it, so it needs tombstones and periodic
  rebuilds, and its float32 vectors plus graph take ~4× the memory of SQ8 codes). SQ8 scores differ from
  exact cosines by < 1e-2 (a stored vector's cosine to its original is ≥ 0.999), below
  any threshold the matcher uses, so the shortlist is not re-ranked: that would need a
  float32 copy of every vector, i.e. the memory SQ8 saves.

The index switches by itself (`IndexConfig`): above `exact_max` vectors it trains an IVF
on its own stored vectors and moves every id over (in line, under the lock: about a second
at the default 20k); below half of `exact_max` it goes back to exact (hysteresis, so it
does not flap). Once it has grown `retrain_growth`× since the last training it retrains
for the new size (`nlist` ∝ √size keeps each query's scan short) on a background thread,
journalling the writes made meanwhile and replaying them before the swap: searches and
writes wait only for short steps (copying 20k vectors, the swap), never for the training
(minutes at a million vectors).

Snapshots are a cache, never the source of truth: vectors live in the database and
`VectorIndex.rebuild` recreates the index whenever `load` raises `SnapshotError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embeddings.errors import SnapshotError, VectorIndexError

log = logging.getLogger(__name__)

__all__ = ["EXACT", "IVF", "SNAPSHOT_FORMAT_VERSION", "IndexConfig", "VectorIndex", "meta_path_for"]

# 2: the sidecar records the index kind and the size it was trained at (IVF snapshots).
SNAPSHOT_FORMAT_VERSION = 2

EXACT = "exact"
IVF = "ivf-sq8"
# k-means needs ~39 points per list to be meaningful (FAISS warns below that).
_MIN_POINTS_PER_LIST = 39
_TRAINING_SEED = 1234
_SQ_RANGE_MARGIN = 0.2
_RESTRUCTURE_CHUNK = 20_000  # vectors moved at a time (bounds the extra memory)
_HASHTABLE_DIRECT_MAP: int = faiss.DirectMap.Hashtable  # type: ignore[attr-defined]  # not in the stubs


@dataclass(frozen=True)
class IndexConfig:
    """When the index switches from exact to approximate search, and how the IVF is tuned.

    Defaults are tuned on clustered synthetic 384-d embeddings (`salon bench search`):
    recall@50 ≥ 0.95 against exact search at 100k and 1M vectors.
    """

    exact_max: int = 20_000  # up to this many vectors: exact search
    nprobe: int = 32  # IVF lists scanned per query
    list_factor: float = 4.0  # nlist = list_factor × √size, chosen at each (re)training
    retrain_growth: float = 2.0  # retrain once the size reaches this × the trained size
    background_retrain: bool = True  # IVF → IVF retrains run off the caller's thread
    train_points_per_list: int = 40  # k-means sample = this × nlist vectors
    train_iterations: int = 10  # k-means iterations

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be {rule}"
            for name, ok, rule in (
                ("exact_max", self.exact_max >= 1, "≥ 1"),
                ("nprobe", self.nprobe >= 1, "≥ 1"),
                ("list_factor", self.list_factor > 0, "> 0"),
                ("retrain_growth", self.retrain_growth > 1, "> 1"),
                ("train_points_per_list", self.train_points_per_list >= _MIN_POINTS_PER_LIST, "≥ 39"),
                ("train_iterations", self.train_iterations >= 1, "≥ 1"),
            )
            if not ok
        ]
        if problems:
            raise VectorIndexError("invalid index config: " + "; ".join(problems))

    def lists_for(self, size: int) -> int:
        """nlist for an IVF trained on `size` vectors: list_factor·√size, ≥ 39 points per list."""
        return max(1, min(round(self.list_factor * math.sqrt(size)), size // _MIN_POINTS_PER_LIST))

    def kind_for(self, size: int) -> str:
        """The structure a freshly built index of `size` vectors uses."""
        return IVF if size > self.exact_max else EXACT


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


def save_npz(path: Path, **arrays: Any) -> None:
    """Numpy arrays in one `.npz` (load it with `allow_pickle=False`), written atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _write_atomically(path, buffer.getvalue())


@contextmanager
def _one_openmp_thread() -> Iterator[None]:
    """Run FAISS single-threaded on this thread for the duration.

    A single query gains little from OpenMP, and on a busy machine (the matcher shares
    cores with the embedder) OpenMP's spinning workers made one flat query ~10× slower
    (measured: 20k vectors, p50 11 ms with 1 thread vs 112 ms with 2). The OpenMP thread
    count is per calling thread, so other threads' batch searches keep theirs.
    """
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


# (ids, vectors) at the given positions of the id array being built; ids gone by then
# (during a background retrain) are left out.
VectorFetcher = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _build_faiss_index(
    kind: str, dim: int, ids: np.ndarray, fetch: VectorFetcher, config: IndexConfig, chunk: int
) -> Any:
    """A new FAISS index of `kind` holding `ids`; vectors are fetched `chunk` at a time."""
    if kind == EXACT:
        index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    else:
        nlist = config.lists_for(len(ids))
        index = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = config.train_iterations
        index.cp.seed = _TRAINING_SEED
        # Widen each dimension's trained min/max by 20%: vectors outside the training
        # sample's range would otherwise be clipped (measured: 1 − cos up to 2e-3 for such
        # outliers, ≤ 5e-5 for every vector with the margin).
        index.sq.rangestat_arg = _SQ_RANGE_MARGIN
        sample_size = min(len(ids), nlist * config.train_points_per_list)
        positions = np.random.default_rng(_TRAINING_SEED).choice(len(ids), size=sample_size, replace=False)
        _, sample = fetch(np.sort(positions))
        index.train(sample)
        # Hashtable direct map: reconstruct and remove_ids by our arbitrary int64 ids.
        index.set_direct_map_type(_HASHTABLE_DIRECT_MAP)
        index.nprobe = min(config.nprobe, nlist)
    for start in range(0, len(ids), chunk):
        kept, vectors = fetch(np.arange(start, min(start + chunk, len(ids))))
        if len(kept):
            index.add_with_ids(vectors, kept)
    return index


def _stored_ids(faiss_index: Any) -> np.ndarray:
    """Every id inside a FAISS index of either kind, in storage order."""
    if isinstance(faiss_index, faiss.IndexIDMap2):
        return np.array(faiss.vector_to_array(faiss_index.id_map), dtype=np.int64)
    lists = faiss_index.invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(list_no), lists.list_size(list_no)).copy()
        for list_no in range(lists.nlist)
        if lists.list_size(list_no)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


class VectorIndex:
    """Cosine-similarity index with upsert/remove by int64 id. Thread-safe.

    Exact up to `config.exact_max` vectors, IVF-SQ8 above (see the module docstring).
    """

    def __init__(self, dim: int, *, config: IndexConfig | None = None) -> None:
        if dim <= 0:
            raise VectorIndexError(f"dim must be positive, got {dim}")
        self.dim = int(dim)
        self.config = config or IndexConfig()
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self._kind = EXACT
        self._trained_size = 0  # size the IVF was trained at (0 while exact)
        # While a background retrain runs: every mutation since it started, replayed onto
        # the new index before it replaces the old one (None otherwise).
        self._journal: list[tuple[np.ndarray, np.ndarray | None]] | None = None
        self._retrain_thread: threading.Thread | None = None
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
        return f"VectorIndex(dim={self.dim}, size={len(self)}, kind={self.kind})"

    @property
    def kind(self) -> str:
        """`EXACT` or `IVF`: the structure currently answering searches."""
        with self._lock:
            return self._kind

    @property
    def lists(self) -> int:
        """IVF lists (nlist); 0 while exact."""
        with self._lock:
            return int(self._index.nlist) if self._kind == IVF else 0

    def serialized_bytes(self) -> int:
        """Size of the FAISS index as written to a snapshot (≈ its memory, ids included)."""
        with self._lock:
            return int(faiss.serialize_index(self._index).size)

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
            if self._journal is not None:
                self._journal.append((id_array, matrix))
            self._fit_locked()

    def remove(self, ids: Sequence[int]) -> int:
        """Remove ids; unknown ids are ignored. Returns how many were removed."""
        id_array = self._as_id_array(ids)
        with self._lock:
            removed = self._remove_locked(id_array)
            if removed:
                self._fit_locked()
            return removed

    def _remove_locked(self, id_array: np.ndarray) -> int:
        present = np.array(
            [vector_id for vector_id in set(id_array.tolist()) if vector_id in self._id_set],
            dtype=np.int64,
        )
        if not len(present):
            return 0
        # The IVF hashtable direct map only accepts an explicit id array.
        selector = faiss.IDSelectorBatch(present) if self._kind == EXACT else faiss.IDSelectorArray(present)
        removed = int(self._index.remove_ids(selector))
        self._id_set.difference_update(present.tolist())
        if self._journal is not None:
            self._journal.append((present, None))
        return removed

    def _fit_locked(self) -> None:
        """Switch structure when the size calls for it (see the module docstring)."""
        if self._retrain_thread is not None:
            return  # checked again when the retrain finishes
        size = len(self._id_set)
        if self._kind == EXACT:
            if size > self.config.exact_max:
                self._restructure_locked(IVF)
        elif size < self.config.exact_max // 2:
            self._restructure_locked(EXACT)
        elif size >= self._trained_size * self.config.retrain_growth:
            if self.config.background_retrain:
                self._start_retrain_locked()
            else:
                self._restructure_locked(IVF)

    def _restructure_locked(self, kind: str) -> None:
        """Rebuild as `kind` from the vectors stored in the current index, keeping every id.

        In line, under the lock: used for the exact ↔ IVF switches, which happen near
        `exact_max` vectors where a rebuild takes about a second.
        """
        ids = _stored_ids(self._index)
        old = self._index

        def fetch(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            chosen = ids[positions]
            return chosen, _normalise_rows(np.asarray(old.reconstruct_batch(chosen), dtype=np.float32))

        self._index = _build_faiss_index(kind, self.dim, ids, fetch, self.config, _RESTRUCTURE_CHUNK)
        self._kind = kind
        self._trained_size = len(ids) if kind == IVF else 0

    def _start_retrain_locked(self) -> None:
        """Retrain the IVF for its new size on a background thread; searches and writes go
        on against the current index meanwhile (a retrain at 1M vectors takes minutes)."""
        ids = _stored_ids(self._index)
        self._journal = []
        self._retrain_thread = threading.Thread(
            target=self._retrain, args=(ids,), name="vector-index-retrain", daemon=True
        )
        self._retrain_thread.start()

    def _retrain(self, ids: np.ndarray) -> None:
        def fetch(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # A chunk at a time under the lock: the index may change between chunks.
            with self._lock:
                chosen = np.array([i for i in ids[positions].tolist() if i in self._id_set], dtype=np.int64)
                vectors = self._index.reconstruct_batch(chosen) if len(chosen) else np.zeros((0, self.dim))
            return chosen, _normalise_rows(np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim))

        try:
            built: Any = _build_faiss_index(IVF, self.dim, ids, fetch, self.config, _RESTRUCTURE_CHUNK)
        except Exception:  # the old index stays correct; only its tuning is stale
            log.exception("background retrain of the vector index failed; keeping the current index")
            built = None
        with self._lock:
            journal = self._journal or []
            self._journal = None
            self._retrain_thread = None
            if built is not None:
                # Upserts and removals are last-writer-wins per id, so replaying every
                # mutation since the start yields the current contents whatever the build saw.
                for changed, vectors in journal:
                    built.remove_ids(faiss.IDSelectorArray(changed))
                    if vectors is not None:
                        built.add_with_ids(vectors, changed)
                if built.ntotal == len(self._id_set):
                    self._index = built
                else:
                    log.error(
                        "retrained index holds %d vectors, expected %d: discarded", built.ntotal, len(self._id_set)
                    )
            # Also after a failure: retry only once the index has grown again.
            self._trained_size = len(ids)
            self._fit_locked()

    def wait_for_retrain(self, timeout: float | None = None) -> bool:
        """Block until no background retrain is running; False if `timeout` ran out."""
        with self._lock:
            thread = self._retrain_thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

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
        output works too. Exact search returns exactly min(k, size − excluded) rows;
        IVF search returns the best it finds in the `nprobe` lists it scans.
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
            if matrix.shape[0] == 1:
                with _one_openmp_thread():
                    scores, labels = self._index.search(matrix, fetch)
            else:
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
            return _stored_ids(self._index)

    def reconstruct(self, vector_id: int) -> np.ndarray:
        """The stored (normalised) vector for an id; VectorIndexError if absent.

        From an IVF-SQ8 index this is the 8-bit decoded vector, re-normalised so that dot
        products with it stay cosines.
        """
        with self._lock:
            if vector_id not in self._id_set:
                raise VectorIndexError(f"id {vector_id} is not in the index")
            vector = np.asarray(self._index.reconstruct(int(vector_id)), dtype=np.float32)
            kind = self._kind
        return vector if kind == EXACT else _normalise_rows(vector.reshape(1, -1))[0]

    # -- persistence --------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, meta: Mapping[str, Any] | None = None) -> None:
        """Atomically write the index plus a `<path>.meta.json` sidecar.

        The sidecar holds dim, count, kind, the trained size, a sha256 of the index bytes
        and `meta` (must be JSON-serialisable, e.g. the model name and the last applied
        event offset). The index file is replaced first; a crash before the sidecar is
        replaced leaves a checksum mismatch, which `load` reports as `SnapshotError`.
        """
        target = Path(path)
        with self._lock:
            payload = faiss.serialize_index(self._index).tobytes()
            count = len(self._id_set)
            kind, trained_size = self._kind, self._trained_size
        sidecar = {
            "format": SNAPSHOT_FORMAT_VERSION,
            "dim": self.dim,
            "count": count,
            "kind": kind,
            "trained_size": trained_size,
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
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        expected_dim: int | None = None,
        config: IndexConfig | None = None,
    ) -> VectorIndex:
        """Load a snapshot written by `save`.

        Raises SnapshotError when the file or sidecar is missing, the checksum or
        structure does not match, the snapshot is of another format version, or the dim
        differs from `expected_dim` (e.g. the model changed); the caller should then
        `rebuild` from stored vectors. `config` applies from now on (nprobe at once; a
        size outside its thresholds switches the structure right after loading).
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
            faiss_index: Any = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        except Exception as exc:  # faiss raises RuntimeError, but be defensive
            raise SnapshotError(f"snapshot {target} is not a readable FAISS index: {exc}") from exc
        if not cls._structure_matches(faiss_index, sidecar["kind"], dim):
            raise SnapshotError(f"snapshot {target} has an unexpected index structure")
        stored_ids = _stored_ids(faiss_index).tolist()
        id_set = set(stored_ids)
        if len(id_set) != len(stored_ids) or len(stored_ids) != sidecar["count"]:
            raise SnapshotError(f"snapshot {target} has inconsistent ids")
        index = cls(dim, config=config)
        with index._lock:
            index._index = faiss_index
            index._kind = sidecar["kind"]
            index._trained_size = sidecar["trained_size"]
            index._id_set = id_set
            if index._kind == IVF:
                faiss_index.nprobe = min(index.config.nprobe, faiss_index.nlist)
            index._fit_locked()
        index.meta = sidecar["meta"]
        return index

    @staticmethod
    def _structure_matches(faiss_index: Any, kind: str, dim: int) -> bool:
        if faiss_index.d != dim or faiss_index.metric_type != faiss.METRIC_INNER_PRODUCT:
            return False
        if kind == EXACT:
            return isinstance(faiss_index, faiss.IndexIDMap2)
        return (
            isinstance(faiss_index, faiss.IndexIVFScalarQuantizer)
            and faiss_index.direct_map.type == _HASHTABLE_DIRECT_MAP
        )

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
            and sidecar.get("kind") in (EXACT, IVF)
            and isinstance(sidecar.get("trained_size"), int)
            and isinstance(sidecar.get("sha256"), str)
            and isinstance(sidecar.get("meta"), dict)
        )
        if not valid:
            raise SnapshotError(f"snapshot metadata {meta_path} is malformed or of another format")
        return dict(sidecar)

    @classmethod
    def rebuild(
        cls,
        dim: int,
        items: Iterable[tuple[int, np.ndarray]],
        *,
        chunk: int = 10000,
        config: IndexConfig | None = None,
    ) -> VectorIndex:
        """Build an index from stored (id, vector) pairs. A repeated id behaves like an
        upsert: the last vector wins.

        The structure is chosen once for the final size (no exact → IVF switch on the
        way), so every item is held until the build ends — the same peak memory as an exact
        index of that size; vectors are stacked and added `chunk` at a time.
        """
        if chunk <= 0:
            raise VectorIndexError(f"chunk must be positive, got {chunk}")
        index = cls(dim, config=config)
        latest: dict[int, np.ndarray] = {}
        for vector_id, vector in items:
            latest[int(vector_id)] = vector
        ids = np.fromiter(latest.keys(), dtype=np.int64, count=len(latest))
        vectors = list(latest.values())

        def fetch(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            try:
                stacked = np.stack([np.asarray(vectors[p], dtype=np.float32).reshape(-1) for p in positions])
            except ValueError as exc:
                raise VectorIndexError(f"stored vectors have inconsistent shapes: {exc}") from exc
            return ids[positions], _as_float32_matrix(stacked, dim, "stored vectors")

        kind = index.config.kind_for(len(ids))
        built = _build_faiss_index(kind, index.dim, ids, fetch, index.config, chunk)
        with index._lock:
            index._index = built
            index._kind = kind
            index._trained_size = len(ids) if kind == IVF else 0
            index._id_set = set(ids.tolist())
        return index
