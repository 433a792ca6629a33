"""Exception hierarchy for the embeddings package.

Everything raised on purpose by this package derives from `EmbeddingsError`, so
callers (services, CLI) can catch one type; third-party exceptions are wrapped
with `raise ... from exc` to keep the original cause in the traceback.
"""

from __future__ import annotations


class EmbeddingsError(Exception):
    """Root of all errors raised by the embeddings package."""


class EncoderLoadError(EmbeddingsError):
    """The embedding model could not be located or loaded."""


class EncodingError(EmbeddingsError):
    """The model failed while encoding texts (after a successful load)."""


class VectorIndexError(EmbeddingsError, ValueError):
    """Invalid input to `VectorIndex` (wrong dim, length mismatch, duplicate ids...).

    Also a `ValueError` because every case is a bad argument, not a broken index.
    """


class SnapshotError(EmbeddingsError):
    """A saved index snapshot is missing, corrupt or incompatible; rebuild it."""
