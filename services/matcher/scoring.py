"""The first scoring: dense + lexical (Chinese-capable) + structured fit, with reasons.

score = (w_dense·r·dense + w_lexical·lexical + w_structured·structured) / (w_dense·r + w_lexical + w_structured)

* dense      — cosine of normalised embeddings, rescaled so unrelated texts sit near 0;
* r          — how far dense similarity can be trusted for this pair's language: the default
               model is English-only, so a pair with Chinese text gets `dense_cjk_reliability`;
* lexical    — BM25 of the subject's text against the counterpart, divided by the score the
               subject would get against itself (jieba segmentation, traditional → simplified);
* structured — average of the structured rules that apply to the pair kind (sector codes,
               stage, ticket vs ask, region and 返投, needs vs offerings). A failed hard gate
               (declared exclusion, stage outside the mandate, ask far outside the ticket)
               removes the pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shared.events import ReasonData
from shared.models import Entity, Mandate, Need, Pitch, entity_text
from shared.regions import region_covers
from shared.taxonomy import fold, load_taxonomy

CJK = re.compile(r"[\u3400-\u9fff]")

# Rough conversion to compare an ask with a ticket across currencies (order of magnitude is
# what matters for the ticket rule; the UI shows the original amounts).
TO_CNY = {"CNY": 1.0, "USD": 7.2, "EUR": 7.8, "HKD": 0.92}

# What a pitch needs ↔ what a region offers.
NEED_TO_OFFERINGS = {
    "land": {"land"},
    "scenario": {"scenario", "test_field", "data"},
    "pilot_line": {"pilot_line"},
    "talent": {"talent"},
    "capital": {"co_investment"},
    "supply_chain": {"logistics"},
    "market": {"scenario"},
}


@dataclass(frozen=True)
class Weights:
    dense: float = 0.35
    lexical: float = 0.40
    structured: float = 0.25
    dense_cjk_reliability: float = 0.25


@dataclass
class Scored:
    score: float
    components: dict[str, float]
    reasons: list[ReasonData]
    gated: bool = False
    matched_terms: list[str] = field(default_factory=list)


def is_chinese(text: str) -> bool:
    return len(CJK.findall(text)) >= max(3, len(text) // 20)


def rescale_dense(cosine: float) -> float:
    """MiniLM-style cosines: ~0.1 for unrelated text, 0.7+ for paraphrases."""
    return min(1.0, max(0.0, (cosine - 0.15) / 0.6))


def pair_kind(kind_a: str, kind_b: str) -> str:
    order = {"pitch": 0, "mandate": 1, "need": 2}
    first, second = sorted((kind_a, kind_b), key=order.__getitem__)
    return f"{first}-{second}"


class _Rules:
    """Collects structured rule outcomes: each a score in [0,1] and a reason."""

    def __init__(self) -> None:
        self.scores: list[float] = []
        self.reasons: list[ReasonData] = []
        self.gated = False

    def soft(self, rule: str, value: float, detail: str) -> None:
        self.scores.append(value)
        self.reasons.append(ReasonData(rule=rule, passed=value >= 0.5, contribution=round(value, 3), detail=detail))

    def gate(self, rule: str, passed: bool, detail: str) -> None:
        if not passed:
            self.gated = True
        self.reasons.append(ReasonData(rule=rule, passed=passed, contribution=0.0, detail=detail))

    @property
    def value(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


def _sector_rule(rules: _Rules, a: Entity, b: Entity) -> None:
    codes_a, codes_b = set(a.sector_codes), set(b.sector_codes)
    if not codes_a or not codes_b:
        rules.soft("sector_overlap", 0.0, "sectors not recognised in the taxonomy")
        return
    common = codes_a & codes_b
    taxonomy = load_taxonomy()
    labels = ", ".join(taxonomy.sectors[code].zh + "/" + taxonomy.sectors[code].en for code in sorted(common))
    rules.soft(
        "sector_overlap",
        len(common) / min(len(codes_a), len(codes_b)),
        f"sectors in common: {labels}" if common else "no sector in common",
    )


def _excluded_by(mandate: Mandate, pitch: Pitch) -> str | None:
    """The mandate's declared exclusion that applies to the pitch, by term or sector code."""
    folded = fold(entity_text(pitch))
    for exclusion in mandate.exclusions:
        term = fold(exclusion)
        if term and (f" {term} " in f" {folded} " if term.isascii() else term in folded):
            return exclusion
        code = load_taxonomy().code_for(exclusion)
        if code and code in pitch.sector_codes:
            return exclusion
    return None


def _pitch_mandate(rules: _Rules, pitch: Pitch, mandate: Mandate) -> None:
    _sector_rule(rules, pitch, mandate)
    rules.gate(
        "stage",
        pitch.stage in mandate.stages,
        f"stage {pitch.stage} {'is' if pitch.stage in mandate.stages else 'is not'} in the mandate's stages "
        f"({', '.join(mandate.stages)})",
    )
    ask = pitch.funding_ask * TO_CNY.get(pitch.currency, 1.0)
    low = mandate.ticket_min * TO_CNY.get(mandate.currency, 1.0)
    high = mandate.ticket_max * TO_CNY.get(mandate.currency, 1.0)
    within = low <= ask <= high
    # A fund often takes part of a round: an ask up to 3× the max ticket is a syndicate, not a miss.
    rules.gate(
        "ticket_size",
        low / 3 <= ask <= high * 3,
        f"ask {pitch.funding_ask:,.0f} {pitch.currency} vs ticket {mandate.ticket_min:,.0f}–"
        f"{mandate.ticket_max:,.0f} {mandate.currency}",
    )
    rules.soft(
        "ticket_fit",
        1.0 if within else 0.4,
        "ask within the ticket range" if within else "ask outside the ticket range, syndication needed",
    )
    excluded = _excluded_by(mandate, pitch)
    rules.gate(
        "exclusions",
        excluded is None,
        f"matches declared exclusion '{excluded}'" if excluded else "no declared exclusion applies",
    )
    if mandate.regions:
        inside = any(region_covers(region, pitch.region) for region in mandate.regions)
        rules.soft(
            "region", 1.0 if inside else 0.0, f"{pitch.region} {'is' if inside else 'is not'} in the fund's regions"
        )
    if mandate.reinvestment_region:
        inside = region_covers(mandate.reinvestment_region, pitch.region)
        detail = (
            f"project is in the 返投 region {mandate.reinvestment_region}"
            if inside
            else f"fund requires 返投 in {mandate.reinvestment_region}"
            + ("; relocation of the registered address is a condition" if mandate.relocation_required else "")
        )
        rules.soft("reinvestment", 1.0 if inside else 0.3, detail)


def _pitch_need(rules: _Rules, pitch: Pitch, need: Need) -> None:
    _sector_rule(rules, pitch, need)
    wanted = set(pitch.needs)
    offered = set(need.offerings)
    satisfied = sorted(n for n in wanted if NEED_TO_OFFERINGS.get(n, set()) & offered)
    if wanted:
        rules.soft(
            "needs_offerings",
            len(satisfied) / len(wanted),
            f"region offers what the project needs: {', '.join(satisfied)}"
            if satisfied
            else "region offers none of the project's needs",
        )
    same_region = region_covers(need.region, pitch.region)
    rules.soft(
        "region",
        1.0 if same_region else 0.5,
        "project is already in the region (local chain link)"
        if same_region
        else "project would move or expand into the region (技术迁移)",
    )


def _mandate_need(rules: _Rules, mandate: Mandate, need: Need) -> None:
    _sector_rule(rules, mandate, need)
    scopes = [*mandate.regions, *([mandate.reinvestment_region] if mandate.reinvestment_region else [])]
    covered = not scopes or any(region_covers(scope, need.region) for scope in scopes)
    rules.soft(
        "region", 1.0 if covered else 0.2, f"fund {'invests' if covered else 'does not invest'} in {need.region}"
    )
    if "co_investment" in need.offerings:
        rules.soft("co_investment", 1.0, "region offers co-investment by its own fund")


def structured_fit(a: Entity, b: Entity) -> _Rules:
    rules = _Rules()
    pitch = next((e for e in (a, b) if isinstance(e, Pitch)), None)
    mandate = next((e for e in (a, b) if isinstance(e, Mandate)), None)
    need = next((e for e in (a, b) if isinstance(e, Need)), None)
    if pitch and mandate:
        _pitch_mandate(rules, pitch, mandate)
    elif pitch and need:
        _pitch_need(rules, pitch, need)
    elif mandate and need:
        _mandate_need(rules, mandate, need)
    return rules


def score_pair(
    subject: Entity,
    counterpart: Entity,
    *,
    cosine: float,
    lexical: float,
    matched_terms: list[str],
    weights: Weights,
) -> Scored:
    """Combine the three signals for one pair; `lexical` is already normalised to [0,1]."""
    chinese = is_chinese(entity_text(subject)) or is_chinese(entity_text(counterpart))
    reliability = weights.dense_cjk_reliability if chinese else 1.0
    dense = rescale_dense(cosine)
    rules = structured_fit(subject, counterpart)
    structured = rules.value
    w_dense = weights.dense * reliability
    total_weight = w_dense + weights.lexical + weights.structured
    score = (w_dense * dense + weights.lexical * lexical + weights.structured * structured) / total_weight
    reasons = [
        ReasonData(
            rule="dense_similarity",
            passed=dense >= 0.5,
            contribution=round(w_dense * dense / total_weight, 4),
            detail=f"embedding cosine {cosine:.2f}"
            + (" (down-weighted: Chinese text, English-only model)" if chinese else ""),
        ),
        ReasonData(
            rule="lexical_similarity",
            passed=lexical >= 0.2,
            contribution=round(weights.lexical * lexical / total_weight, 4),
            detail="shared terms: " + "、".join(matched_terms[:8]) if matched_terms else "no shared terms",
        ),
        ReasonData(
            rule="structured_fit",
            passed=structured >= 0.5,
            contribution=round(weights.structured * structured / total_weight, 4),
            detail=f"{sum(r.passed for r in rules.reasons)}/{len(rules.reasons)} rules passed",
        ),
        *rules.reasons,
    ]
    return Scored(
        score=0.0 if rules.gated else round(score, 4),
        components={"dense": round(dense, 4), "lexical": round(lexical, 4), "structured": round(structured, 4)},
        reasons=reasons,
        gated=rules.gated,
        matched_terms=matched_terms,
    )


def explain(scored: Scored, counterpart_title: str, *, chinese: bool) -> str:
    """One readable sentence in the reader's language."""
    passed = [r for r in scored.reasons[3:] if r.passed]
    terms = "、".join(scored.matched_terms[:5])
    if chinese:
        parts = [f"与「{counterpart_title}」匹配度 {scored.score:.2f}"]
        if terms:
            parts.append(f"共同关键词：{terms}")
        if passed:
            parts.append("；".join(r.detail for r in passed[:3]))
        return "，".join(parts) + "。"
    parts = [f"Fits '{counterpart_title}' with score {scored.score:.2f}"]
    if terms:
        parts.append(f"shared terms: {terms}")
    if passed:
        parts.append("; ".join(r.detail for r in passed[:3]))
    return ", ".join(parts) + "."
