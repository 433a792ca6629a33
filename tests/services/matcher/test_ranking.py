"""Ranking in two passes (scores only, then reasons for the kept) equals ranking in one."""

from __future__ import annotations

from functools import cache

import pytest

from embeddings import HashingEncoder
from services.bench.matching import Bench, load_set
from services.matcher.ranking import Candidate, MatchPolicy, Ranker
from services.matcher.scoring import Scored, structured_fit
from shared.models import Entity, entity_text


@cache
def bench() -> Bench:
    return Bench.build(load_set(), HashingEncoder(dim=64))


def every_third_penalised(subject: Entity, candidates: list[Candidate]) -> dict[str, float]:
    """Feedback on some pairs, so the penalty path is compared too."""
    return {c.entity.id: 0.4 for c in candidates[::3]}


def one_pass(ranker: Ranker, subject: Entity, candidates: list[Candidate]) -> list[tuple[Candidate, Scored]]:
    """What `rank` kept before it had two passes: every candidate explained, then the cut."""
    policy = ranker.policy
    scored = ranker.score(subject, candidates)
    return [(c, s) for c, s in scored if not s.gated and s.score >= policy.min_score][: policy.top_k]


@pytest.mark.parametrize("penalties", [None, every_third_penalised], ids=["plain", "feedback"])
@pytest.mark.parametrize("top_k", [3, 10])
def test_two_passes_keep_the_same_pairs_scores_and_reasons(penalties, top_k) -> None:
    data = bench()
    policy = MatchPolicy(top_k=top_k, min_score=0.05)
    ranker = Ranker(policy, fetch_entities=data._fetch, fetch_activity=data._activity, fetch_penalties=penalties)
    compared = 0
    for query in data.labelled.queries:
        subject = data.labelled.entities[query.subject]
        index = data.state.kinds[query.candidate_kind]
        text = entity_text(subject)
        expected = one_pass(ranker, subject, ranker.candidates(subject, data.vectors[subject.id], text, index))
        ranked = ranker.rank(subject, data.vectors[subject.id], text, index)
        assert [(c.entity.id, s.score, s.components) for c, s in ranked] == [
            (c.entity.id, s.score, s.components) for c, s in expected
        ]
        for (_, got), (_, want) in zip(ranked, expected, strict=True):
            assert [r for r in got.reasons if r.rule != "matched_passage"] == want.reasons
            assert got.matched_terms == want.matched_terms
        compared += len(ranked)
    assert compared > top_k * len(data.labelled.queries) // 2  # most queries keep several pairs


def test_rules_without_explain_score_and_gate_alike_but_say_nothing() -> None:
    data = bench()
    entities = list(data.labelled.entities.values())
    pitches = [e for e in entities if e.kind == "pitch"]
    others = [e for e in entities if e.kind != "pitch"]
    gated = 0
    for pitch in pitches[:12]:
        for other in others:
            explained = structured_fit(pitch, other)
            quiet = structured_fit(pitch, other, explain=False)
            assert (quiet.value, quiet.gated, quiet.reasons) == (explained.value, explained.gated, [])
            assert explained.reasons
            gated += explained.gated
    assert gated  # the set has hard negatives: both outcomes are compared
