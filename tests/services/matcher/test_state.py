"""The matcher's derived state: BM25 term snapshots, background snapshots, sector retrieval."""

from __future__ import annotations

import random
from pathlib import Path

from sqlmodel import Session

from embeddings import HashingEncoder, VectorIndex
from services.bench.corpus import seed_corpus
from services.matcher import concepts
from services.matcher.state import KindIndex, MatcherState, load_lexical, save_lexical, text_fingerprint
from shared.models import ENTITY_TABLES, Pitch, entity_text
from shared.taxonomy import load_glossary

ENCODER = HashingEncoder(dim=32)


def _texts_by_id(state: MatcherState) -> dict[int, dict[str, int] | None]:
    return {
        vector_id: index.lexical.term_freqs(vector_id)
        for index in state.kinds.values()
        for vector_id in index.entity_of
    }


def test_a_restart_reuses_the_terms_of_unchanged_texts_only(sqlite_engine, tmp_path: Path) -> None:
    seed_corpus(sqlite_engine, ENCODER, total=120, distinct=12, seed=5)
    first = MatcherState(ENCODER.dim, tmp_path / "index")
    first.rebuild(sqlite_engine)
    assert first.rebuild_stats["texts_tokenised"] == 120 and first.rebuild_stats["texts_from_snapshot"] == 0
    first.snapshot()

    with Session(sqlite_engine) as session:  # one pitch is edited while the matcher is down
        pitch = session.get(Pitch, first.kinds["pitch"].entity_of[1])
        assert pitch is not None
        pitch.summary = "全新的项目介绍：石墨负极材料深加工，年产两万吨。"
        session.add(pitch)
        session.commit()
        edited_text = entity_text(pitch)

    again = MatcherState(ENCODER.dim, tmp_path / "index")
    again.rebuild(sqlite_engine)
    assert again.rebuild_stats["texts_tokenised"] == 1 and again.rebuild_stats["texts_from_snapshot"] == 119
    assert again.kinds["pitch"].fingerprints[1] == text_fingerprint(edited_text)
    assert "石墨负极" in (again.kinds["pitch"].lexical.term_freqs(1) or {})

    cold = MatcherState(ENCODER.dim, tmp_path / "elsewhere")  # no snapshot: everything tokenised
    cold.rebuild(sqlite_engine)
    assert cold.rebuild_stats["texts_tokenised"] == 120
    assert _texts_by_id(cold) == _texts_by_id(again), "terms from the snapshot equal fresh tokenisation"


def test_the_rebuild_leaves_the_entities_it_read_in_the_cache(sqlite_engine, tmp_path: Path) -> None:
    seed_corpus(sqlite_engine, ENCODER, total=120, distinct=12, seed=5)
    state = MatcherState(ENCODER.dim, tmp_path / "index")
    state.rebuild(sqlite_engine)
    assert len(state.entities) == 120
    mandates = list(state.kinds["mandate"].entity_of.values())
    with Session(sqlite_engine) as session:
        fetched = state.entities.fetch(session, "mandate", mandates)
    assert {entity.id for entity in fetched} == set(mandates)
    assert (state.entities.hits, state.entities.misses) == (len(mandates), 0)

    with Session(sqlite_engine) as session:  # an edit after the rebuild is read afresh
        pitch = session.get(Pitch, state.kinds["pitch"].entity_of[1])
        assert pitch is not None
        pitch.summary, pitch.version = "改过的项目介绍", pitch.version + 1
        session.add(pitch)
        session.commit()
    with Session(sqlite_engine) as session:
        (fetched_pitch,) = state.entities.fetch(session, "pitch", [state.kinds["pitch"].entity_of[1]])
    assert fetched_pitch.summary == "改过的项目介绍" and state.entities.misses == 1

    small = MatcherState(ENCODER.dim, tmp_path / "small", entity_cache_size=50)
    small.rebuild(sqlite_engine)
    counterparts = {*small.kinds["mandate"].entity_of.values(), *small.kinds["need"].entity_of.values()}
    assert len(small.entities) == 50 and len(counterparts) < 50
    with Session(sqlite_engine) as session:  # pitches, read first, are the ones dropped
        small.entities.fetch(session, "need", list(small.kinds["need"].entity_of.values()))
    assert small.entities.misses == 0


def test_a_lexical_snapshot_of_another_tokeniser_is_not_used(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "pitch.bm25.npz"
    save_lexical(path, {7: {"石墨": 2, "anode": 1}}, {7: 42})
    assert load_lexical(path) == {7: (42, {"石墨": 2, "anode": 1})}
    monkeypatch.setattr("services.matcher.state.tokenizer_signature", lambda: "another")
    assert load_lexical(path) == {}
    path.write_bytes(b"not a snapshot")
    monkeypatch.undo()
    assert load_lexical(path) == {}
    assert load_lexical(tmp_path / "missing.npz") == {}


def test_snapshots_during_operation_are_written_in_the_background(sqlite_engine, tmp_path: Path) -> None:
    seed_corpus(sqlite_engine, ENCODER, total=30, distinct=6, seed=6)
    source = MatcherState(ENCODER.dim, tmp_path / "source")
    source.rebuild(sqlite_engine)
    state = MatcherState(ENCODER.dim, tmp_path / "index", snapshot_every=10)
    pitches = source.kinds["pitch"]
    with Session(sqlite_engine) as session:
        for vector_id in list(pitches.entity_of)[:10]:
            entity = session.get(Pitch, pitches.entity_of[vector_id])
            assert entity is not None
            state.add(entity, vector_id, pitches.vectors.reconstruct(vector_id))
    state.wait_for_snapshots()
    assert (tmp_path / "index" / "pitch.faiss").exists()
    assert len(load_lexical(tmp_path / "index" / "pitch.bm25.npz")) == 10


def _sharing_sectors_reference(index: KindIndex, codes: list[str], limit: int) -> list[int]:
    counts: dict[int, int] = {}
    for code in codes:
        for vector_id in index.by_sector.get(code, ()):
            counts[vector_id] = counts.get(vector_id, 0) + 1
    return sorted(counts, key=lambda vector_id: (-counts[vector_id], vector_id))[:limit]


def test_sector_retrieval_orders_by_codes_in_common_then_id() -> None:
    rng = random.Random(8)
    codes = [f"code_{n}" for n in range(12)]
    index = KindIndex("pitch", VectorIndex(4))
    for vector_id in rng.sample(range(1, 5000), 800):
        for code in rng.sample(codes, rng.randint(0, 4)):
            index.by_sector.setdefault(code, set()).add(vector_id)
    for _ in range(30):
        wanted = rng.sample(codes, rng.randint(1, 5))
        for limit in (1, 50, 2000):
            assert index.sharing_sectors(wanted, limit) == _sharing_sectors_reference(index, wanted, limit)
    assert index.sharing_sectors(["unknown"], 10) == [] and index.sharing_sectors(codes, 0) == []
    assert all(type(vector_id) is int for vector_id in index.sharing_sectors(codes, 3))  # not numpy ints


def test_a_restart_loads_the_concepts_of_the_indexed_texts(sqlite_engine, tmp_path: Path, monkeypatch) -> None:
    seed_corpus(sqlite_engine, ENCODER, total=60, distinct=12, seed=7)
    first = MatcherState(ENCODER.dim, tmp_path / "index")
    first.rebuild(sqlite_engine)
    texts = {}
    with Session(sqlite_engine) as session:
        for index in first.kinds.values():
            for vector_id, entity_id in index.entity_of.items():
                entity = session.get(ENTITY_TABLES[index.kind], entity_id)
                assert entity is not None
                texts[vector_id] = entity_text(entity)
    named = {vector_id: dict(concepts.concepts_of(text)) for vector_id, text in texts.items()}
    assert any(named.values())  # the corpus names glossary concepts
    first.snapshot()

    concepts.forget()
    again = MatcherState(ENCODER.dim, tmp_path / "index")
    again.rebuild(sqlite_engine)
    assert again.rebuild_stats["concepts_from_snapshot"] == len(set(texts.values()))

    def no_lookup(_folded: str) -> dict[str, str]:
        raise AssertionError("a concept was looked up again")

    monkeypatch.setattr(load_glossary(), "find", no_lookup)
    assert {vector_id: dict(concepts.concepts_of(text)) for vector_id, text in texts.items()} == named


def test_a_concept_snapshot_of_another_glossary_is_not_used(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "concepts.npz"
    text = "鹤岗石墨负极材料深加工 graphite anodes"
    named = dict(concepts.concepts_of(text))
    assert concepts.save_concepts(path, [text_fingerprint(text), 12345]) == 1  # 12345: not cached
    concepts.forget()
    assert concepts.load_concepts(path) == 1 and dict(concepts.concepts_of(text)) == named
    monkeypatch.setattr(concepts, "signature", lambda: "another")
    assert concepts.load_concepts(path) == 0
    path.write_bytes(b"not a snapshot")
    monkeypatch.undo()
    assert concepts.load_concepts(path) == 0
    assert concepts.load_concepts(tmp_path / "missing.npz") == 0


def test_a_text_object_met_before_is_answered_without_fingerprinting_it_again(monkeypatch) -> None:
    concepts.forget()
    text = "鹤岗石墨负极材料深加工 graphite anodes"
    named = concepts.concepts_of(text)
    assert named
    fingerprinted: list[str] = []

    def counting(value: str) -> int:
        fingerprinted.append(value)
        return text_fingerprint(value)

    monkeypatch.setattr(concepts, "text_fingerprint", counting)
    assert concepts.concepts_of(text) is named and fingerprinted == []
    equal = "".join(list(text))  # the same text in another object: found by its fingerprint
    assert equal is not text
    assert concepts.concepts_of(equal) == named and fingerprinted == [equal]
    concepts.forget()
    assert concepts.concepts_of(text) == named and fingerprinted == [equal, text]
