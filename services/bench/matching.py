"""`salon bench matching`: ranking quality on a labelled set shipped in the repo.

Each query is an entity; its candidates are every entity of the other kind in the set,
judged 3 (excellent), 2 (good), 1 (marginal) or, when unlisted, 0. Methods, all measured
in one run on the same candidates:
  full        the matcher's Ranker (retrieval + dense + lexical + structured + activity)
  dense       cosine of the embeddings alone
  lexical     the lexical signal alone: BM25 (jieba) or shared glossary concepts
  structured  the structured rules alone (gated pairs last)
  popularity  candidates by recorded activity (deals), the baseline to beat
Metrics: nDCG@10 with gains 2^grade−1; recall@10 and MRR count grade ≥ 2 as relevant.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from embeddings import Encoder, HashingEncoder, SentenceTransformerEncoder
from services.api.intake import build_entity
from services.bench import bench_app
from services.matcher.main import policy_from
from services.matcher.ranking import MatchPolicy, Ranker, cosine_similarity, lexical_similarity, text_similarity
from services.matcher.scoring import Activity, Weights, is_chinese, structured_fit
from services.matcher.state import MatcherState
from shared.models import CREATE_MODELS, Entity, entity_text
from shared.settings import get_settings

METHODS = ("full", "dense", "lexical", "structured", "popularity")
BASELINES = METHODS[1:]
KIND_OF_LIST = {"pitches": "pitch", "mandates": "mandate", "needs": "need"}
RELEVANT = 2  # grade from which a candidate counts for recall and MRR
K = 10


@dataclass
class Query:
    id: str
    subject: str
    candidate_kind: str
    language: str
    judgments: dict[str, int]


@dataclass
class LabelledSet:
    entities: dict[str, Entity]
    activity: dict[str, Activity]
    queries: list[Query]

    def of_kind(self, kind: str) -> list[Entity]:
        return [entity for entity in self.entities.values() if entity.kind == kind]


def load_set(path: Path | None = None) -> LabelledSet:
    raw = (
        path.read_text(encoding="utf-8")
        if path
        else resources.files("shared").joinpath("bench", "matching_set.json").read_text(encoding="utf-8")
    )
    data = json.loads(raw)
    entities: dict[str, Entity] = {}
    for plural, items in data["entities"].items():
        kind = KIND_OF_LIST[plural]
        for item in items:
            body = CREATE_MODELS[kind].model_validate({k: v for k, v in item.items() if k not in ("ref", "owner")})
            entities[item["ref"]] = build_entity(kind, body, owner=item["owner"], entity_id=item["ref"])
    activity = {
        ref: Activity(deals=value.get("deals", 0), last_deal_days_ago=value.get("last_deal_days_ago"))
        for ref, value in data.get("activity", {}).items()
    }
    queries = [
        Query(q["id"], q["subject"], q["candidate_kind"], q.get("language", ""), dict(q["judgments"]))
        for q in data["queries"]
    ]
    return LabelledSet(entities, activity, queries)


# --- metrics ---------------------------------------------------------------------------------
def ndcg_at(ranking: Sequence[str], judgments: dict[str, int], k: int = K) -> float:
    def dcg(grades: Sequence[int]) -> float:
        return sum((2**grade - 1) / math.log2(position + 2) for position, grade in enumerate(grades[:k]))

    ideal = dcg(sorted(judgments.values(), reverse=True))
    return dcg([judgments.get(ref, 0) for ref in ranking]) / ideal if ideal else 0.0


def recall_at(ranking: Sequence[str], judgments: dict[str, int], k: int = K) -> float:
    relevant = {ref for ref, grade in judgments.items() if grade >= RELEVANT}
    return len(relevant & set(ranking[:k])) / len(relevant) if relevant else 0.0


def reciprocal_rank(ranking: Sequence[str], judgments: dict[str, int]) -> float:
    for position, ref in enumerate(ranking, start=1):
        if judgments.get(ref, 0) >= RELEVANT:
            return 1 / position
    return 0.0


# --- rankers -----------------------------------------------------------------------------------
@dataclass
class Bench:
    labelled: LabelledSet
    state: MatcherState
    vectors: dict[str, np.ndarray]
    vector_ids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, labelled: LabelledSet, encoder: Encoder) -> Bench:
        refs = list(labelled.entities)
        matrix = encoder.encode([entity_text(labelled.entities[ref]) for ref in refs])
        state = MatcherState(encoder.dim, Path(tempfile.mkdtemp(prefix="salon-bench-")), snapshot_every=10**9)
        vector_ids = {}
        for vector_id, (ref, vector) in enumerate(zip(refs, matrix, strict=True), start=1):
            state.add(labelled.entities[ref], vector_id, vector)
            vector_ids[ref] = vector_id
        return cls(labelled, state, dict(zip(refs, matrix, strict=True)), vector_ids)

    def _fetch(self, _kind: str, refs: list[str]) -> list[Entity]:
        return [self.labelled.entities[ref] for ref in refs if ref in self.labelled.entities]

    def _activity(self, entities: list[Entity]) -> dict[str, Activity]:
        return {e.id: self.labelled.activity.get(e.id, Activity()) for e in entities if e.kind != "pitch"}

    def rank(self, method: str, query: Query, policy: MatchPolicy) -> list[str]:
        subject = self.labelled.entities[query.subject]
        candidates = [e for e in self.labelled.of_kind(query.candidate_kind) if e.owner != subject.owner]
        index = self.state.kinds[query.candidate_kind]
        ids = [self.vector_ids[c.id] for c in candidates]
        text = entity_text(subject)
        scores: dict[str, float]
        if method == "full":
            ranker = Ranker(policy, fetch_entities=self._fetch, fetch_activity=self._activity)
            retrieved = ranker.candidates(subject, self.vectors[subject.id], text, index)
            ranked = [candidate.entity.id for candidate, _ in ranker.score(subject, retrieved, explain=False)]
            rest = sorted(c.id for c in candidates if c.id not in set(ranked))  # not retrieved: last
            return ranked + rest
        if method == "dense":
            by_id = cosine_similarity(index, self.vectors[subject.id], ids)
            scores = {c.id: by_id[self.vector_ids[c.id]] for c in candidates}
        elif method == "lexical":
            by_id = lexical_similarity(index, text, ids)
            scores = {
                c.id: text_similarity(by_id.get(self.vector_ids[c.id], 0.0), text, entity_text(c))[0]
                for c in candidates
            }
        elif method == "structured":
            scores = {}
            for c in candidates:
                rules = structured_fit(subject, c)
                scores[c.id] = -1.0 if rules.gated else rules.value
        else:
            activity = self._activity(candidates)
            # Most deals first; among equals, the most recent.
            scores = {
                c.id: activity[c.id].deals - (activity[c.id].last_deal_days_ago or 0) / 1e5 if c.id in activity else 0.0
                for c in candidates
            }
        return sorted(scores, key=lambda ref: (-scores[ref], ref))


def evaluate(
    bench: Bench, policy: MatchPolicy, queries: Sequence[Query] | None = None, methods: Sequence[str] = METHODS
) -> dict[str, dict[str, float]]:
    queries = list(queries if queries is not None else bench.labelled.queries)
    results: dict[str, dict[str, float]] = {}
    for method in methods:
        rankings = [(bench.rank(method, q, policy), q.judgments) for q in queries]
        results[method] = {
            "ndcg@10": sum(ndcg_at(r, j) for r, j in rankings) / len(rankings),
            "recall@10": sum(recall_at(r, j) for r, j in rankings) / len(rankings),
            "mrr": sum(reciprocal_rank(r, j) for r, j in rankings) / len(rankings),
        }
    return results


def pair_group(query: Query, bench: Bench) -> str:
    kinds = sorted(
        (bench.labelled.entities[query.subject].kind, query.candidate_kind), key=("pitch", "mandate", "need").index
    )
    return "-".join(kinds)


# --- weight tuning -----------------------------------------------------------------------------
GRID = {
    "dense": (0.0, 0.1, 0.2, 0.35),
    "lexical": (0.0, 0.1, 0.2, 0.4, 0.6),
    "structured": (0.25, 0.5, 0.75, 1.0),
    "activity": (0.0, 0.05, 0.1),
}


@dataclass
class PairFeatures:
    """One retrieved candidate's signals, scored once and recombined for every weight set."""

    ref: str
    components: dict[str, float]
    gated: bool
    chinese: bool


def features(bench: Bench, policy: MatchPolicy, query: Query) -> tuple[list[PairFeatures], list[str]]:
    """Retrieved candidates with their signals, and the candidates retrieval missed."""
    subject = bench.labelled.entities[query.subject]
    ranker = Ranker(policy, fetch_entities=bench._fetch, fetch_activity=bench._activity)
    index = bench.state.kinds[query.candidate_kind]
    retrieved = ranker.candidates(subject, bench.vectors[subject.id], entity_text(subject), index)
    pairs = [
        PairFeatures(
            c.entity.id, s.components, s.gated, is_chinese(entity_text(subject)) or is_chinese(entity_text(c.entity))
        )
        for c, s in ranker.score(subject, retrieved)
    ]
    seen = {pair.ref for pair in pairs}
    missed = sorted(
        c.id for c in bench.labelled.of_kind(query.candidate_kind) if c.id not in seen and c.owner != subject.owner
    )
    return pairs, missed


def combined_ndcg(
    table: dict[str, tuple[list[PairFeatures], list[str]]], queries: Sequence[Query], weights: Weights
) -> float:
    """Mean nDCG@10 of the full formula with these weights (same arithmetic as score_pair)."""
    total = 0.0
    for query in queries:
        pairs, missed = table[query.id]
        scores = {}
        for pair in pairs:
            if pair.gated:  # scored 0 without its signals (services/matcher/ranking.py)
                scores[pair.ref] = 0.0
                continue
            w_dense = weights.dense * (weights.dense_cjk_reliability if pair.chinese else 1.0)
            c = pair.components
            weight_sum = w_dense + weights.lexical + weights.structured + weights.activity
            value = (
                w_dense * c["dense"]
                + weights.lexical * c["lexical"]
                + weights.structured * c["structured"]
                + weights.activity * c.get("activity", 0.0)
            ) / weight_sum
            scores[pair.ref] = value
        ranking = sorted(scores, key=lambda ref: (-scores[ref], ref)) + missed
        total += ndcg_at(ranking, query.judgments)
    return total / len(queries)


def tune(bench: Bench, base: MatchPolicy, queries: Sequence[Query]) -> tuple[Weights, float]:
    """Grid search of the four weights on `queries` by mean nDCG@10."""
    table = {q.id: features(bench, replace(base, weights=replace(base.weights, activity=0.1)), q) for q in queries}
    best: tuple[Weights, float] | None = None
    for dense, lexical, structured, activity in itertools.product(*GRID.values()):
        weights = replace(base.weights, dense=dense, lexical=lexical, structured=structured, activity=activity)
        figure = combined_ndcg(table, queries, weights)
        if best is None or figure > best[1]:
            best = (weights, figure)
    assert best is not None
    return best


def cross_validate(bench: Bench, base: MatchPolicy, folds: int = 2, seed: int = 7) -> float:
    """nDCG@10 on held-out queries with weights tuned on the others (guards against overfit)."""
    queries = list(bench.labelled.queries)
    random.Random(seed).shuffle(queries)
    held_out: list[float] = []
    for fold in range(folds):
        test = queries[fold::folds]
        train = [q for q in queries if q not in test]
        weights, _ = tune(bench, base, train)
        held_out.append(evaluate(bench, replace(base, weights=weights), test, methods=("full",))["full"]["ndcg@10"])
    return sum(held_out) / folds


# --- command -----------------------------------------------------------------------------------
def make_encoder(name: str) -> Encoder:
    if name == "hashing":
        return HashingEncoder()
    settings = get_settings()
    return SentenceTransformerEncoder(settings.model if name == "model" else name, max_tokens=settings.embed_max_tokens)


def run(encoder: Encoder, path: Path | None, policy: MatchPolicy) -> dict[str, Any]:
    labelled = load_set(path)
    bench = Bench.build(labelled, encoder)
    overall = evaluate(bench, policy)
    groups: dict[str, list[Query]] = {}
    for query in labelled.queries:
        groups.setdefault(pair_group(query, bench), []).append(query)
    by_group = {group: evaluate(bench, policy, queries) for group, queries in sorted(groups.items())}
    best_baseline = max(BASELINES, key=lambda method: overall[method]["ndcg@10"])
    best = max(overall[best_baseline]["ndcg@10"], 1e-9)
    return {
        "encoder": encoder.model_name,
        "queries": len(labelled.queries),
        "candidates": {kind: len(labelled.of_kind(kind)) for kind in ("pitch", "mandate", "need")},
        "weights": vars(policy.weights),
        **overall,
        "by_pair": by_group,
        "best_baseline": best_baseline,
        "full_vs_best_baseline_ratio": overall["full"]["ndcg@10"] / best,
        # What the set allows: a perfect ranking scores nDCG@10 = 1 on every query.
        "perfect_vs_best_baseline_ratio": 1.0 / best,
        "structurally_eligible_per_query": structurally_eligible(bench),
    }


def structurally_eligible(bench: Bench) -> float:
    """Mean candidates per query that pass every hard gate and share a sector code with the
    subject: what a structure-only ranker cannot tell apart. When it is near K, any ranker
    that applies the gates has most relevant candidates in its top K, and text hardly counts."""
    counts = []
    for query in bench.labelled.queries:
        subject = bench.labelled.entities[query.subject]
        counts.append(
            sum(
                1
                for c in bench.labelled.of_kind(query.candidate_kind)
                if c.owner != subject.owner
                and set(c.sector_codes) & set(subject.sector_codes)
                and not structured_fit(subject, c).gated
            )
        )
    return sum(counts) / max(len(counts), 1)


def print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"salon bench matching — {report['queries']} queries, encoder {report['encoder']}")
    table.add_column("method")
    for metric in ("ndcg@10", "recall@10", "mrr"):
        table.add_column(metric, justify="right")
    for method in METHODS:
        table.add_row(method, *(f"{report[method][metric]:.3f}" for metric in ("ndcg@10", "recall@10", "mrr")))
    console.print(table)
    pairs = Table(title="nDCG@10 by pair kind")
    pairs.add_column("pair")
    for method in METHODS:
        pairs.add_column(method, justify="right")
    for group, figures in report["by_pair"].items():
        pairs.add_row(group, *(f"{figures[method]['ndcg@10']:.3f}" for method in METHODS))
    console.print(pairs)
    console.print(
        f"full / best baseline ({report['best_baseline']}) on nDCG@10: "
        f"[bold]{report['full_vs_best_baseline_ratio']:.2f}×[/] (target ≥ 1.30×; "
        f"a perfect ranking would be {report['perfect_vs_best_baseline_ratio']:.2f}×)"
    )
    console.print(
        f"candidates per query passing every hard gate with a sector in common: "
        f"{report['structurally_eligible_per_query']:.1f} (top {K} judged)"
    )


@bench_app.command("matching")
def bench_matching(
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    encoder: Annotated[str, typer.Option(help="'model' (SALON_MODEL), 'hashing', or a model name/path.")] = "model",
    labelled_set: Annotated[Path | None, typer.Option("--set", help="Another labelled set (same format).")] = None,
    tune_weights: Annotated[bool, typer.Option("--tune", help="Grid-search the weights; report 2-fold CV.")] = False,
) -> None:
    """nDCG@10, recall@10 and MRR of the scoring against dense, lexical, structured and popularity."""
    console = Console(soft_wrap=True, stderr=as_json)
    policy = policy_from(get_settings())
    with console.status("loading the encoder and embedding the labelled set…"):
        chosen = make_encoder(encoder)
        report = run(chosen, labelled_set, policy)
    if tune_weights:
        bench = Bench.build(load_set(labelled_set), chosen)
        weights, tuned = tune(bench, policy, bench.labelled.queries)
        report["tuning"] = {
            "best_weights": vars(weights),
            "ndcg@10_in_sample": tuned,
            "ndcg@10_2fold_cv": cross_validate(bench, policy),
        }
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    print_report(report, console)
    if tune_weights:
        console.print(f"tuned weights: {report['tuning']['best_weights']}")
        console.print(
            f"in-sample nDCG@10 {report['tuning']['ndcg@10_in_sample']:.3f}, "
            f"2-fold cross-validated {report['tuning']['ndcg@10_2fold_cv']:.3f}"
        )
