"""Lexical (BM25) retrieval for mixed Chinese / English texts.

Why this exists: the packaged embedding model (all-MiniLM-L6-v2) is English-only
and close to noise on Chinese, so matching Chinese pitches, mandates and needs
relies on this keyword index. Both simplified and traditional Chinese are folded
to simplified before segmentation, so 石墨負極 and 石墨负极 meet.

Pipeline: `normalize_text` (NFKC, t2s, lower-case) -> `tokenize` (jieba search
mode on CJK runs, a regex on everything else, stopwords removed, naive English
plural stemming) -> `BM25Index` (inverted index, incremental statistics).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import unicodedata
from array import array
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache
from typing import Any

import jieba
import numpy as np
from opencc import OpenCC

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_DOMAIN_TERMS",
    "STOPWORDS",
    "BM25Index",
    "add_domain_terms",
    "normalize_text",
    "to_simplified",
    "tokenize",
    "tokenizer_signature",
]

# Domain vocabulary that jieba's general dictionary would split apart (e.g. 石墨负极 ->
# 石墨 / 负极). Adding them keeps the whole term as a token; search mode still emits
# the sub-words, so a query for just 负极 also matches. Simplified forms only:
# text is converted to simplified before segmentation.
DEFAULT_DOMAIN_TERMS: tuple[str, ...] = (
    # batteries & energy
    "石墨负极", "硅碳负极", "负极材料", "正极材料", "磷酸铁锂", "三元锂", "固态电池",
    "半固态电池", "钠离子电池", "锂电池", "动力电池", "储能电池", "新型储能", "氢能",
    "燃料电池", "光伏组件", "钙钛矿", "绿电", "碳中和", "虚拟电厂",
    # low-altitude economy & aerospace
    "低空经济", "无人机", "电动垂直起降", "飞行汽车", "通用航空", "商业航天",
    "卫星", "卫星互联网", "遥感卫星", "火箭发动机",
    # computing & electronics
    "数据中心", "智算中心", "算力", "液冷", "人工智能", "大模型", "具身智能",
    "人形机器人", "工业机器人", "集成电路", "芯片设计", "碳化硅", "氮化镓",
    "工业互联网", "量子计算", "量子通信", "智能网联汽车", "自动驾驶", "新能源汽车",
    # life sciences & materials
    "生物医药", "创新药", "医疗器械", "合成生物", "新材料", "高端装备",
    # investment & industrial policy
    "专精特新", "小巨人", "返投", "补链", "强链", "延链", "招商引资", "产业基金",
    "引导基金", "天使轮", "新质生产力", "产业链", "科创板", "北交所", "孵化器",
)  # fmt: skip

# Small built-in stopword set: function words plus boilerplate that appears in almost
# every pitch (公司 / 项目 / 企业 / company ...) and would only add noise to BM25.
_ZH_STOPWORDS = frozenset(
    (
        "的", "了", "和", "与", "及", "等", "在", "是", "为", "我们", "公司", "项目", "企业", "有限", "有限公司",
        "股份有限公司", "有限责任公司", "责任", "股份", "以及", "及其", "或", "或者", "并", "并且", "而", "也", "都",
        "就", "对", "将", "把", "被", "从", "到", "于", "其", "这", "那", "该", "此", "之", "个", "一个",
        "一", "有", "我", "我司", "本", "进行", "通过", "相关", "主要", "已", "已经", "可", "可以", "能够", "以",
        "向", "由", "等等", "方面", "以上", "以下", "其中", "如", "如果", "但", "但是", "还", "更", "很", "非常",
        "上", "中", "下", "着", "过", "要", "会", "让", "所", "各", "每",
    )
)  # fmt: skip
_EN_STOPWORDS = frozenset(
    (
        "a", "an", "the", "of", "and", "or", "for", "to", "in", "on", "at", "by", "with",
        "from", "as", "is", "are", "was", "were", "be", "been", "being", "this", "that",
        "these", "those", "it", "its", "our", "we", "you", "your", "they", "their", "them",
        "he", "she", "his", "her", "i", "me", "my", "will", "would", "can", "could",
        "should", "may", "might", "shall", "do", "does", "did", "has", "have", "had",
        "not", "no", "but", "if", "than", "then", "so", "such", "into", "over", "under",
        "about", "also", "all", "any", "each", "per", "via", "more", "most", "other",
        "some", "which", "who", "whom", "what", "when", "where", "how", "there", "here",
        "up", "out", "inc", "ltd", "co", "llc", "corp", "company",
    )
)  # fmt: skip
STOPWORDS: frozenset[str] = _ZH_STOPWORDS | _EN_STOPWORDS

# CJK ideograph ranges for a regex character class (basic, extension A,
# compatibility, extensions B+). Kana/Hangul are left to the latin-side regex, which
# ignores them.
CJK_CHAR_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_CJK_RUN_SPLIT_RE = re.compile(f"([{CJK_CHAR_RANGES}]+)")
_CJK_ONLY_RE = re.compile(f"^[{CJK_CHAR_RANGES}]+$")
# Latin words and numbers; hyphenated compounds ("pre-a", "lithium-ion") and decimals
# ("3.5") stay whole. Letters with diacritics are included so "café" is one word.
_WORD = "[0-9a-z\u00c0-\u024f]+"
_LATIN_TOKEN_RE = re.compile(rf"\d+(?:\.\d+)+|{_WORD}(?:-{_WORD})*")

_t2s_converter: Any = None
_jieba_tokenizer: Any = None
_init_lock = threading.Lock()
_added_terms: set[str] = set()  # by add_domain_terms: they change how text is tokenised
TOKENIZER_VERSION = 1  # bump when tokenisation rules change: snapshots of tokens go stale


def _t2s() -> Any:
    """The traditional->simplified converter, created once (dictionary load)."""
    global _t2s_converter
    if _t2s_converter is None:
        with _init_lock:
            if _t2s_converter is None:
                _t2s_converter = OpenCC("t2s")
    return _t2s_converter


def _segmenter() -> Any:
    """A private, initialised jieba tokenizer holding the default domain terms.

    Private (not jieba's global default) so our domain words neither leak into nor
    get altered by other jieba users in the process.
    """
    global _jieba_tokenizer
    if _jieba_tokenizer is None:
        with _init_lock:
            if _jieba_tokenizer is None:
                # jieba logs dictionary loading at DEBUG on its own logger; keep it quiet.
                jieba.setLogLevel(logging.WARNING)
                segmenter = jieba.Tokenizer()
                segmenter.initialize()
                for term in DEFAULT_DOMAIN_TERMS:
                    segmenter.add_word(term)
                _jieba_tokenizer = segmenter
    return _jieba_tokenizer


_t2s_changing_chars: frozenset[str] | None = None


def _t2s_changing() -> frozenset[str] | None:
    """Characters that some t2s dictionary entry would change (traditional forms).

    A clause holding none of them comes out of the converter unchanged: every entry that
    rewrites text contains one of them, and entries mapping to themselves change nothing.
    None if the converter's tables cannot be read (then every clause is converted).
    """
    global _t2s_changing_chars
    if _t2s_changing_chars is None:
        converter = _t2s()
        changing: set[str] = set()
        try:
            for group in converter._dict_chain_data:
                for _max_len, _min_len, table in group:
                    for key, value in table.items():
                        first = value.split(" ")[0]  # the converter uses the first candidate
                        if first == key:
                            continue
                        if len(first) == len(key):
                            changing.update(a for a, b in zip(key, first, strict=True) if a != b)
                        else:
                            changing.update(key)
            converter.split_chars_re.split("")  # the clause splitter `to_simplified` mirrors
        except (AttributeError, TypeError, ValueError):
            logger.warning("cannot read the OpenCC tables; converting every clause")
            return None
        _t2s_changing_chars = frozenset(changing)
    return _t2s_changing_chars


def to_simplified(text: str) -> str:
    """Exactly OpenCC's t2s conversion, faster.

    The converter (pure Python) splits text into clauses at punctuation and converts each
    on its own; here only clauses that hold a character it would change go through it, so
    simplified text, the common case, costs one set check per clause.
    """
    converter = _t2s()
    changing = _t2s_changing()
    if changing is None:
        return str(converter.convert(text))
    if changing.isdisjoint(text):
        return text
    parts = converter.split_chars_re.split(text)
    for position in range(0, len(parts), 2):  # even positions: clauses; odd: separators
        if not changing.isdisjoint(parts[position]):
            parts[position] = converter._convert(parts[position], converter._dict_chain_data)
    return "".join(parts)


def normalize_text(text: str) -> str:
    """NFKC (full-width -> ASCII), traditional -> simplified Chinese, lower-case."""
    normalized = unicodedata.normalize("NFKC", text)
    # Skip the converter for text without any CJK character.
    if _CJK_RUN_SPLIT_RE.search(normalized):
        normalized = to_simplified(normalized)
    return normalized.lower()


def add_domain_terms(terms: Iterable[str]) -> None:
    """Teach the segmenter extra domain words so they survive as whole tokens.

    Call at startup, before indexing: documents already in a `BM25Index` keep the
    tokens they were indexed with. Terms are normalised (traditional forms are fine);
    terms that are not purely CJK are skipped with a warning, because latin text never
    reaches jieba (it is split by the regex before segmentation).
    """
    segmenter = _segmenter()
    for raw_term in terms:
        term = normalize_text(raw_term.strip())
        if not term:
            continue
        if not _CJK_ONLY_RE.match(term):
            logger.warning("domain term %r is not purely CJK; skipped", raw_term)
            continue
        with _init_lock:
            segmenter.add_word(term)
            _added_terms.add(term)
    _forget_tokenisations()  # cached segmentations predate the new words


def text_fingerprint(text: str) -> int:
    """64 bits of BLAKE2b: equal fingerprints ⇒ (practically) the same text, same tokens."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def tokenizer_signature() -> str:
    """Changes whenever `tokenize` may split a text differently: stored tokens are then stale."""
    with _init_lock:
        added = sorted(_added_terms)
    material = json.dumps([TOKENIZER_VERSION, DEFAULT_DOMAIN_TERMS, sorted(STOPWORDS), added], ensure_ascii=False)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


def _stem(word: str) -> str:
    """Naive English plural folding: batteries -> battery, anodes -> anode."""
    if len(word) <= 3 or not word.isalpha() or not word.endswith("s"):
        return word
    if word.endswith(("ss", "us", "is")):  # glass, campus, analysis
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    return word[:-1]


def _keep(token: str) -> bool:
    # Bare numbers ("20", "3.5") say nothing about fit; "5g" or "28nm" do and stay.
    return bool(token) and token not in STOPWORDS and not token.replace(".", "").isdigit()


def _latin_tokens(segment: str) -> list[str]:
    tokens: list[str] = []
    for match in _LATIN_TOKEN_RE.finditer(segment):
        raw = match.group()
        if "-" not in raw:
            word = _stem(raw)
            if len(word) > 1 and _keep(raw) and _keep(word):
                tokens.append(word)
            continue
        # Compound: keep the whole ("pre-a", "lithium-ion") and its meaningful parts.
        parts = [_stem(part) for part in raw.split("-")]
        tokens.append("-".join(parts))
        tokens.extend(part for part in parts if len(part) > 1 and _keep(part))
    return tokens


@lru_cache(maxsize=16384)
def _cjk_tokens(run: str) -> tuple[str, ...]:
    # Search mode emits the whole word plus its dictionary sub-words (石墨负极 ->
    # 石墨, 负极, 石墨负极), so partial queries still match. Cached per run (a clause
    # between punctuation): jieba is the slow part, and boilerplate clauses repeat.
    words = _segmenter().lcut_for_search(run)
    return tuple(word for word in (w.strip() for w in words) if _keep(word))


def tokenize(text: str) -> list[str]:
    """Normalise and split text into BM25 terms, in text order (duplicates kept)."""
    tokens: list[str] = []
    # re.split with a capturing group alternates: non-CJK, CJK run, non-CJK, ...
    for position, segment in enumerate(_CJK_RUN_SPLIT_RE.split(normalize_text(text))):
        if not segment:
            continue
        if position % 2:
            tokens.extend(_cjk_tokens(segment))
        else:
            tokens.extend(_latin_tokens(segment))
    return tokens


@lru_cache(maxsize=256)
def _query_terms(text: str) -> Counter[str]:
    """A query's term counts. Ranking one entity asks for them many times (search, scores,
    self-score, matched terms per candidate): tokenised once. Callers must not mutate it."""
    return Counter(tokenize(text))


def _forget_tokenisations() -> None:
    _cjk_tokens.cache_clear()
    _query_terms.cache_clear()


class _Postings:
    """One term's postings: (slot, tf) pairs in growable C arrays, read as numpy views.

    Entries of removed documents stay until the index compacts; their slots are dead.
    """

    __slots__ = ("slots", "tfs")

    def __init__(self) -> None:
        self.slots = array("q")
        self.tfs = array("d")


class BM25Index:
    """In-memory BM25 over an inverted index, keyed by our integer document ids.

    Statistics (document count, document frequencies, average length) are kept
    incrementally, so upserts and removals are O(document length) and scores always
    reflect the current corpus. Postings are numpy-readable arrays over dense document
    slots, so `search` scores every matching document with vector arithmetic (the same
    operations in the same order as the scalar formula, hence the same floats). All public
    methods are thread-safe.
    """

    def __init__(self, *, k1: float = 1.5, b: float = 0.75) -> None:
        if k1 < 0:
            raise ValueError(f"k1 must be >= 0, got {k1}")
        if not 0.0 <= b <= 1.0:
            raise ValueError(f"b must be in [0, 1], got {b}")
        self.k1 = k1
        self.b = b
        self._postings: dict[str, _Postings] = {}  # term -> entries (live and dead)
        self._df: dict[str, int] = {}  # term -> live documents holding it
        self._doc_term_freqs: dict[int, dict[str, int]] = {}
        self._doc_lengths: dict[int, int] = {}
        self._total_length = 0
        self._slot_of: dict[int, int] = {}  # doc id -> slot
        self._doc_of_slot = array("q")
        self._slot_lengths = array("d")  # -1.0 marks a dead slot
        self._dead_entries = 0
        self._live_entries = 0
        self._lock = threading.RLock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._doc_lengths)

    def __contains__(self, doc_id: object) -> bool:
        with self._lock:
            return doc_id in self._doc_lengths

    # -- mutation -----------------------------------------------------------------

    def add(self, doc_id: int, text: str) -> None:
        """Index `text` under `doc_id`, replacing any previous text for that id."""
        # Tokenise outside the lock: jieba is the slow part. (Through the query cache: a new
        # document was usually just ranked as a query.)
        self.add_terms(doc_id, _query_terms(text))

    def add_terms(self, doc_id: int, term_freqs: Mapping[str, int]) -> None:
        """Index an already tokenised document (term -> count), e.g. from a snapshot."""
        doc_id = int(doc_id)
        freqs = {term: int(tf) for term, tf in term_freqs.items() if tf > 0}
        with self._lock:
            self._remove_locked(doc_id)
            slot = len(self._doc_of_slot)
            self._slot_of[doc_id] = slot
            self._doc_of_slot.append(doc_id)
            length = sum(freqs.values())
            self._slot_lengths.append(float(length))
            for term, tf in freqs.items():
                postings = self._postings.get(term)
                if postings is None:
                    postings = self._postings[term] = _Postings()
                postings.slots.append(slot)
                postings.tfs.append(tf)
                self._df[term] = self._df.get(term, 0) + 1
            self._live_entries += len(freqs)
            self._doc_term_freqs[doc_id] = freqs
            self._doc_lengths[doc_id] = length
            self._total_length += length

    def documents(self) -> dict[int, Mapping[str, int]]:
        """Every document's term counts (for snapshots); the mappings are shared: read only."""
        with self._lock:
            return dict(self._doc_term_freqs)

    def terms(self, doc_id: int) -> frozenset[str] | None:
        """The distinct terms of a document, None if it is not indexed."""
        with self._lock:
            freqs = self._doc_term_freqs.get(int(doc_id))
            return frozenset(freqs) if freqs is not None else None

    def term_freqs(self, doc_id: int) -> dict[str, int] | None:
        """The indexed term counts of a document (a copy), None if it is not indexed."""
        with self._lock:
            freqs = self._doc_term_freqs.get(int(doc_id))
            return dict(freqs) if freqs is not None else None

    def remove(self, doc_id: int) -> bool:
        """Drop a document; returns False if it was not indexed."""
        with self._lock:
            return self._remove_locked(int(doc_id))

    def _remove_locked(self, doc_id: int) -> bool:
        term_freqs = self._doc_term_freqs.pop(doc_id, None)
        if term_freqs is None:
            return False
        for term in term_freqs:
            left = self._df[term] - 1
            if left:
                self._df[term] = left
                self._dead_entries += 1
            else:  # keep the vocabulary from growing with dead terms (and their dead entries)
                del self._df[term]
                self._dead_entries -= len(self._postings.pop(term).tfs) - 1
        self._total_length -= self._doc_lengths.pop(doc_id)
        self._slot_lengths[self._slot_of.pop(doc_id)] = -1.0
        self._live_entries -= len(term_freqs)
        if self._dead_entries > max(1000, self._live_entries):
            self._compact_locked()
        return True

    def _compact_locked(self) -> None:
        """Rebuild slots and postings from the live documents (after many removals)."""
        documents = list(self._doc_term_freqs.items())
        self._postings, self._df, self._slot_of = {}, {}, {}
        self._doc_of_slot, self._slot_lengths = array("q"), array("d")
        self._doc_term_freqs, self._doc_lengths = {}, {}
        self._total_length = self._live_entries = self._dead_entries = 0
        for doc_id, freqs in documents:
            self.add_terms(doc_id, freqs)

    # -- scoring ------------------------------------------------------------------

    def _idf_locked(self, term: str) -> float:
        doc_count = len(self._doc_lengths)
        df = self._df.get(term, 0)
        return math.log(1.0 + (doc_count - df + 0.5) / (df + 0.5))

    def _term_weight(self, tf: int, doc_length: int, avgdl: float) -> float:
        """The BM25 tf component (without idf)."""
        length_ratio = doc_length / avgdl if avgdl > 0 else 1.0
        return tf * (self.k1 + 1.0) / (tf + self.k1 * (1.0 - self.b + self.b * length_ratio))

    def _avgdl_locked(self) -> float:
        doc_count = len(self._doc_lengths)
        return self._total_length / doc_count if doc_count else 0.0

    def _slot_scores_locked(self, query_terms: Counter[str]) -> tuple[Any, Any]:
        """(score, touched) per slot: every document sharing a term with the query, scored
        with vector arithmetic. Dead slots may be touched; callers mask them out."""
        avgdl = self._avgdl_locked()
        # numpy views export the arrays' buffers, which then cannot grow: all are dropped
        # in `finally`, also when scoring fails, before anything appends again.
        lengths = slots = tfs = None
        try:
            lengths = np.frombuffer(self._slot_lengths, dtype=np.float64)
            scores = np.zeros(len(lengths))
            touched = np.zeros(len(lengths), dtype=bool)
            with np.errstate(divide="ignore", invalid="ignore"):  # dead slots: discarded by callers
                for term, query_tf in query_terms.items():
                    postings = self._postings.get(term)
                    if postings is None:
                        continue
                    idf = self._idf_locked(term)
                    slots = np.frombuffer(postings.slots, dtype=np.int64)
                    tfs = np.frombuffer(postings.tfs, dtype=np.float64)
                    ratio = lengths[slots] / avgdl if avgdl > 0 else 1.0
                    weight = tfs * (self.k1 + 1.0) / (tfs + self.k1 * (1.0 - self.b + self.b * ratio))
                    # A term repeated in the query counts once per occurrence (as in Lucene).
                    scores[slots] += query_tf * idf * weight
                    touched[slots] = True
            touched &= lengths >= 0.0
            return scores, touched
        finally:
            lengths = slots = tfs = None

    def _score_all_locked(self, query_terms: Counter[str], excluded: Collection[int]) -> tuple[Any, Any]:
        """(doc ids, scores) of every live document sharing a term with the query."""
        scores, touched = self._slot_scores_locked(query_terms)
        for doc_id in excluded:
            slot = self._slot_of.get(doc_id)
            if slot is not None:
                touched[slot] = False
        return self._hits_locked(scores, touched)

    def _hits_locked(self, scores: Any, touched: Any) -> tuple[Any, Any]:
        """(doc ids, scores) of the touched slots."""
        hit = np.flatnonzero(touched)
        doc_of_slot: Any = np.frombuffer(self._doc_of_slot, dtype=np.int64)
        try:
            return doc_of_slot[hit], scores[hit]  # fancy indexing copies
        finally:
            doc_of_slot = None

    @staticmethod
    def _top(doc_ids: Any, scores: Any, k: int) -> list[tuple[int, float]]:
        positive = scores > 0.0
        doc_ids, scores = doc_ids[positive], scores[positive]
        if len(scores) > k:  # keep the k best and anything tied with the k-th
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = scores >= kth
            doc_ids, scores = doc_ids[keep], scores[keep]
        order = np.lexsort((doc_ids, -scores))[:k]
        return [(int(doc_ids[i]), float(scores[i])) for i in order]

    def search(self, query: str, k: int, *, exclude: Collection[int] = ()) -> list[tuple[int, float]]:
        """Top-k (doc_id, score) best first; only documents sharing a term (score > 0).

        Ties are broken by ascending doc_id so results are deterministic.
        """
        if k <= 0:
            return []
        query_terms = _query_terms(query)
        if not query_terms:
            return []
        excluded = {int(doc_id) for doc_id in exclude}
        with self._lock:
            doc_ids, scores = self._score_all_locked(query_terms, excluded)
        return self._top(doc_ids, scores, k)

    def search_and_score(
        self, query: str, k: int, doc_ids: Iterable[int]
    ) -> tuple[list[tuple[int, float]], dict[int, float]]:
        """`search(query, k)` and `scores(query, doc_ids)` from one pass over the postings
        (the same floats as each alone): a matcher wants the top hits and the scores of the
        candidates other retrievers found."""
        wanted = [int(doc_id) for doc_id in doc_ids]
        query_terms = _query_terms(query)
        if not query_terms:
            return [], dict.fromkeys(wanted, 0.0)
        with self._lock:
            scores, touched = self._slot_scores_locked(query_terms)
            requested = {}
            for doc_id in wanted:
                slot = self._slot_of.get(doc_id)
                requested[doc_id] = float(scores[slot]) if slot is not None and touched[slot] else 0.0
            hit_ids, hit_scores = self._hits_locked(scores, touched)
        return (self._top(hit_ids, hit_scores, k) if k > 0 else []), requested

    def scores(self, query: str, doc_ids: Iterable[int]) -> dict[int, float]:
        """BM25 score of `query` for each requested id (0.0 if unknown or no match)."""
        wanted = [int(doc_id) for doc_id in doc_ids]
        query_terms = _query_terms(query)
        result = dict.fromkeys(wanted, 0.0)
        if not query_terms or not wanted:
            return result
        with self._lock:
            avgdl = self._avgdl_locked()
            idfs = {term: self._idf_locked(term) for term in query_terms}
            for doc_id in wanted:
                term_freqs = self._doc_term_freqs.get(doc_id)
                if not term_freqs:
                    continue
                doc_length = self._doc_lengths[doc_id]
                result[doc_id] = sum(
                    query_tf * idfs[term] * self._term_weight(term_freqs[term], doc_length, avgdl)
                    for term, query_tf in query_terms.items()
                    if term in term_freqs
                )
        return result

    def matched_terms(self, query: str, doc_id: int, limit: int = 10) -> list[str]:
        """Query terms present in the document, rarest (highest idf) first.

        Meant for explanations ("matched on: 石墨负极, 负极材料").
        """
        query_terms = _query_terms(query)
        with self._lock:
            term_freqs = self._doc_term_freqs.get(int(doc_id))
            if not term_freqs or limit <= 0:
                return []
            weighted = [(self._idf_locked(term), term) for term in query_terms if term in term_freqs]
        weighted.sort(key=lambda item: (-item[0], item[1]))
        return [term for _, term in weighted[:limit]]

    def matched_terms_many(self, query: str, doc_ids: Iterable[int], limit: int = 10) -> dict[int, list[str]]:
        """`matched_terms` for several documents at once (the query's idfs computed once)."""
        query_terms = _query_terms(query)
        result: dict[int, list[str]] = {}
        with self._lock:
            idfs = {term: self._idf_locked(term) for term in query_terms}
            for doc_id in doc_ids:
                term_freqs = self._doc_term_freqs.get(int(doc_id))
                if not term_freqs or limit <= 0:
                    result[int(doc_id)] = []
                    continue
                weighted = sorted(
                    ((idfs[term], term) for term in query_terms if term in term_freqs),
                    key=lambda item: (-item[0], item[1]),
                )
                result[int(doc_id)] = [term for _, term in weighted[:limit]]
        return result

    def self_score(self, query: str) -> float:
        """Score `query` would get against a document identical to itself.

        Computed with current corpus statistics (the hypothetical document is not
        added). Divide a search score by this to get a rough [0, 1] relevance; a
        document that repeats query terms more densely than the query can exceed it,
        so clamp after dividing. 0.0 for a query without terms.
        """
        query_terms = _query_terms(query)
        query_length = sum(query_terms.values())
        if not query_length:
            return 0.0
        with self._lock:
            avgdl = self._avgdl_locked() or float(query_length)
            return sum(
                query_tf * self._idf_locked(term) * self._term_weight(query_tf, query_length, avgdl)
                for term, query_tf in query_terms.items()
            )
