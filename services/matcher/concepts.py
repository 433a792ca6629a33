"""The glossary's technology concepts each text names, kept per text and across restarts.

Finding a text's concepts (OpenCC fold, then the glossary lookup) takes about 0.3-1 ms, and
every event compares ~300 candidates: results are cached by the text's fingerprint. A
matcher that starts from snapshots would otherwise pay that for every counterpart it meets
for the first time, which at 100k entities was a tenth of its time in the first minutes.
So the snapshot writer also stores the concepts of the indexed texts (`save_concepts`), and
the rebuild loads them back (`load_concepts`), valid while the glossary is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np

from embeddings.index import save_npz
from embeddings.lexical import text_fingerprint
from shared.taxonomy import fold, load_glossary

log = logging.getLogger(__name__)

CACHE_SIZE = 200_000  # tens of MB; 100k indexed entities must not miss it per event
CONCEPTS_FORMAT = 1  # bump when `fold` or `Glossary.find` change what a text names
NO_CONCEPTS: Mapping[str, str] = MappingProxyType({})

_cache: dict[int, Mapping[str, str]] = {}  # text fingerprint → concept → the word used for it
# Ranking asks about the same text objects many times per event (each rule, both passes):
# found by identity, they skip fingerprinting the text again (~2 of 3 calls at 100k).
RECENT_SIZE = 4096
_recent: dict[int, tuple[str, Mapping[str, str]]] = {}  # id(text) → (text, its concepts)
_lock = threading.Lock()


def concepts_of(text: str) -> Mapping[str, str]:
    """The glossary's technology concepts a text names, with the word it used for each
    (read-only: the mapping is shared through the cache)."""
    recent = _recent.get(id(text))
    if recent is not None and recent[0] is text:
        return recent[1]
    key = text_fingerprint(text)
    found = _cache.get(key)
    if found is None:
        named = load_glossary().find(fold(text))
        found = MappingProxyType(dict(sorted(named.items()))) if named else NO_CONCEPTS
        _remember({key: found})
    if len(_recent) >= RECENT_SIZE:
        _recent.clear()
    _recent[id(text)] = (text, found)  # the text is held, so its id cannot be reused meanwhile
    return found


def _remember(found: Mapping[int, Mapping[str, str]]) -> None:
    with _lock:
        if len(_cache) + len(found) > CACHE_SIZE:
            _cache.clear()  # rare; refilled by the next few events
        _cache.update(list(found.items())[:CACHE_SIZE])


def signature() -> str:
    """Changes whenever the same text may name other concepts: stored concepts are then stale."""
    glossary = sorted((concept, list(terms)) for concept, terms in load_glossary().concepts.items())
    material = json.dumps([CONCEPTS_FORMAT, glossary], ensure_ascii=False)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


def save_concepts(path: Path, fingerprints: Iterable[int]) -> int:
    """Write the cached concepts of these texts (by fingerprint) as flat numpy arrays, atomically.
    Texts not in the cache are left out. Returns how many were written."""
    with _lock:
        known = [(key, _cache[key]) for key in set(fingerprints) if key in _cache]
    vocabulary: dict[str, int] = {}
    offsets = np.zeros(len(known) + 1, dtype=np.int64)
    pairs: list[tuple[int, int]] = []
    for position, (_, concepts) in enumerate(known):
        for concept, word in concepts.items():
            pairs.append(
                (vocabulary.setdefault(concept, len(vocabulary)), vocabulary.setdefault(word, len(vocabulary)))
            )
        offsets[position + 1] = len(pairs)
    save_npz(
        path,
        signature=np.array([signature()]),
        fingerprints=np.array([key for key, _ in known], dtype=np.int64),
        offsets=offsets,
        pairs=np.array(pairs, dtype=np.int32).reshape(-1, 2),
        vocabulary=np.array(list(vocabulary), dtype=np.str_),
    )
    return len(known)


def load_concepts(path: Path) -> int:
    """Put the concepts `save_concepts` wrote into the cache; returns how many texts. Nothing
    is loaded from a missing or unreadable file, or one written with another glossary."""
    if not path.exists():
        return 0
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["signature"][0]) != signature():
                log.info("concept snapshot %s is of another glossary: not used", path)
                return 0
            keys, offsets = data["fingerprints"].tolist(), data["offsets"].tolist()
            pairs, vocabulary = data["pairs"].tolist(), data["vocabulary"].tolist()
    except (OSError, ValueError, KeyError, IndexError) as exc:
        log.warning("concept snapshot %s unusable, finding concepts again: %s", path, exc)
        return 0
    found: dict[int, Mapping[str, str]] = {}
    for position, key in enumerate(keys):
        start, end = offsets[position], offsets[position + 1]
        found[key] = (
            MappingProxyType({vocabulary[concept]: vocabulary[word] for concept, word in pairs[start:end]})
            if end > start
            else NO_CONCEPTS
        )
    _remember(found)
    return len(found)


def forget() -> None:
    """Empty the cache (tests)."""
    with _lock:
        _cache.clear()
        _recent.clear()
