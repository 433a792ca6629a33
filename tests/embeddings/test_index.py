"""VectorIndex: add/search/upsert/remove/exclude, snapshots, rebuild, validation."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from embeddings import EmbeddingsError, SnapshotError, VectorIndex, VectorIndexError

DIM = 8


def random_unit_vectors(count: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


@pytest.fixture
def filled_index() -> VectorIndex:
    index = VectorIndex(DIM)
    index.add([10, 20, 30, 40, 50], random_unit_vectors(5))
    return index


def test_add_and_search_returns_self_first(filled_index: VectorIndex) -> None:
    vectors = random_unit_vectors(5)
    results = filled_index.search(vectors, k=3)
    assert len(results) == 5
    for expected_id, row in zip([10, 20, 30, 40, 50], results, strict=True):
        assert len(row) == 3
        top_id, top_score = row[0]
        assert top_id == expected_id
        assert top_score == pytest.approx(1.0, abs=1e-5)
        scores = [score for _, score in row]
        assert scores == sorted(scores, reverse=True)
        assert all(isinstance(vector_id, int) for vector_id, _ in row)
    assert len(filled_index) == 5
    assert 30 in filled_index and 31 not in filled_index
    assert sorted(filled_index.ids().tolist()) == [10, 20, 30, 40, 50]
    assert filled_index.ids().dtype == np.int64


def test_one_dimensional_query_is_one_row(filled_index: VectorIndex) -> None:
    query = random_unit_vectors(5)[1]
    results = filled_index.search(query, k=10)
    assert len(results) == 1
    assert results[0][0][0] == 20
    assert len(results[0]) == 5  # k larger than the index -> everything


def test_vectors_are_renormalised_and_cast(filled_index: VectorIndex) -> None:
    raw = (random_unit_vectors(1, seed=7) * 42.0).astype(np.float64)
    filled_index.add([60], raw)
    [[(top_id, score), *_]] = filled_index.search(raw, k=1)
    assert top_id == 60
    assert score == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(np.linalg.norm(filled_index.reconstruct(60)), 1.0, atol=1e-6)


def test_upsert_replaces_existing_vector(filled_index: VectorIndex) -> None:
    replacement = random_unit_vectors(1, seed=99)
    filled_index.add([30], replacement)
    assert len(filled_index) == 5
    assert filled_index.ids().tolist().count(30) == 1
    [[(top_id, score), *_]] = filled_index.search(replacement, k=1)
    assert (top_id, round(score, 5)) == (30, 1.0)
    old_query = random_unit_vectors(5)[2]
    assert all(vector_id != 30 or score < 0.99 for vector_id, score in filled_index.search(old_query, 5)[0])


def test_remove_returns_count_and_forgets_ids(filled_index: VectorIndex) -> None:
    assert filled_index.remove([20, 40, 999]) == 2
    assert filled_index.remove([20]) == 0
    assert len(filled_index) == 3
    assert 20 not in filled_index
    returned = {vector_id for vector_id, _ in filled_index.search(random_unit_vectors(5), 5)[1]}
    assert returned == {10, 30, 50}


def test_exclude_never_returned_and_still_fills_k(filled_index: VectorIndex) -> None:
    queries = random_unit_vectors(5)
    results = filled_index.search(queries, k=3, exclude={10, 20, 777})
    for row in results:
        assert [vector_id for vector_id, _ in row] and len(row) == 3
        assert not {10, 20} & {vector_id for vector_id, _ in row}
    everything_excluded = filled_index.search(queries[0], k=3, exclude=[10, 20, 30, 40, 50])
    assert everything_excluded == [[]]


def test_empty_index_and_zero_k() -> None:
    index = VectorIndex(DIM)
    assert index.search(random_unit_vectors(2), k=5) == [[], []]
    assert len(index) == 0 and index.ids().shape == (0,)
    index.add([1], random_unit_vectors(1))
    assert index.search(random_unit_vectors(1), k=0) == [[]]


def test_validation_errors(filled_index: VectorIndex) -> None:
    with pytest.raises(VectorIndexError, match="dim"):
        filled_index.add([1], np.ones((1, DIM + 1), dtype=np.float32))
    with pytest.raises(VectorIndexError, match="2 ids but 3 vectors"):
        filled_index.add([1, 2], random_unit_vectors(3))
    with pytest.raises(VectorIndexError, match="duplicate"):
        filled_index.add([1, 1], random_unit_vectors(2))
    with pytest.raises(VectorIndexError, match="NaN"):
        filled_index.add([1], np.full((1, DIM), np.nan))
    with pytest.raises(VectorIndexError, match="dim"):
        filled_index.search(np.ones(DIM + 2, dtype=np.float32), k=1)
    # Errors are both ours and ValueError; the index is untouched by failed calls.
    assert issubclass(VectorIndexError, EmbeddingsError) and issubclass(VectorIndexError, ValueError)
    assert len(filled_index) == 5 and 1 not in filled_index


def test_snapshot_round_trip(tmp_path: Path, filled_index: VectorIndex) -> None:
    path = tmp_path / "snapshots" / "pitches.faiss"
    filled_index.save(path, meta={"model": "all-MiniLM-L6-v2", "offset": 17, "名称": "项目"})
    sidecar = json.loads(Path(f"{path}.meta.json").read_text(encoding="utf-8"))
    assert sidecar["dim"] == DIM and sidecar["count"] == 5 and len(sidecar["sha256"]) == 64
    # Atomic writes leave no temp files behind.
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "pitches.faiss",
        "pitches.faiss.meta.json",
    ]

    loaded = VectorIndex.load(path, expected_dim=DIM)
    assert loaded.dim == DIM and len(loaded) == 5
    assert loaded.meta == {"model": "all-MiniLM-L6-v2", "offset": 17, "名称": "项目"}
    queries = random_unit_vectors(5)
    assert loaded.search(queries, 5) == filled_index.search(queries, 5)
    # The loaded index stays fully usable (id set consistent with FAISS).
    loaded.add([10], random_unit_vectors(1, seed=3))
    assert len(loaded) == 5 and loaded.remove([50]) == 1


def test_load_missing_snapshot_raises(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError):
        VectorIndex.load(tmp_path / "absent.faiss")


def test_load_corrupt_snapshot_raises(tmp_path: Path, filled_index: VectorIndex) -> None:
    path = tmp_path / "index.faiss"
    filled_index.save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="checksum"):
        VectorIndex.load(path)


def test_load_garbage_with_matching_checksum_raises(tmp_path: Path, filled_index: VectorIndex) -> None:
    # Checksum right but not a FAISS index (e.g. a bug upstream): still SnapshotError.
    path = tmp_path / "index.faiss"
    filled_index.save(path)
    garbage = b"definitely not faiss"
    path.write_bytes(garbage)
    meta_path = Path(f"{path}.meta.json")
    sidecar = json.loads(meta_path.read_text())
    sidecar["sha256"] = hashlib.sha256(garbage).hexdigest()
    meta_path.write_text(json.dumps(sidecar))
    with pytest.raises(SnapshotError):
        VectorIndex.load(path)


def test_load_with_bad_or_missing_sidecar_raises(tmp_path: Path, filled_index: VectorIndex) -> None:
    path = tmp_path / "index.faiss"
    filled_index.save(path)
    meta_path = Path(f"{path}.meta.json")
    meta_path.write_text("{not json")
    with pytest.raises(SnapshotError):
        VectorIndex.load(path)
    meta_path.unlink()
    with pytest.raises(SnapshotError):
        VectorIndex.load(path)


def test_load_dim_mismatch_raises(tmp_path: Path, filled_index: VectorIndex) -> None:
    path = tmp_path / "index.faiss"
    filled_index.save(path)
    with pytest.raises(SnapshotError, match="expected 384"):
        VectorIndex.load(path, expected_dim=384)


def test_rebuild_equals_incremental() -> None:
    vectors = random_unit_vectors(25, seed=5)
    ids = list(range(100, 125))
    incremental = VectorIndex(DIM)
    for vector_id, vector in zip(ids, vectors, strict=True):
        incremental.add([vector_id], vector)
    # Also an upsert in the stream: id 100 re-sent with a new vector, last one wins.
    newer = random_unit_vectors(1, seed=6)[0]
    incremental.add([100], newer)
    stream = [*zip(ids, vectors, strict=True), (100, newer)]

    rebuilt = VectorIndex.rebuild(DIM, iter(stream), chunk=4)
    assert len(rebuilt) == len(incremental) == 25
    assert sorted(rebuilt.ids().tolist()) == sorted(incremental.ids().tolist())
    queries = random_unit_vectors(6, seed=8)
    for got, want in zip(rebuilt.search(queries, 7), incremental.search(queries, 7), strict=True):
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-6)


def test_rebuild_rejects_wrong_dim() -> None:
    with pytest.raises(VectorIndexError):
        VectorIndex.rebuild(DIM, [(1, np.ones(DIM + 1, dtype=np.float32))])


def test_concurrent_upserts_and_searches_stay_consistent() -> None:
    index = VectorIndex(DIM)
    vectors = random_unit_vectors(200, seed=11)

    def write(offset: int) -> None:
        for i in range(offset, 200, 4):
            index.add([i % 50], vectors[i])  # heavy upsert contention on 50 ids

    def read(_: int) -> None:
        for i in range(100):
            index.search(vectors[i], k=5, exclude={1, 2})

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(write, n) for n in range(4)]
        futures += [pool.submit(read, n) for n in range(2)]
        for future in futures:
            future.result()  # re-raises any error from the worker
    assert len(index) == 50
    assert sorted(index.ids().tolist()) == list(range(50))
