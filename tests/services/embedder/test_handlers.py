"""The embedder handler: one vector per submission, deterministic ids, acknowledged publish."""

from __future__ import annotations

import time
import uuid

import numpy as np
from kafka import KafkaConsumer

from embeddings import HashingEncoder
from services.embedder.handlers import handle_submissions
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
