"""Three-way matches: for a pitch, the best (fund, region) pairs scored jointly.

The salon's core use: a graphite-anode project + a new-materials fund that reinvests in
Heilongjiang + Hegang's need to fill its anode link. A triad is only as good as its weakest
side, so the joint score is the geometric mean of the three pair scores, raised when the
three cohere (the fund can invest where the region is; the region co-invests; the region
offers what the project needs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from embeddings import tokenize
from services.matcher.scoring import Weights, score_pair
from shared.events import ReasonData
from shared.models import Mandate, Need, Pitch, entity_text
from shared.regions import region_covers


@dataclass
class Triad:
    pitch: Pitch
    mandate: Mandate
    need: Need
    score: float
    pair_scores: dict[str, float]
    reasons: list[ReasonData]


@dataclass
class ScoredSide:
    """A pitch's existing proposal with one counterpart (from the stored matches)."""

    entity: Mandate | Need
    score: float


def token_overlap(text_a: str, text_b: str) -> tuple[float, list[str]]:
    """A symmetric lexical score for pairs the BM25 index did not score (Dice on tokens)."""
    a, b = set(tokenize(text_a)), set(tokenize(text_b))
    if not a or not b:
        return 0.0, []
    common = sorted(a & b, key=lambda token: -len(token))
    return 2 * len(common) / (len(a) + len(b)), common


def _coherence(pitch: Pitch, mandate: Mandate, need: Need) -> list[ReasonData]:
    reasons = []
    scopes = [*mandate.regions, *([mandate.reinvestment_region] if mandate.reinvestment_region else [])]
    if mandate.reinvestment_region and region_covers(mandate.reinvestment_region, need.region):
        reasons.append(
            ReasonData(
                rule="triad_reinvestment",
                passed=True,
                contribution=0.15,
                detail=f"landing in {need.region} satisfies the fund's 返投 requirement",
                detail_zh=f"项目落地{need.region}即满足基金返投要求",
            )
        )
    elif not scopes or any(region_covers(scope, need.region) for scope in scopes):
        reasons.append(
            ReasonData(
                rule="triad_region",
                passed=True,
                contribution=0.05,
                detail=f"the fund invests in {need.region}",
                detail_zh=f"基金可投资{need.region}",
            )
        )
    if "co_investment" in need.offerings:
        reasons.append(
            ReasonData(
                rule="triad_co_investment",
                passed=True,
                contribution=0.05,
                detail="the region's fund can co-invest beside the fund",
                detail_zh="地方基金可与该基金联合投资",
            )
        )
    return reasons


def best_triads(
    pitch: Pitch,
    mandates: list[ScoredSide],
    needs: list[ScoredSide],
    *,
    vectors: dict[str, np.ndarray],
    weights: Weights,
    limit: int = 10,
) -> list[Triad]:
    """Score every (mandate, need) pair among the pitch's proposals and keep the best."""
    triads: list[Triad] = []
    for side_m in mandates:
        mandate = side_m.entity
        assert isinstance(mandate, Mandate)
        for side_n in needs:
            need = side_n.entity
            assert isinstance(need, Need)
            vm, vn = vectors.get(mandate.id), vectors.get(need.id)
            cosine = float(np.dot(vm, vn)) if vm is not None and vn is not None else 0.0
            lexical, terms = token_overlap(entity_text(mandate), entity_text(need))
            mandate_need = score_pair(
                mandate, need, cosine=cosine, lexical=min(1.0, lexical * 2) ** 0.5, matched_terms=terms, weights=weights
            )
            if mandate_need.gated:
                continue
            pair_scores = {
                "pitch-mandate": side_m.score,
                "pitch-need": side_n.score,
                "mandate-need": mandate_need.score,
            }
            base = math.prod(max(score, 1e-6) for score in pair_scores.values()) ** (1 / 3)
            coherence = _coherence(pitch, mandate, need)
            score = min(1.0, base * (1 + sum(reason.contribution for reason in coherence)))
            triads.append(
                Triad(
                    pitch=pitch,
                    mandate=mandate,
                    need=need,
                    score=round(score, 4),
                    pair_scores=pair_scores,
                    reasons=coherence + mandate_need.reasons[3:],
                )
            )
    triads.sort(key=lambda triad: -triad.score)
    return triads[:limit]
