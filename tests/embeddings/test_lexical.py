"""Tokenisation and BM25 on simplified/traditional Chinese, English and mixed text."""

from __future__ import annotations

import pytest

from embeddings import BM25Index, add_domain_terms, normalize_text, tokenize

GRAPHITE_ANODE = 1
DATA_CENTRE = 2
DRONES = 3
ENGLISH_BATTERY = 4
ENGLISH_COOLING = 5

CORPUS = {
    GRAPHITE_ANODE: "本公司专注石墨负极材料研发与量产，年产能两万吨，客户为动力电池龙头企业。",
    DATA_CENTRE: "数据中心液冷项目，服务智算中心，降低能耗，提升算力密度。",
    DRONES: "低空经济：工业级无人机物流配送与巡检，专精特新小巨人企业，寻求返投合作。",
    ENGLISH_BATTERY: "We manufacture graphite anode materials for lithium-ion batteries.",
    ENGLISH_COOLING: "Immersion cooling systems for hyperscale data centres and AI clusters.",
}


@pytest.fixture
def bm25() -> BM25Index:
    index = BM25Index()
    for doc_id, text in CORPUS.items():
        index.add(doc_id, text)
    return index


def ids(results: list[tuple[int, float]]) -> list[int]:
    return [doc_id for doc_id, _ in results]


def test_normalize_text_folds_width_case_and_script() -> None:
    assert normalize_text("石墨負極 ＥＶＴＯＬ") == "石墨负极 evtol"
    assert normalize_text("Data Centre") == "data centre"


def test_tokenize_keeps_domain_terms_and_drops_stopwords() -> None:
    tokens = tokenize("我们公司的石墨负极项目，属于低空经济和专精特新领域，需要数据中心与固态电池")
    for term in ["石墨负极", "低空经济", "专精特新", "数据中心", "固态电池"]:
        assert term in tokens
    # Search mode still yields sub-words so partial queries match.
    assert {"石墨", "负极"} <= set(tokens)
    for stopword in ["我们", "公司", "的", "项目", "和", "与"]:
        assert stopword not in tokens


def test_tokenize_english_and_mixed() -> None:
    tokens = tokenize("The Pre-A round for our eVTOL and 5G batteries, a B2B platform")
    assert {"pre-a", "evtol", "5g", "battery", "round", "b2b", "platform"} <= set(tokens)
    assert not {"the", "for", "our", "and", "a"} & set(tokens)
    assert tokenize("") == [] and tokenize("   ，。") == []
    mixed = tokenize("5G基站 and 無人機 drones")
    assert {"5g", "基站", "无人机", "drone"} <= set(mixed)


def test_tokenize_traditional_equals_simplified() -> None:
    assert tokenize("石墨負極材料與固態電池") == tokenize("石墨负极材料与固态电池")


def test_add_domain_terms_keeps_new_term_whole() -> None:
    term = "钒液流储能"
    assert term not in tokenize(f"建设{term}电站")
    # The traditional form is normalised; the mixed-script term is skipped.
    add_domain_terms(["釩液流儲能", "5G基站"])
    assert term in tokenize(f"建设{term}电站")


def test_chinese_query_ranks_graphite_anode_first(bm25: BM25Index) -> None:
    results = bm25.search("石墨负极", k=5)
    assert ids(results)[0] == GRAPHITE_ANODE
    assert DATA_CENTRE not in ids(results)
    scores = bm25.scores("石墨负极", [GRAPHITE_ANODE, DATA_CENTRE, 999])
    assert scores[GRAPHITE_ANODE] > scores[DATA_CENTRE] == 0.0
    assert scores[999] == 0.0


def test_traditional_query_finds_simplified_doc(bm25: BM25Index) -> None:
    results = bm25.search("石墨負極材料", k=3)
    assert ids(results)[0] == GRAPHITE_ANODE
    assert ids(bm25.search("數據中心液冷", k=1)) == [DATA_CENTRE]


def test_english_query(bm25: BM25Index) -> None:
    assert ids(bm25.search("graphite anode battery", k=2))[0] == ENGLISH_BATTERY
    assert ids(bm25.search("data centre cooling", k=2))[0] == ENGLISH_COOLING


def test_mixed_query_hits_both_languages(bm25: BM25Index) -> None:
    found = ids(bm25.search("graphite anode 石墨负极", k=5))
    assert set(found[:2]) == {GRAPHITE_ANODE, ENGLISH_BATTERY}


def test_search_results_are_positive_sorted_and_respect_exclude(
    bm25: BM25Index,
) -> None:
    results = bm25.search("数据中心 data centres 无人机", k=10)
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True) and all(score > 0 for score in scores)
    assert set(ids(results)) == {DATA_CENTRE, ENGLISH_COOLING, DRONES}
    excluded = bm25.search("数据中心 data centres 无人机", k=10, exclude={DATA_CENTRE})
    assert DATA_CENTRE not in ids(excluded) and len(excluded) == 2
    assert bm25.search("数据中心", k=0) == []
    assert bm25.search("的 the", k=5) == []  # stopwords only
    assert bm25.search("quantum", k=5) == []


def test_matched_terms_best_first(bm25: BM25Index) -> None:
    terms = bm25.matched_terms("石墨负极材料 数据中心 graphite", GRAPHITE_ANODE)
    assert "石墨负极" in terms and "材料" in terms
    assert "数据中心" not in terms and "graphite" not in terms
    # Ordering is by idf: once 材料 appears in another document it ranks below 石墨负极.
    bm25.add(99, "新材料 材料 材料")
    ordered = bm25.matched_terms("石墨负极材料", GRAPHITE_ANODE)
    assert ordered.index("材料") > ordered.index("石墨负极")
    assert bm25.matched_terms("石墨负极材料", GRAPHITE_ANODE, limit=2) == ordered[:2]
    assert bm25.matched_terms("石墨负极", 12345) == []


def test_remove_and_upsert_update_statistics(bm25: BM25Index) -> None:
    assert len(bm25) == 5
    assert bm25.remove(GRAPHITE_ANODE) is True
    assert bm25.remove(GRAPHITE_ANODE) is False
    assert len(bm25) == 4
    assert GRAPHITE_ANODE not in ids(bm25.search("石墨负极", k=5))

    bm25.add(DATA_CENTRE, "固态电池中试线")  # upsert replaces the old text
    assert len(bm25) == 4
    assert bm25.search("数据中心", k=5) == []
    assert ids(bm25.search("固态电池", k=5)) == [DATA_CENTRE]


def test_incremental_stats_match_fresh_index(bm25: BM25Index) -> None:
    bm25.add(6, "卫星互联网终端")
    bm25.remove(6)
    bm25.add(DRONES, CORPUS[DRONES])  # re-add same text
    fresh = BM25Index()
    for doc_id, text in CORPUS.items():
        fresh.add(doc_id, text)
    query = "无人机 数据中心 graphite 石墨负极"
    got, want = bm25.search(query, 5), fresh.search(query, 5)
    assert ids(got) == ids(want)
    assert [score for _, score in got] == pytest.approx([score for _, score in want])


def test_self_score_normalises_to_unit_range(bm25: BM25Index) -> None:
    query = "石墨负极材料"
    top_id, top_score = bm25.search(query, k=1)[0]
    assert top_id == GRAPHITE_ANODE
    ceiling = bm25.self_score(query)
    assert ceiling > 0 and 0 < top_score / ceiling <= 1.0
    bm25.add(100, query)  # a document identical to the query scores ~ the ceiling
    assert bm25.scores(query, [100])[100] == pytest.approx(bm25.self_score(query), rel=0.2)
    assert bm25.self_score("的") == 0.0
    assert BM25Index().self_score("graphite") > 0


def test_empty_index() -> None:
    index = BM25Index()
    assert len(index) == 0
    assert index.search("石墨", k=3) == []
    assert index.scores("石墨", [1]) == {1: 0.0}


def _scalar_search(index: BM25Index, query: str, k: int) -> list[tuple[int, float]]:
    """The textbook per-document BM25 loop, for checking the vectorised search against."""
    scores = index.scores(query, [doc_id for doc_id in range(1, 10_000) if doc_id in index])
    ranked = sorted(((d, s) for d, s in scores.items() if s > 0), key=lambda item: (-item[1], item[0]))
    return ranked[:k]


def test_vectorised_search_equals_the_scalar_formula_through_removals_and_compaction() -> None:
    import random

    from services.api.intake import build_entity
    from services.demo import demo_items
    from shared.models import CREATE_MODELS, entity_text

    texts = []
    for kind in ("pitch", "mandate", "need"):
        for item in demo_items(kind):
            body = CREATE_MODELS[kind].model_validate({k: v for k, v in item.items() if k not in ("ref", "owner")})
            texts.append(entity_text(build_entity(kind, body, owner="o")))
    rng = random.Random(3)
    index = BM25Index()
    for doc_id, text in enumerate(texts * 3, start=1):  # repeated texts: many exact ties
        index.add(doc_id, text)
    for doc_id in rng.sample(range(1, len(texts) * 3 + 1), 150):  # enough to compact
        index.remove(doc_id)
    for doc_id in rng.sample(range(1, len(texts) * 3 + 1), 40):  # upserts with other texts
        index.add(doc_id, rng.choice(texts))
    for query in [*rng.sample(texts, 12), "石墨负极 graphite anode 低空经济", "nothing-shared-xyz"]:
        for k in (1, 10, 50):
            assert index.search(query, k) == _scalar_search(index, query, k)
        # One pass for the top hits and the scores of other ids: the same floats as each alone.
        others = rng.sample(range(1, len(texts) * 3 + 50), 60)  # live, removed and unknown ids
        top, scores = index.search_and_score(query, 50, others)
        assert top == index.search(query, 50)
        assert scores == index.scores(query, others)
    excluded = {doc_id for doc_id, _ in index.search(texts[0], 5)}
    assert not excluded & {doc_id for doc_id, _ in index.search(texts[0], 50, exclude=excluded)}


def test_term_freqs_round_trip_through_add_terms(bm25: BM25Index) -> None:
    copy = BM25Index()
    for doc_id in CORPUS:
        freqs = bm25.term_freqs(doc_id)
        assert freqs is not None
        copy.add_terms(doc_id, freqs)
    assert bm25.term_freqs(12345) is None
    query = "石墨负极 数据中心 graphite"
    assert copy.search(query, 5) == bm25.search(query, 5)


def test_to_simplified_equals_the_opencc_converter() -> None:
    from opencc import OpenCC

    from embeddings.lexical import to_simplified
    from services.demo import demo_items

    reference = OpenCC("t2s")
    texts = [
        "石墨負極材料與固態電池，答覆「臺灣」的問題。",
        "简体中文的答覆与乾隆年间的著作",
        "Mixed 混合 text, 無人機 drones; 2025年",
        "",
        "   ，。",
    ]
    for kind in ("pitch", "mandate", "need"):
        texts.extend(str(value) for item in demo_items(kind) for value in item.values() if isinstance(value, str))
    for text in texts:
        assert to_simplified(text) == reference.convert(text), text


def test_search_and_score_without_query_terms_or_hits(bm25: BM25Index) -> None:
    assert bm25.search_and_score("", 5, [GRAPHITE_ANODE]) == ([], {GRAPHITE_ANODE: 0.0})
    assert bm25.search_and_score("nothing-shared-xyz", 5, [DRONES, 999]) == ([], {DRONES: 0.0, 999: 0.0})
    top, scores = bm25.search_and_score("石墨负极", 0, [GRAPHITE_ANODE])
    assert top == [] and scores[GRAPHITE_ANODE] > 0


def test_matched_terms_many_equals_one_by_one(bm25: BM25Index) -> None:
    query = "石墨负极 数据中心 graphite anode 无人机"
    wanted = [*CORPUS, 12345]
    assert bm25.matched_terms_many(query, wanted) == {doc_id: bm25.matched_terms(query, doc_id) for doc_id in wanted}
    assert bm25.matched_terms_many(query, wanted, limit=1) == {
        doc_id: bm25.matched_terms(query, doc_id, limit=1) for doc_id in wanted
    }
