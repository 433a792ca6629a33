"""The embedder handler: one vector per submission, deterministic ids, acknowledged publish."""

from __future__ import annotations

import time
import uuid

import numpy as np
from kafka import KafkaConsumer

from embeddings import HashingEncoder
from services.embedder.handlers import VectorCache, handle_submissions
from shared.bus import Message
from shared.events import Envelope, SubmissionData, derived_event_id


def submission_message(text: str, offset: int) -> Message:
    entity_id = str(uuid.uuid4())
    envelope = Envelope.wrap(
        "pitch.submitted",
        entity_id,
        SubmissionData(kind="pitch", entity_id=entity_id, version=3, owner="o", text=text, fields={}),
    )
    return Message(envelope, "salon.submissions", 0, offset)


def test_a_batch_becomes_vectors_on_the_topic(broker, topic_factory, publisher):
    topic = topic_factory()
    encoder = HashingEncoder(dim=32)
    batch = [submission_message(text, i) for i, text in enumerate(["石墨负极材料", "graphite anode", "低空经济"])]
    assert handle_submissions(batch, encoder=encoder, publisher=publisher, vectors_topic=topic) == 3

    reader = KafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest", enable_auto_commit=False)
    got: list[Envelope] = []
    deadline = time.monotonic() + 20
    while len(got) < 3 and time.monotonic() < deadline:
        for records in reader.poll(timeout_ms=500).values():
            got.extend(Envelope.from_bytes(record.value) for record in records)
    reader.close()

    assert [event.subject for event in got] == [m.envelope.subject for m in batch]
    for event, message in zip(got, batch, strict=True):
        data = event.payload()
        assert event.type == "vector.computed"
        assert event.id == derived_event_id(message.envelope.id, "vector.computed"), "re-delivery → same id"
        assert data.version == 3 and data.dim == 32 and data.source_event_id == message.envelope.id
        expected = encoder.encode([message.envelope.payload().text])[0]
        assert np.allclose(data.vector, expected, atol=1e-6)


class CountingEncoder(HashingEncoder):
    """The hashing encoder, remembering every text it was asked to encode."""

    def __init__(self) -> None:
        super().__init__(dim=32)
        self.encoded: list[str] = []

    def encode(self, texts):  # type: ignore[no-untyped-def]
        self.encoded.extend(texts)
        return super().encode(texts)


def resubmitted(message: Message, offset: int, *, text: str | None = None, version: int | None = None) -> Message:
    """The same entity submitted again under a new event id (a re-drive), optionally changed."""
    data = message.envelope.payload()
    envelope = Envelope.wrap(
        "pitch.submitted",
        data.entity_id,
        data.model_copy(update={"text": text or data.text, "version": version or data.version}),
    )
    return Message(envelope, "salon.submissions", 0, offset)


def test_a_re_driven_submission_is_answered_from_the_cache_not_encoded_again(topic_factory, publisher):
    topic, encoder, cache = topic_factory(), CountingEncoder(), VectorCache(100)
    first = submission_message("石墨负极材料", 0)
    handle_submissions([first], encoder=encoder, publisher=publisher, vectors_topic=topic, cache=cache)
    again = resubmitted(first, 1)
    twice_in_one_batch = [again, resubmitted(first, 2), submission_message("低空经济", 3)]
    assert (
        handle_submissions(twice_in_one_batch, encoder=encoder, publisher=publisher, vectors_topic=topic, cache=cache)
        == 3
    )
    assert encoder.encoded == ["石墨负极材料", "低空经济"]


def test_a_new_version_or_text_is_encoded_again(topic_factory, publisher):
    topic, encoder, cache = topic_factory(), CountingEncoder(), VectorCache(100)
    first = submission_message("石墨负极材料", 0)
    handle_submissions([first], encoder=encoder, publisher=publisher, vectors_topic=topic, cache=cache)
    edited = resubmitted(first, 1, text="石墨负极材料与硅碳负极", version=4)
    same_text_new_version = resubmitted(first, 2, version=5)
    handle_submissions(
        [edited, same_text_new_version], encoder=encoder, publisher=publisher, vectors_topic=topic, cache=cache
    )
    assert encoder.encoded == ["石墨负极材料", "石墨负极材料与硅碳负极", "石墨负极材料"]


def test_the_cache_forgets_the_least_recently_used_vector_first():
    cache = VectorCache(2)
    keys = [("e1", 1, "a"), ("e2", 1, "b"), ("e3", 1, "c")]
    cache.put(keys[0], np.zeros(2))
    cache.put(keys[1], np.zeros(2))
    assert cache.get(keys[0]) is not None  # now the most recent
    cache.put(keys[2], np.zeros(2))
    assert len(cache) == 2 and cache.get(keys[1]) is None and cache.get(keys[0]) is not None


def test_a_cache_of_size_zero_keeps_nothing():
    cache = VectorCache(0)
    cache.put(("e1", 1, "a"), np.zeros(2))
    assert len(cache) == 0
