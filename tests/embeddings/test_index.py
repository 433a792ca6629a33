"""VectorIndex: add/search/upsert/remove/exclude, snapshots, rebuild, validation."""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from embeddings import EmbeddingsError, SnapshotError, VectorIndex, VectorIndexError
from embeddings import index as index_module
from embeddings.index import EXACT, IVF, SNAPSHOT_FORMAT_VERSION, IndexConfig
from services.bench.search import clustered_vectors

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


# -- choosing the structure by size (exact ↔ IVF-SQ8) -------------------------------------

# In-line retrains, so growth tests see the retrained index at once (background: its own test).
SMALL = IndexConfig(exact_max=500, retrain_growth=2.0, background_retrain=False)
CLUSTER_DIM = 32


def clustered(count: int, seed: int = 0, dim: int = CLUSTER_DIM) -> np.ndarray:
    return clustered_vectors(count, dim=dim, seed=seed)


def grown_index(count: int, *, config: IndexConfig = SMALL, step: int = 100) -> tuple[VectorIndex, np.ndarray]:
    """An index filled `step` vectors at a time (as the matcher does, one event after another)."""
    vectors = clustered(count)
    index = VectorIndex(CLUSTER_DIM, config=config)
    for start in range(0, count, step):
        index.add(list(range(start, min(start + step, count))), vectors[start : start + step])
    return index, vectors


def ids_of(row: list[tuple[int, float]]) -> list[int]:
    return [vector_id for vector_id, _ in row]


def test_switches_to_ivf_past_the_threshold_keeping_every_id() -> None:
    index = VectorIndex(CLUSTER_DIM, config=SMALL)
    vectors = clustered(1200)
    index.add(list(range(500)), vectors[:500])
    assert index.kind == EXACT and index.lists == 0
    index.add([500], vectors[500])
    assert index.kind == IVF and index.lists == SMALL.lists_for(501)
    index.add(list(range(501, 1200)), vectors[501:])
    assert len(index) == 1200 and sorted(index.ids().tolist()) == list(range(1200))
    # Stored vectors survive the move (SQ8-decoded: cosine to the original ≈ 1).
    for vector_id in (0, 499, 500, 1199):
        assert float(index.reconstruct(vector_id) @ vectors[vector_id]) > 0.999
    hits = index.search(vectors[:50], k=5)
    assert sum(ids_of(row)[0] == i for i, row in enumerate(hits)) >= 48  # itself first, nearly always
    assert all(score == pytest.approx(1.0, abs=0.01) for row in hits for _, score in row[:1])


def test_retrains_as_it_grows_and_returns_to_exact_when_it_shrinks() -> None:
    index, vectors = grown_index(2100)
    # Trained at 600 (first add past 500), retrained at 1200 (2× growth), not yet again.
    assert index.kind == IVF and index.lists == SMALL.lists_for(1200) != SMALL.lists_for(600)
    assert index.remove(list(range(1800))) == 1800
    assert index.kind == IVF  # 300 left: above exact_max // 2, no flapping
    index.remove(list(range(1800, 1860)))
    assert index.kind == EXACT and len(index) == 240
    assert sorted(index.ids().tolist()) == list(range(1860, 2100))
    [[(top_id, score), *_]] = index.search(vectors[2000], k=3)
    assert top_id == 2000 and score == pytest.approx(1.0, abs=0.01)


def test_upsert_remove_and_exclude_after_switching() -> None:
    index, vectors = grown_index(1500)
    assert index.kind == IVF
    replacement = clustered(1, seed=42)
    index.add([700], replacement)
    assert len(index) == 1500 and index.ids().tolist().count(700) == 1
    [[(top_id, score), *_]] = index.search(replacement, k=1)
    assert top_id == 700 and score == pytest.approx(1.0, abs=0.01)
    assert 700 not in ids_of(index.search(vectors[700], k=10)[0])  # the old vector is gone

    assert index.remove([3, 4, 5, 10**9]) == 3
    assert 3 not in index and len(index) == 1497
    assert not {3, 4, 5} & set(ids_of(index.search(vectors[3], k=20)[0]))
    row = index.search(vectors[8], k=10, exclude={8, 9})[0]
    assert len(row) == 10 and not {8, 9} & set(ids_of(row))
    index.add([3], vectors[3])  # re-adding a removed id works
    assert ids_of(index.search(vectors[3], k=1)[0]) == [3]


def test_ivf_recall_at_50_on_clustered_vectors() -> None:
    config = IndexConfig(exact_max=2000)  # default nprobe and list factor
    vectors = clustered(20_000 + 100, seed=3, dim=128)
    corpus, queries = vectors[:20_000], vectors[20_000:]
    approximate = VectorIndex.rebuild(128, zip(range(20_000), corpus, strict=False), config=config)
    exact = VectorIndex.rebuild(128, zip(range(20_000), corpus, strict=False), config=IndexConfig(exact_max=20_000))
    assert approximate.kind == IVF and exact.kind == EXACT
    got = approximate.search(queries, k=50)
    want = exact.search(queries, k=50)
    recall = np.mean([len(set(ids_of(g)) & set(ids_of(w))) / 50 for g, w in zip(got, want, strict=True)])
    assert recall >= 0.95
    # Scores are cosines to within SQ8's precision.
    np.testing.assert_allclose([s for _, s in got[0][:5]], [s for _, s in want[0][:5]], atol=0.01)


def test_rebuild_picks_the_structure_for_the_final_size() -> None:
    vectors = clustered(1200)
    small = VectorIndex.rebuild(CLUSTER_DIM, zip(range(400), vectors, strict=False), config=SMALL)
    large = VectorIndex.rebuild(CLUSTER_DIM, zip(range(1200), vectors, strict=False), config=SMALL, chunk=128)
    assert small.kind == EXACT and large.kind == IVF
    assert large.lists == SMALL.lists_for(1200) and len(large) == 1200
    assert (
        large.serialized_bytes()
        < VectorIndex.rebuild(CLUSTER_DIM, zip(range(1200), vectors, strict=False)).serialized_bytes()
    )


def test_ivf_snapshot_round_trip(tmp_path: Path) -> None:
    index, vectors = grown_index(1500)
    path = tmp_path / "pitches.faiss"
    index.save(path, meta={"offset": 9})
    sidecar = json.loads(Path(f"{path}.meta.json").read_text(encoding="utf-8"))
    assert sidecar["kind"] == IVF and sidecar["count"] == 1500 and sidecar["trained_size"] > 500

    loaded = VectorIndex.load(path, expected_dim=CLUSTER_DIM, config=SMALL)
    assert loaded.kind == IVF and loaded.lists == index.lists and loaded.meta == {"offset": 9}
    assert loaded.search(vectors[:20], 10) == index.search(vectors[:20], 10)
    loaded.add([1500], clustered(1, seed=77))
    assert loaded.remove([0, 1]) == 2 and len(loaded) == 1499
    assert 1500 in loaded and 0 not in loaded

    # A wider nprobe from the config applies to the loaded index at once.
    wide = VectorIndex.load(path, config=IndexConfig(exact_max=500, nprobe=10**6, background_retrain=False))
    assert len(wide.search(vectors[0], k=1500)[0]) == 1500  # every list scanned
    # A config whose threshold now covers the size turns it back into an exact index.
    relaxed = VectorIndex.load(path, config=IndexConfig(exact_max=10_000))
    assert relaxed.kind == EXACT and sorted(relaxed.ids().tolist()) == list(range(1500))


def test_snapshot_of_an_older_format_is_rejected(tmp_path: Path, filled_index: VectorIndex) -> None:
    path = tmp_path / "index.faiss"
    filled_index.save(path)
    meta_path = Path(f"{path}.meta.json")
    sidecar = json.loads(meta_path.read_text())
    assert sidecar["format"] == SNAPSHOT_FORMAT_VERSION and sidecar["kind"] == EXACT
    for stale in ({"format": 1}, {"kind": "hnsw"}):
        meta_path.write_text(json.dumps(sidecar | stale))
        with pytest.raises(SnapshotError, match="format"):
            VectorIndex.load(path)
    # The sidecar claims IVF but the file holds a flat index: structure mismatch.
    meta_path.write_text(json.dumps(sidecar | {"kind": IVF}))
    with pytest.raises(SnapshotError, match="structure"):
        VectorIndex.load(path)


def test_concurrent_writes_across_the_switch_stay_consistent() -> None:
    index = VectorIndex(CLUSTER_DIM, config=IndexConfig(exact_max=300, retrain_growth=1.5))
    vectors = clustered(1200, seed=5)

    def write(offset: int) -> None:
        for start in range(offset * 300, offset * 300 + 300, 30):
            index.add(list(range(start, start + 30)), vectors[start : start + 30])
            index.remove([start])  # churn while the structure changes underneath

    def read(_: int) -> None:
        for i in range(200):
            assert len(index.search(vectors[i], k=5)[0]) <= 5

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(write, n) for n in range(4)] + [pool.submit(read, n) for n in range(2)]
        for future in futures:
            future.result()
    expected = set(range(1200)) - set(range(0, 1200, 30))
    assert index.wait_for_retrain(timeout=60)
    assert index.kind == IVF and len(index) == len(expected)
    assert set(index.ids().tolist()) == expected


def test_index_config_validation() -> None:
    with pytest.raises(VectorIndexError, match="nprobe"):
        IndexConfig(nprobe=0)
    with pytest.raises(VectorIndexError, match="retrain_growth"):
        IndexConfig(retrain_growth=1.0)
    assert IndexConfig().lists_for(1_000_000) == 4000
    assert IndexConfig().lists_for(100) == 2  # at least 39 training points per list
    assert IndexConfig(exact_max=10).kind_for(10) == EXACT and IndexConfig(exact_max=10).kind_for(11) == IVF


def test_background_retrain_keeps_writes_made_while_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    config = IndexConfig(exact_max=300, retrain_growth=2.0)  # background retrains (the default)
    vectors = clustered(1400, seed=9)
    index = VectorIndex(CLUSTER_DIM, config=config)
    index.add(list(range(400)), vectors[:400])  # exact → IVF in line, trained at 400
    assert index.kind == IVF and index.lists == config.lists_for(400)

    # Hold the retrain after its first chunk of vectors, so writes land mid-build.
    resume, paused = threading.Event(), threading.Event()
    build = index_module._build_faiss_index

    def held_build(kind, dim, ids, fetch, cfg, chunk):  # type: ignore[no-untyped-def]
        calls = 0

        def held_fetch(positions):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            if calls == 3:  # after the training sample and the first chunk
                paused.set()
                assert resume.wait(30)
            return fetch(positions)

        return build(kind, dim, ids, held_fetch, cfg, chunk)

    monkeypatch.setattr(index_module, "_build_faiss_index", held_build)
    monkeypatch.setattr(index_module, "_RESTRUCTURE_CHUNK", 100)  # 8 chunks for 800 vectors
    index.add(list(range(400, 800)), vectors[400:800])  # 800 ≥ 2 × 400: retrain starts
    assert paused.wait(30)
    # Meanwhile: searches answer from the old index; writes go on.
    assert ids_of(index.search(vectors[10], k=1)[0]) == [10]
    replacement = clustered(1, seed=99)
    index.add([5], replacement)  # upsert of an id the build already copied
    index.add([799], replacement)  # … and of one it has not copied yet
    assert index.remove([6, 798]) == 2
    index.add(list(range(800, 900)), vectors[800:900])  # new ids
    resume.set()
    assert index.wait_for_retrain(timeout=60)

    assert index.lists == config.lists_for(800)  # swapped in: trained at 800
    expected = set(range(900)) - {6, 798}
    assert set(index.ids().tolist()) == expected and len(index) == len(expected)
    for vector_id in (5, 799):
        assert float(index.reconstruct(vector_id) @ replacement[0]) > 0.999
    assert float(index.reconstruct(850) @ vectors[850]) > 0.999
    assert not {6, 798} & set(ids_of(index.search(vectors[6], k=20)[0]))
