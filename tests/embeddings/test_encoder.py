"""Encoders: the real packaged model (marked `model`) and the hashing baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embeddings import (
    DEFAULT_MODEL,
    Encoder,
    EncoderLoadError,
    HashingEncoder,
    SentenceTransformerEncoder,
    resolve_model_path,
)


@pytest.fixture(scope="module")
def packaged_encoder() -> SentenceTransformerEncoder:
    # Small batch size so several length-sorted mini-batches run with few texts.
    return SentenceTransformerEncoder(DEFAULT_MODEL, batch_size=3)


@pytest.mark.model
def test_packaged_model_encodes_normalised_384_dim_vectors(
    packaged_encoder: SentenceTransformerEncoder,
) -> None:
    texts = [
        "graphite anode material",
        "graphite battery anode",
        "data centre cooling",
        "",
        "   ",
        "石墨负极材料",
        "x" * 10_000,
    ]
    assert isinstance(packaged_encoder, Encoder)
    assert packaged_encoder.dim == 384

    vectors = packaged_encoder.encode(texts)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    empty = packaged_encoder.encode([])
    assert empty.shape == (0, 384)
    assert empty.dtype == np.float32

    one_by_one = np.concatenate([packaged_encoder.encode([text]) for text in texts])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)

    anode, battery_anode, cooling = vectors[0], vectors[1], vectors[2]
    assert float(anode @ battery_anode) > float(anode @ cooling)


@pytest.mark.model
def test_max_tokens_truncates_what_the_model_reads(packaged_encoder: SentenceTransformerEncoder) -> None:
    capped = SentenceTransformerEncoder(DEFAULT_MODEL, max_tokens=16)
    assert capped.max_tokens == 16
    assert packaged_encoder.max_tokens == 256  # the model's own limit when none is set
    assert SentenceTransformerEncoder(DEFAULT_MODEL, max_tokens=100_000).max_tokens == 256  # never above it
    opening = "graphite anode material for lithium batteries " * 6  # well over 16 tokens
    tails = [opening + "for data centre cooling", opening + "for offshore wind farms"]
    same = capped.encode(tails)
    np.testing.assert_allclose(same[0], same[1], atol=1e-6)  # the tails lie past the cap
    full = packaged_encoder.encode(tails)
    assert float(full[0] @ full[1]) < 0.9999


@pytest.mark.model  # no model is loaded: the argument is checked first
def test_max_tokens_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        SentenceTransformerEncoder(DEFAULT_MODEL, max_tokens=0)


def test_resolve_model_path() -> None:
    packaged = resolve_model_path(DEFAULT_MODEL)
    assert packaged == resolve_model_path("")
    assert packaged.endswith("model")
    name = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"
    assert resolve_model_path(name) == name
    assert resolve_model_path("/srv/models/bge-m3") == "/srv/models/bge-m3"


@pytest.mark.model  # no model is loaded, but importing torch takes seconds
def test_missing_model_raises_encoder_load_error(tmp_path: Path) -> None:
    missing = f"{tmp_path}/no-such-model"
    with pytest.raises(EncoderLoadError, match="no-such-model"):
        SentenceTransformerEncoder(missing)


def test_hashing_encoder_is_deterministic_and_normalised() -> None:
    encoder = HashingEncoder(dim=128)
    assert isinstance(encoder, Encoder)
    texts = ["石墨负极材料 graphite anode", "Data centre cooling 数据中心", "", "   "]
    first = encoder.encode(texts)
    second = HashingEncoder(dim=128).encode(texts)
    assert first.dtype == np.float32
    assert first.shape == (4, 128)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first[:2], axis=1), 1.0, atol=1e-6)
    # Texts without features encode to zero rows rather than crashing.
    assert not first[2:].any()
    assert encoder.encode([]).shape == (0, 128)


def test_hashing_encoder_folds_traditional_and_ranks_overlap() -> None:
    encoder = HashingEncoder()
    simplified, traditional, unrelated = encoder.encode(["石墨负极材料", "石墨負極材料", "数据中心液冷"])
    np.testing.assert_allclose(simplified, traditional)
    assert float(simplified @ traditional) > float(simplified @ unrelated)


def test_encode_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError):
        HashingEncoder().encode("graphite")
