"""The embedder process: consumes salon.submissions, publishes salon.vectors."""

from __future__ import annotations

import logging
import time
from collections import Counter
from functools import partial

import torch

from embeddings import SentenceTransformerEncoder
from services.embedder.handlers import VectorCache, handle_submissions
from services.embedder.pacing import PollSizer
from services.runtime import (
    assigned_partitions,
    connect_bus,
    heartbeat,
    make_consumer,
    report_status,
    serve_metrics,
    setup_logging,
    stop_on_signals,
)
from shared.bus import Message
from shared.db import make_engine
from shared.events import Topic
from shared.settings import get_settings

log = logging.getLogger(__name__)
SERVICE = "embedder"


def main() -> None:
    settings = get_settings()
    setup_logging(settings, SERVICE)
    serve_metrics(settings, SERVICE)
    stop = stop_on_signals()
    name = settings.instance_name(SERVICE)  # embedder, or embedder-2 etc. when replicated
    engine = make_engine(settings.resolved_database_url)
    report_status(engine, name, "loading_model", model=settings.model)
    log.info("loading model %s", settings.model)
    encoder = SentenceTransformerEncoder(
        settings.model, batch_size=settings.embed_batch_size, max_tokens=settings.embed_max_tokens
    )
    publisher = connect_bus(settings, name, stop=stop)
    consumer = make_consumer(
        settings, Topic.SUBMISSIONS, group_id="salon-embedder", publisher=publisher, client_id=name
    )
    report_status(engine, name, "ready", model=encoder.model_name, dim=encoder.dim)
    # A wide poll and a narrow forward pass: the encoder sorts a poll by length, so each forward
    # pass pads little; the poll shrinks when encoding slows (services/embedder/pacing.py).
    sizer = PollSizer(
        largest=settings.embed_poll_size,
        smallest=min(settings.embed_batch_size, settings.embed_poll_size),
        budget_s=settings.kafka_max_poll_interval_ms / 1000 / 3,
    )

    poll_sizes: Counter[str] = Counter()  # submissions per handler call: how full polls run
    heartbeat(
        engine,
        name,
        stop,
        lambda: {
            "model": encoder.model_name,
            "dim": encoder.dim,
            "torch_threads": torch.get_num_threads(),
            "poll_sizes": dict(poll_sizes),
            "poll_limit": sizer.size(),
            "partitions": assigned_partitions(consumer),
            **consumer.stats,
        },
    )
    log.info("embedder ready (model %s, dim %d)", encoder.model_name, encoder.dim)
    embed = partial(
        handle_submissions,
        encoder=encoder,
        publisher=publisher,
        vectors_topic=settings.topic(Topic.VECTORS),
        cache=VectorCache(settings.embed_cache_size),
    )

    def handler(batch: list[Message]) -> int:
        poll_sizes[str(len(batch))] += 1
        started = time.perf_counter()
        embedded = embed(batch)
        sizer.record(len(batch), time.perf_counter() - started)
        return embedded

    try:
        while not stop.is_set():
            consumer.process_once(handler, max_batch=sizer.size(), max_wait_ms=settings.embed_batch_wait_ms, stop=stop)
    finally:
        consumer.close()
        publisher.close()
        report_status(engine, name, "stopped")


if __name__ == "__main__":
    main()
