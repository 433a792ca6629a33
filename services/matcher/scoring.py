"""Scoring one pair: dense + lexical (Chinese-capable) + structured fit + activity, with reasons.

score = (w_dense·r·dense + w_lexical·lexical + w_structured·structured + w_activity·activity)
        / (w_dense·r + w_lexical + w_structured + w_activity)

* dense      — cosine of normalised embeddings, rescaled so unrelated texts sit near 0;
* r          — how far dense similarity can be trusted for this pair's language: the default
               model is English-only, so a pair with Chinese text gets `dense_cjk_reliability`;
* lexical    — the stronger of two word-level signals: BM25 of the subject's text against the
               counterpart, divided by the score the subject would get against itself (jieba
               segmentation, traditional → simplified), and the overlap of the technology
               concepts both texts name (bilingual glossary: 石墨负极 = graphite anode);
* structured — weighted average of the rules that apply to the pair kind (sector codes, stage,
               ticket vs ask, region and 返投, risk appetite, the need's missing chain link,
               needs vs offerings, resource element × technology). A failed hard gate
               (declared exclusion, stage outside the mandate, ask far outside the ticket)
               removes the pair;
* activity   — for funds and regions: how much they did on the platform recently (a prior,
               weighted lightly: an active fund is not a fitting fund).

Every rule leaves a reason with its contribution and an English and a Chinese sentence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from embeddings import tokenize
from services.matcher.concepts import concepts_of
from shared.events import ReasonData
from shared.models import Entity, Mandate, Need, Pitch, entity_text
from shared.regions import region_covers as _region_covers
from shared.taxonomy import fold as taxonomy_fold
from shared.taxonomy import load_taxonomy

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

# DOMAIN.md: how each resource element becomes value for a technology.
ELEMENT_VALUE = {
    "environment": ("environment becomes an input", "环境资源化"),
    "location": ("location becomes a hub", "区位枢纽化"),
    "people": ("skilled people attract the technology", "人力价值化"),
    "technology_base": ("local know-how becomes a platform", "技术平台化"),
    "industry_base": ("an existing chain links to a new one", "产业链条化"),
}
TRANSFER_MODE = {
    "migration": ("technology migration", "技术迁移"),
    "translation": ("technology translation", "技术平移"),
    "leap": ("technology leap", "技术跃升"),
}
EARLY_STAGES = {"seed", "angel", "pre_a"}

# Structured rules differ in how much they say about fit; the average is weighted.
RULE_WEIGHTS = {
    "sector_overlap": 2.0,
    "chain_link": 2.0,
    "element_fit": 1.0,
    "needs_offerings": 1.0,
    "ticket_fit": 1.0,
    "region": 1.0,
    "reinvestment": 1.0,
    "risk_appetite": 0.5,
    "co_investment": 0.5,
}


@dataclass(frozen=True)
class Weights:
    # Defaults chosen by `salon bench matching --tune` (see README); settings override them.
    dense: float = 0.10
    lexical: float = 0.40
    structured: float = 0.75
    activity: float = 0.10
    dense_cjk_reliability: float = 0.25


@dataclass(frozen=True)
class Activity:
    """What a fund or region did on the platform: deals/landings recorded, and how recently."""

    deals: int = 0
    last_deal_days_ago: int | None = None

    def prior(self) -> float:
        """In [0,1]: grows with the log of deals, decays with a one-year half-life."""
        if self.deals <= 0:
            return 0.0
        volume = min(1.0, math.log1p(self.deals) / math.log1p(50))
        recency = 0.5 ** ((self.last_deal_days_ago or 0) / 365)
        return volume * recency


@dataclass
class Scored:
    score: float
    components: dict[str, float]
    reasons: list[ReasonData]
    gated: bool = False
    matched_terms: list[str] = field(default_factory=list)


def is_chinese(text: str) -> bool:
    return len(CJK.findall(text)) >= max(3, len(text) // 20)


@lru_cache(maxsize=4096)
def _is_chinese_text(text: str) -> bool:
    return is_chinese(text)  # asked for the subject's text once per candidate: cached


def rescale_dense(cosine: float) -> float:
    """MiniLM-style cosines: ~0.1 for unrelated text, 0.7+ for paraphrases."""
    return min(1.0, max(0.0, (cosine - 0.15) / 0.6))


def pair_kind(kind_a: str, kind_b: str) -> str:
    order = {"pitch": 0, "mandate": 1, "need": 2}
    first, second = sorted((kind_a, kind_b), key=order.__getitem__)
    return f"{first}-{second}"


@lru_cache(maxsize=8192)
def _tokens(text: str) -> frozenset[str]:
    return frozenset(tokenize(text))


@lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """`shared.taxonomy.fold` with a cache: ranking folds the same subject and counterpart
    texts (mostly short labels) many times."""
    return taxonomy_fold(text)


@lru_cache(maxsize=4096)
def _exact_code(label: str) -> str | None:
    return load_taxonomy().exact_code(label)  # folds the label (OpenCC) on every call


@lru_cache(maxsize=16384)
def region_covers(scope: str, place: str) -> bool:
    """`shared.regions.region_covers`, cached: it folds both texts (OpenCC) on every call,
    and ranking asks about the same few regions for every candidate."""
    return _region_covers(scope, place)


def concept_overlap(subject_text: str, counterpart_text: str) -> tuple[float, list[str]]:
    """Cosine of the two texts' concept sets, and the counterpart's words for the shared ones.

    The cross-language half of the lexical signal: BM25 sees no overlap between 石墨负极 and
    "graphite anode", the glossary does."""
    mine, theirs = concepts_of(subject_text), concepts_of(counterpart_text)
    if not mine or not theirs:
        return 0.0, []
    common = sorted(mine.keys() & theirs.keys())
    return len(common) / math.sqrt(len(mine) * len(theirs)), [theirs[concept] for concept in common]


def _overlap(phrase: str, text_tokens: frozenset[str]) -> tuple[float, list[str]]:
    """Share of the phrase's tokens found in the text's tokens, and which (longest first)."""
    wanted = _tokens(phrase)
    if not wanted:
        return 0.0, []
    found = sorted(wanted & text_tokens, key=lambda token: (-len(token), token))
    return len(found) / len(wanted), found


def _reason(*, rule: str, passed: bool, contribution: float, detail: str, detail_zh: str) -> ReasonData:
    """A ReasonData built without validation: every field is typed here, and ranking builds
    about ten per candidate, ~300 candidates per event."""
    # bool()/float(): a numpy value would otherwise reach the JSON serialiser unconverted.
    return ReasonData.model_construct(
        rule=rule, passed=bool(passed), contribution=float(contribution), detail=detail, detail_zh=detail_zh
    )


Describe = Callable[[], tuple[str, str]]  # → (English, Chinese) sentence of a rule's outcome


class _Rules:
    """Collects structured rule outcomes: each a score in [0,1] and a bilingual reason.

    Without `explain` only the scores and gates are kept: ranking scores ~300 candidates per
    event and keeps 20, so the sentences (`describe`) are written for the kept ones only."""

    def __init__(self, *, explain: bool = True) -> None:
        self.explain = explain
        self.scores: list[tuple[float, float]] = []  # (value, rule weight)
        self.reasons: list[ReasonData] = []
        self.gated = False

    def soft(self, rule: str, value: float, describe: Describe) -> None:
        self.scores.append((value, RULE_WEIGHTS.get(rule, 1.0)))
        if self.explain:
            detail, detail_zh = describe()
            self.reasons.append(
                _reason(
                    rule=rule, passed=value >= 0.5, contribution=round(value, 3), detail=detail, detail_zh=detail_zh
                )
            )

    def gate(self, rule: str, passed: bool, describe: Describe) -> None:
        if not passed:
            self.gated = True
        if self.explain:
            detail, detail_zh = describe()
            self.reasons.append(_reason(rule=rule, passed=passed, contribution=0.0, detail=detail, detail_zh=detail_zh))

    @property
    def value(self) -> float:
        total = sum(weight for _, weight in self.scores)
        return sum(value * weight for value, weight in self.scores) / total if total else 0.0


def _sector_rule(rules: _Rules, a: Entity, b: Entity) -> None:
    codes_a, codes_b = set(a.sector_codes), set(b.sector_codes)
    if not codes_a or not codes_b:
        rules.soft("sector_overlap", 0.0, lambda: ("sectors not recognised in the taxonomy", "行业未能识别"))
        return
    common = sorted(codes_a & codes_b)
    if not common:
        rules.soft("sector_overlap", 0.0, lambda: ("no sector in common", "无共同行业"))
        return

    def describe() -> tuple[str, str]:
        sectors = load_taxonomy().sectors
        return (
            "sectors in common: " + ", ".join(sectors[code].en for code in common),
            "共同行业：" + "、".join(sectors[code].zh for code in common),
        )

    rules.soft("sector_overlap", len(common) / min(len(codes_a), len(codes_b)), describe)


def _excluded_by(
    mandate: Mandate, pitch: Pitch, pitch_tokens: frozenset[str] | None = None, pitch_text: str | None = None
) -> str | None:
    """The mandate's declared exclusion that applies to the pitch.

    An exclusion names a whole sector ("房地产") or a narrower segment ("consumer toy drones",
    "芯片分销贸易"). Only the first excludes by sector code; a segment excludes a pitch whose text
    carries the phrase or most (two thirds) of its words, so excluding toy drones leaves eVTOL
    makers in.
    """
    if not mandate.exclusions:
        return None
    pitch_text = pitch_text if pitch_text is not None else entity_text(pitch)
    folded = fold(pitch_text)
    if pitch_tokens is None:
        pitch_tokens = _tokens(pitch_text)
    for exclusion in mandate.exclusions:
        term = fold(exclusion)
        if not term:
            continue
        if f" {term} " in f" {folded} " if term.isascii() else term in folded:
            return exclusion
        code = _exact_code(exclusion)
        if code and code in pitch.sector_codes:
            return exclusion
        words = _tokens(exclusion)
        if len(words) >= 2 and 3 * len(words & pitch_tokens) >= 2 * len(words):
            return exclusion
    return None


def _money(amount: float, currency: str) -> str:
    return f"{amount:,.0f} {currency}"


def _pitch_mandate(
    rules: _Rules, pitch: Pitch, mandate: Mandate, pitch_tokens: frozenset[str] | None, pitch_text: str | None
) -> None:
    _sector_rule(rules, pitch, mandate)
    stage_ok = pitch.stage in mandate.stages
    rules.gate(
        "stage",
        stage_ok,
        lambda: (
            f"stage {pitch.stage} {'is' if stage_ok else 'is not'} among the fund's stages "
            f"({', '.join(mandate.stages)})",
            f"项目阶段 {pitch.stage} {'符合' if stage_ok else '不在'}基金投资阶段（{'、'.join(mandate.stages)}）",
        ),
    )
    ask = pitch.funding_ask * TO_CNY.get(pitch.currency, 1.0)
    low = mandate.ticket_min * TO_CNY.get(mandate.currency, 1.0)
    high = mandate.ticket_max * TO_CNY.get(mandate.currency, 1.0)

    def describe_ticket() -> tuple[str, str]:
        ticket = f"{_money(mandate.ticket_min, mandate.currency)}–{_money(mandate.ticket_max, mandate.currency)}"
        asked = _money(pitch.funding_ask, pitch.currency)
        return f"ask {asked} vs ticket {ticket}", f"融资需求 {asked}，基金单笔 {ticket}"

    # A fund often takes part of a round: an ask up to 3× the max ticket is a syndicate, not a miss.
    near = low / 3 <= ask <= high * 3
    rules.gate("ticket_size", near, describe_ticket)
    if near:
        within = low <= ask <= high
        rules.soft(
            "ticket_fit",
            1.0 if within else 0.4,
            lambda: (
                "ask within the ticket range" if within else "ask outside the ticket range: needs a syndicate",
                "融资额在单笔投资范围内" if within else "融资额超出单笔范围，需要联合投资",
            ),
        )
    excluded = _excluded_by(mandate, pitch, pitch_tokens, pitch_text)
    rules.gate(
        "exclusions",
        excluded is None,
        lambda: (
            f"falls under the declared exclusion '{excluded}'" if excluded else "no declared exclusion applies",
            f"属于基金明确排除的「{excluded}」" if excluded else "不涉及基金的排除领域",
        ),
    )
    if mandate.regions:
        inside = any(region_covers(region, pitch.region) for region in mandate.regions)
        rules.soft(
            "region",
            1.0 if inside else 0.0,
            lambda: (
                f"{pitch.region} {'is' if inside else 'is not'} in the fund's regions",
                f"{pitch.region}{'在' if inside else '不在'}基金投资地域内",
            ),
        )
    if mandate.reinvestment_region:
        region = mandate.reinvestment_region
        local = region_covers(region, pitch.region)
        relocation = mandate.relocation_required and not local
        rules.soft(
            "reinvestment",
            1.0 if local else 0.3,
            lambda: (
                f"project is in the 返投 region {region}"
                if local
                else f"fund requires reinvestment (返投) in {region}"
                + ("; moving the registered address is a condition" if relocation else ""),
                f"项目位于返投地域{region}"
                if local
                else f"基金要求返投{region}" + ("，且以迁移注册地为条件" if relocation else ""),
            ),
        )
    if pitch.stage in EARLY_STAGES:
        appetite = {"high": 1.0, "medium": 0.6, "low": 0.2}.get(mandate.loss_tolerance, 0.6)
        rules.soft(
            "risk_appetite",
            appetite,
            lambda: (
                f"early-stage project; fund's loss tolerance is {mandate.loss_tolerance}",
                "早期项目；基金风险容忍度"
                + {"high": "高（耐心资本）", "medium": "中", "low": "低"}.get(mandate.loss_tolerance, "中"),
            ),
        )


def _concept_share(phrase: str, text: str) -> tuple[float, list[str]]:
    """Share of the glossary concepts a phrase names that the text names too (any language)."""
    wanted = concepts_of(phrase)
    if not wanted:
        return 0.0, []
    present = concepts_of(text)
    common = sorted(wanted.keys() & present.keys())
    return len(common) / len(wanted), [present[concept] for concept in common]


def _phrase_fit(phrase: str, pitch_tokens: frozenset[str], pitch_text: str) -> tuple[float, list[str]]:
    """How much of a need's phrase the pitch covers: by shared words, or by shared glossary
    concepts when that is stronger (it links an English pitch and a Chinese phrase)."""
    share, found = _overlap(phrase, pitch_tokens)
    concepts, terms = _concept_share(phrase, pitch_text)
    return (concepts, terms) if concepts > share else (share, found)


def _chain_link_rule(rules: _Rules, pitch_tokens: frozenset[str], pitch_text: str, need: Need) -> None:
    """Does the project make what the region's chain is missing?"""
    link = need.missing_link
    if not link:
        return
    share, found = _phrase_fit(link, pitch_tokens, pitch_text)
    rules.soft(
        "chain_link",
        min(1.0, share * 1.5),
        lambda: (
            f"the project supplies the missing link '{link}' ({', '.join(found[:4])})"
            if share >= 0.34
            else f"the missing link '{link}' is not what the project makes",
            f"项目补上缺失环节「{link}」（{'、'.join(found[:4])}）"
            if share >= 0.34
            else f"项目与缺失环节「{link}」关联弱",
        ),
    )


def _element_rule(rules: _Rules, pitch: Pitch, pitch_tokens: frozenset[str], pitch_text: str, need: Need) -> None:
    """DOMAIN.md's element × technology model: which local element gives the technology value."""
    best: tuple[float, dict[str, str]] | None = None
    for element in need.resource_elements:
        share, _ = _phrase_fit(element.get("description", ""), pitch_tokens, pitch_text)
        if best is None or share > best[0]:
            best = (share, element)
    if best is None or best[0] == 0:
        return
    share, element = best

    def describe() -> tuple[str, str]:
        en, zh = ELEMENT_VALUE.get(element.get("type", ""), ("a local element", "要素"))
        mode = TRANSFER_MODE.get(pitch.technology_transfer or "")
        description = element.get("description", "")
        return (
            f"{zh} ({en}): '{description}' fits the technology" + (f" by {mode[0]}" if mode else ""),
            f"{zh}：「{description}」与项目技术契合" + (f"（{mode[1]}）" if mode else ""),
        )

    rules.soft("element_fit", min(1.0, share * 2), describe)


def _pitch_need(
    rules: _Rules, pitch: Pitch, need: Need, pitch_tokens: frozenset[str] | None, pitch_text: str | None
) -> None:
    _sector_rule(rules, pitch, need)
    pitch_text = pitch_text if pitch_text is not None else entity_text(pitch)
    if pitch_tokens is None:
        pitch_tokens = _tokens(pitch_text)
    _chain_link_rule(rules, pitch_tokens, pitch_text, need)
    _element_rule(rules, pitch, pitch_tokens, pitch_text, need)
    wanted = set(pitch.needs)
    offered = set(need.offerings)
    satisfied = sorted(n for n in wanted if NEED_TO_OFFERINGS.get(n, set()) & offered)
    if wanted:
        rules.soft(
            "needs_offerings",
            len(satisfied) / len(wanted),
            lambda: (
                "the region offers what the project needs: " + ", ".join(satisfied)
                if satisfied
                else "the region offers none of the project's needs",
                "地方可提供项目所需：" + "、".join(satisfied) if satisfied else "地方供给与项目需求不符",
            ),
        )
    local = region_covers(need.region, pitch.region)
    rules.soft(
        "region",
        1.0 if local else 0.5,
        lambda: (
            "the project is already in the region (a local chain link)"
            if local
            else "the project would move or expand into the region (technology migration)",
            "项目已在本地，可就地补链" if local else "项目需迁入或在当地设立分支（技术迁移）",
        ),
    )


def _mandate_need(rules: _Rules, mandate: Mandate, need: Need) -> None:
    _sector_rule(rules, mandate, need)
    scopes = [*mandate.regions, *([mandate.reinvestment_region] if mandate.reinvestment_region else [])]
    covered = not scopes or any(region_covers(scope, need.region) for scope in scopes)
    rules.soft(
        "region",
        1.0 if covered else 0.2,
        lambda: (
            f"the fund {'invests' if covered else 'does not invest'} in {need.region}",
            f"基金{'覆盖' if covered else '不覆盖'}{need.region}",
        ),
    )
    if "co_investment" in need.offerings:
        rules.soft("co_investment", 1.0, lambda: ("the region co-invests through its own fund", "地方基金可跟投"))


def structured_fit(
    a: Entity,
    b: Entity,
    *,
    known_tokens: Mapping[str, frozenset[str]] | None = None,
    known_texts: Mapping[str, str] | None = None,
    explain: bool = True,
) -> _Rules:
    """The structured rules for a pair. `known_tokens` (entity id → the tokens of its current
    text, e.g. from the BM25 index) spares tokenising a counterpart's text again; `known_texts`
    (entity id → `entity_text`) spares building it again for every rule. Without `explain`,
    the rules' scores and gates only (no reasons)."""
    rules = _Rules(explain=explain)
    pitch = next((e for e in (a, b) if isinstance(e, Pitch)), None)
    mandate = next((e for e in (a, b) if isinstance(e, Mandate)), None)
    need = next((e for e in (a, b) if isinstance(e, Need)), None)
    if pitch and mandate:
        _pitch_mandate(rules, pitch, mandate, (known_tokens or {}).get(pitch.id), (known_texts or {}).get(pitch.id))
    elif pitch and need:
        _pitch_need(rules, pitch, need, (known_tokens or {}).get(pitch.id), (known_texts or {}).get(pitch.id))
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
    activity: Activity | None = None,
    counterpart_tokens: frozenset[str] | None = None,
    rules: _Rules | None = None,
    texts: tuple[str, str] | None = None,
) -> Scored:
    """Combine the signals for one pair; `lexical` is already normalised to [0,1].

    `counterpart_tokens`: the tokens of the counterpart's current text, if known; `rules`: the
    pair's `structured_fit`, if already computed; `texts`: the two `entity_text`s, if known.
    Rules computed without `explain` give a score without reasons (ranking's first pass)."""
    subject_text, counterpart_text = texts or (entity_text(subject), entity_text(counterpart))
    chinese = _is_chinese_text(subject_text) or _is_chinese_text(counterpart_text)
    reliability = weights.dense_cjk_reliability if chinese else 1.0
    dense = rescale_dense(cosine)
    if rules is None:
        known = {counterpart.id: counterpart_tokens} if counterpart_tokens is not None else None
        rules = structured_fit(subject, counterpart, known_tokens=known)
    structured = rules.value
    prior = activity.prior() if activity is not None else 0.0
    w_dense = weights.dense * reliability
    w_activity = weights.activity if activity is not None else 0.0
    total = w_dense + weights.lexical + weights.structured + w_activity
    score = (w_dense * dense + weights.lexical * lexical + weights.structured * structured + w_activity * prior) / total
    components = {"dense": round(dense, 4), "lexical": round(lexical, 4), "structured": round(structured, 4)}
    if activity is not None:
        components["activity"] = round(prior, 4)
    if not rules.explain:
        return Scored(
            score=0.0 if rules.gated else round(score, 4), components=components, reasons=[], gated=rules.gated
        )
    terms = matched_terms[:8]
    reasons = [
        _reason(
            rule="dense_similarity",
            passed=dense >= 0.5,
            contribution=round(w_dense * dense / total, 4),
            detail=f"embedding cosine {cosine:.2f}"
            + (" (down-weighted: Chinese text, English-only model)" if chinese and reliability < 1 else ""),
            detail_zh=f"语义向量相似度 {cosine:.2f}" + ("（中文文本，已降权）" if chinese and reliability < 1 else ""),
        ),
        _reason(
            rule="lexical_similarity",
            passed=lexical >= 0.2,
            contribution=round(weights.lexical * lexical / total, 4),
            detail="shared terms: " + ", ".join(terms) if terms else "no shared terms",
            detail_zh="共同关键词：" + "、".join(terms) if terms else "无共同关键词",
        ),
        _reason(
            rule="structured_fit",
            passed=structured >= 0.5,
            contribution=round(weights.structured * structured / total, 4),
            detail=f"{sum(r.passed for r in rules.reasons)}/{len(rules.reasons)} rules passed",
            detail_zh=f"结构化规则通过 {sum(r.passed for r in rules.reasons)}/{len(rules.reasons)} 项",
        ),
    ]
    if activity is not None and w_activity:
        reasons.append(
            _reason(
                rule="activity",
                passed=prior >= 0.3,
                contribution=round(w_activity * prior / total, 4),
                detail=f"{activity.deals} deals recorded on the platform",
                detail_zh=f"平台记录成交 {activity.deals} 笔",
            )
        )
    reasons.extend(rules.reasons)
    return Scored(
        score=0.0 if rules.gated else round(score, 4),
        components=components,
        reasons=reasons,
        gated=rules.gated,
        matched_terms=matched_terms,
    )


def gated(rules: _Rules) -> Scored:
    """A pair a hard gate rules out: score 0, its rules as the reasons, no signals computed."""
    return Scored(score=0.0, components={"structured": round(rules.value, 4)}, reasons=rules.reasons, gated=True)


SIGNAL_RULES = {"dense_similarity", "lexical_similarity", "structured_fit", "activity", "matched_passage"}
SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|(?<=\.)\s+|\n")


def quote_passage(scored: Scored, counterpart: Entity) -> Scored:
    """Add the counterpart's passage where the shared terms are. Only for proposals that are
    kept: it folds every sentence through OpenCC, too slow for every retrieved candidate."""
    passage = best_passage(entity_text(counterpart), scored.matched_terms)
    if passage:
        reason = ReasonData(rule="matched_passage", passed=True, contribution=0.0, detail=passage, detail_zh=passage)
        scored.reasons.insert(3, reason)
    return scored


def best_passage(text: str, terms: list[str], max_chars: int = 160) -> str:
    """The counterpart's sentence that holds the most shared terms: where the fit shows."""
    if not terms:
        return ""
    folded_terms = [fold(term) for term in terms]
    best, hits = "", 0
    for sentence in SENTENCE_END.split(text):
        folded = fold(sentence)
        count = sum(term in folded for term in folded_terms)
        if count > hits:
            best, hits = sentence.strip(), count
    return best[:max_chars]


def explain(scored: Scored, counterpart_title: str, *, chinese: bool) -> str:
    """One readable sentence in the reader's language: the score, shared terms, top rules."""
    return explain_reasons(scored.score, scored.reasons, scored.matched_terms, counterpart_title, chinese=chinese)


def explain_reasons(
    score: float, reasons: list[ReasonData], matched_terms: list[str], counterpart_title: str, *, chinese: bool
) -> str:
    passed = [r for r in reasons if r.passed and r.rule not in SIGNAL_RULES]
    terms = matched_terms[:5]
    if chinese:
        parts = [f"与「{counterpart_title}」匹配度 {score:.2f}"]
        if terms:
            parts.append("共同关键词：" + "、".join(terms))
        parts.extend(r.detail_zh or r.detail for r in passed[:3])
        return "；".join(parts) + "。"
    parts = [f"Fits '{counterpart_title}' with score {score:.2f}"]
    if terms:
        parts.append("shared terms: " + ", ".join(terms))
    parts.extend(r.detail for r in passed[:3])
    return "; ".join(parts) + "."
