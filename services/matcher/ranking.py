"""Candidate retrieval and ranking for one subject against one counterpart kind.

Three retrievers feed the pool, because no single one is enough here: dense (FAISS) finds
paraphrases in English, lexical (BM25 over jieba tokens) finds Chinese and shared terms,
and sector codes from the bilingual taxonomy bridge languages (an English pitch and a
Chinese mandate in one sector share no words and, with an English-only model, no meaning).
The matcher service and `salon bench matching` both rank through this class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from services.matcher.scoring import (
    Activity,
    Scored,
    Weights,
    concept_overlap,
    gated,
    quote_passage,
    score_pair,
    structured_fit,
)
from services.matcher.state import KindIndex, text_fingerprint
from shared.events import ReasonData
from shared.models import Entity, entity_text

EntityFetcher = Callable[[str, list[str]], list[Entity]]
ActivityFetcher = Callable[[list[Entity]], dict[str, Activity]]
PenaltyFetcher = Callable[[Entity, list["Candidate"]], dict[str, float]]


@dataclass(frozen=True)
class MatchPolicy:
    top_k: int = 10
    min_score: float = 0.12
    weights: Weights = field(default_factory=Weights)
    candidate_pool: int = 50  # per retriever, before scoring


@dataclass
class Candidate:
    entity: Entity
    vector_id: int
    cosine: float
    bm25: float  # normalised BM25; the lexical signal adds shared concepts when scored
    matched_terms: list[str]  # the BM25 terms in common
    text: str  # entity_text of the entity
    tokens: frozenset[str] | None = None  # of the entity's current text, when the index holds it


def lexical_similarity(index: KindIndex, text: str, vector_ids: Iterable[int]) -> dict[int, float]:
    """BM25 normalised by the query's self-score; the square root spreads the low end."""
    return normalised_bm25(index, text, index.lexical.scores(text, vector_ids))


def normalised_bm25(index: KindIndex, text: str, raw: dict[int, float]) -> dict[int, float]:
    self_score = index.lexical.self_score(text) or 1.0
    return {vid: min(1.0, score / self_score) ** 0.5 for vid, score in raw.items()}


def text_similarity(bm25: float, subject_text: str, counterpart_text: str) -> tuple[float, list[str]]:
    """The lexical signal: BM25 (normalised) or, when stronger, the shared glossary concepts
    (which also link Chinese and English texts), with the counterpart's words for them."""
    concepts, terms = concept_overlap(subject_text, counterpart_text)
    return max(bm25, concepts), terms


def indexed_tokens(index: KindIndex, vector_id: int, text: str) -> frozenset[str] | None:
    """The BM25 index's tokens for the entity, if they were made from its current `text`
    (a newer version may not be indexed yet): tokenising 150 candidates again is slow."""
    if index.fingerprints.get(vector_id) != text_fingerprint(text):
        return None
    return index.lexical.terms(vector_id)


def cosine_similarity(index: KindIndex, vector: np.ndarray, vector_ids: Iterable[int]) -> dict[int, float]:
    return {vid: float(np.dot(vector, index.vectors.reconstruct(vid))) for vid in vector_ids}


class Ranker:
    def __init__(
        self,
        policy: MatchPolicy,
        *,
        fetch_entities: EntityFetcher,
        fetch_activity: ActivityFetcher | None = None,
        fetch_penalties: PenaltyFetcher | None = None,
    ) -> None:
        self.policy = policy
        self._fetch_entities = fetch_entities
        self._fetch_activity = fetch_activity
        self._fetch_penalties = fetch_penalties

    def candidates(
        self, subject: Entity, vector: np.ndarray, text: str, index: KindIndex, *, with_terms: bool = True
    ) -> list[Candidate]:
        """The pool of the three retrievers, with each signal. Without `with_terms` the BM25
        terms in common are left empty: `rank` finds them for the kept candidates only."""
        pool_size = self.policy.candidate_pool
        dense = dict(index.vectors.search(vector, pool_size)[0])
        pool = set(dense)
        pool.update(index.sharing_sectors(subject.sector_codes, pool_size))
        top, bm25 = index.lexical.search_and_score(text, pool_size, pool)
        bm25.update(top)
        pool.update(bm25)
        if not pool:
            return []
        missing = [vid for vid in pool if vid not in dense]
        dense.update(cosine_similarity(index, vector, missing))
        lexical = normalised_bm25(index, text, bm25)
        wanted = [index.entity_of[vid] for vid in pool if vid in index.entity_of]
        entities = {entity.id: entity for entity in self._fetch_entities(index.kind, wanted)}
        terms = index.lexical.matched_terms_many(text, pool) if with_terms else {}
        candidates = []
        for vid in sorted(pool):
            counterpart = entities.get(index.entity_of.get(vid, ""))
            # Nobody is matched with themselves (same owner), nor with a flagged duplicate.
            if counterpart is None or counterpart.owner == subject.owner or counterpart.duplicate_of:
                continue
            counterpart_text = entity_text(counterpart)
            candidates.append(
                Candidate(
                    entity=counterpart,
                    vector_id=vid,
                    cosine=dense.get(vid, 0.0),
                    bm25=lexical.get(vid, 0.0),
                    matched_terms=terms.get(vid, []),
                    text=counterpart_text,
                    tokens=indexed_tokens(index, vid, counterpart_text),
                )
            )
        return candidates

    def score(
        self, subject: Entity, candidates: list[Candidate], *, explain: bool = True
    ) -> list[tuple[Candidate, Scored]]:
        """Every candidate scored (gated ones included, at 0), best first; without `explain`,
        the scores only (no reasons), which is most of the cost."""
        activity, penalties = self._signals(subject, candidates)
        return self._score(subject, candidates, activity=activity, penalties=penalties, explain=explain)

    def _signals(
        self, subject: Entity, candidates: list[Candidate]
    ) -> tuple[dict[str, Activity] | None, dict[str, float]]:
        """What the platform recorded about the candidates: activity (None without a fetcher)
        and feedback penalties."""
        activity = self._fetch_activity([c.entity for c in candidates]) if self._fetch_activity else None
        penalties = self._fetch_penalties(subject, candidates) if self._fetch_penalties else {}
        return activity, penalties

    def _score(
        self,
        subject: Entity,
        candidates: list[Candidate],
        *,
        activity: dict[str, Activity] | None,
        penalties: dict[str, float],
        explain: bool,
    ) -> list[tuple[Candidate, Scored]]:
        """The hard gates are checked first: a gated candidate scores 0 whatever its text, so its
        concept overlap and signal reasons are not computed."""
        text = entity_text(subject)
        scored = []
        for candidate in candidates:
            known = {candidate.entity.id: candidate.tokens} if candidate.tokens is not None else None
            texts = {subject.id: text, candidate.entity.id: candidate.text}
            rules = structured_fit(subject, candidate.entity, known_tokens=known, known_texts=texts, explain=explain)
            if rules.gated:
                scored.append((candidate, gated(rules)))
                continue
            lexical, concept_terms = text_similarity(candidate.bm25, text, candidate.text)
            result = score_pair(
                subject,
                candidate.entity,
                cosine=candidate.cosine,
                lexical=lexical,
                matched_terms=candidate.matched_terms
                + [term for term in concept_terms if term not in candidate.matched_terms],
                weights=self.policy.weights,
                activity=activity.get(candidate.entity.id) if activity is not None else None,
                rules=rules,
                texts=(text, candidate.text),
            )
            penalty = penalties.get(candidate.entity.id, 0.0)
            if penalty:
                result = apply_penalty(result, penalty)
            scored.append((candidate, result))
        scored.sort(key=lambda item: (-item[1].score, item[0].vector_id))
        return scored

    def rank(self, subject: Entity, vector: np.ndarray, text: str, index: KindIndex) -> list[tuple[Candidate, Scored]]:
        """The proposals: retrieved, scored, gates and weak pairs dropped, top-k.

        Two passes: every candidate is scored without reasons, then the kept ones again with
        their reasons, terms and passage (the same arithmetic, so the same scores)."""
        candidates = self.candidates(subject, vector, text, index, with_terms=False)
        activity, penalties = self._signals(subject, candidates)
        quick = self._score(subject, candidates, activity=activity, penalties=penalties, explain=False)
        kept = [c for c, s in quick if not s.gated and s.score >= self.policy.min_score][: self.policy.top_k]
        terms = index.lexical.matched_terms_many(text, [c.vector_id for c in kept])
        for candidate in kept:
            candidate.matched_terms = terms.get(candidate.vector_id, [])
        explained = self._score(subject, kept, activity=activity, penalties=penalties, explain=True)
        return [(c, quote_passage(s, c.entity)) for c, s in explained]


def apply_penalty(scored: Scored, penalty: float) -> Scored:
    """Feedback lowers a pair: the score shrinks by `penalty` (0..1) and says why."""
    scored.score = round(scored.score * (1 - penalty), 4)
    scored.components["feedback_penalty"] = round(penalty, 4)
    if not scored.reasons:  # scored without reasons (ranking's first pass)
        return scored
    scored.reasons.insert(
        3,
        ReasonData(
            rule="feedback",
            passed=False,
            contribution=round(-penalty, 4),
            detail="lowered: this or a similar pair was rejected or declined before",
            detail_zh="已降权：该配对或相似配对曾被否决或谢绝",
        ),
    )
    return scored
