"""Embeddings for salon matchmaking: text encoders, a FAISS vector index and a
Chinese/English BM25 index. Pure library code: no Kafka, no HTTP.

Importing this package is cheap; torch / sentence-transformers load only when a
`SentenceTransformerEncoder` is constructed.
"""

from embeddings.encoder import (
    DEFAULT_MODEL,
    Encoder,
    HashingEncoder,
    SentenceTransformerEncoder,
    resolve_model_path,
)
from embeddings.errors import (
    EmbeddingsError,
    EncoderLoadError,
    EncodingError,
    SnapshotError,
    VectorIndexError,
)
from embeddings.index import VectorIndex
from embeddings.lexical import (
    DEFAULT_DOMAIN_TERMS,
    BM25Index,
    add_domain_terms,
    normalize_text,
    tokenize,
)

__all__ = [
    "DEFAULT_DOMAIN_TERMS",
    "DEFAULT_MODEL",
    "BM25Index",
    "EmbeddingsError",
    "Encoder",
    "EncoderLoadError",
    "EncodingError",
    "HashingEncoder",
    "SentenceTransformerEncoder",
    "SnapshotError",
    "VectorIndex",
    "VectorIndexError",
    "add_domain_terms",
    "normalize_text",
    "resolve_model_path",
    "tokenize",
]
