"""The embedder process: consumes salon.submissions, publishes salon.vectors."""

from __future__ import annotations

import logging
from functools import partial

from embeddings import SentenceTransformerEncoder
from services.embedder.handlers import handle_submissions
from services.runtime import connect_bus, heartbeat, make_consumer, report_status, setup_logging, stop_on_signals
from shared.db import make_engine
from shared.events import Topic
from shared.settings import get_settings

log = logging.getLogger(__name__)
SERVICE = "embedder"


def main() -> None:
    settings = get_settings()
    setup_logging(settings, SERVICE)
    stop = stop_on_signals()
    engine = make_engine(settings.resolved_database_url)
    report_status(engine, SERVICE, "loading_model", model=settings.model)
    log.info("loading model %s", settings.model)
    encoder = SentenceTransformerEncoder(settings.model, batch_size=settings.embed_batch_size)
    publisher = connect_bus(settings, SERVICE, stop=stop)
    consumer = make_consumer(settings, Topic.SUBMISSIONS, group_id="salon-embedder", publisher=publisher)
    report_status(engine, SERVICE, "ready", model=encoder.model_name, dim=encoder.dim)
    heartbeat(engine, SERVICE, stop, lambda: {"model": encoder.model_name, "dim": encoder.dim, **consumer.stats})
    log.info("embedder ready (model %s, dim %d)", encoder.model_name, encoder.dim)
    handler = partial(
        handle_submissions, encoder=encoder, publisher=publisher, vectors_topic=settings.topic(Topic.VECTORS)
    )
    try:
        consumer.run_batches(
            handler,
            stop=stop,
            max_batch=settings.embed_batch_size,
            max_wait_ms=settings.embed_batch_wait_ms,
        )
    finally:
        consumer.close()
        publisher.close()
        report_status(engine, SERVICE, "stopped")


if __name__ == "__main__":
    main()
