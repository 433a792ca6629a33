"""Submission events → vectors. Stateless: the same input event yields the same output id."""

from __future__ import annotations

from embeddings import Encoder
from shared import metrics
from shared.bus import Message, Publisher
from shared.events import Envelope, SubmissionData, VectorData, derived_event_id


def handle_submissions(batch: list[Message], *, encoder: Encoder, publisher: Publisher, vectors_topic: str) -> int:
    """Embed a batch of submissions and publish one `vector.computed` per submission.

    Returns only after the broker acknowledged every vector, so the caller may commit.
    """
    submissions: list[tuple[Envelope, SubmissionData]] = [
        (message.envelope, message.envelope.payload()) for message in batch
    ]
    if not submissions:
        return 0
    metrics.EMBED_BATCH_SIZE.observe(len(submissions))
    with metrics.EMBED_DURATION.time():
        vectors = encoder.encode([data.text for _, data in submissions])
    out = []
    for (envelope, data), vector in zip(submissions, vectors, strict=True):
        vector_event = Envelope.wrap(
            "vector.computed",
            data.entity_id,
            VectorData(
                kind=data.kind,
                entity_id=data.entity_id,
                version=data.version,
                model=encoder.model_name,
                dim=encoder.dim,
                vector=[float(x) for x in vector],
                source_event_id=envelope.id,
            ),
            event_id=derived_event_id(envelope.id, "vector.computed"),
        )
        out.append((vectors_topic, vector_event))
    publisher.publish_many(out)
    return len(out)
