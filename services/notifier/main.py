"""The notifier process: consumes salon.matches into inboxes and webhook messages, and
runs the webhook delivery worker (which needs only the database, not the broker)."""

from __future__ import annotations

import logging
from functools import partial

from services.notifier.delivery import DeliveryWorker
from services.notifier.handlers import handle_match_event
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
from shared.db import init_db, make_engine
from shared.events import Topic
from shared.settings import get_settings

log = logging.getLogger(__name__)
SERVICE = "notifier"


def main() -> None:
    settings = get_settings()
    setup_logging(settings, SERVICE)
    serve_metrics(settings, SERVICE)
    stop = stop_on_signals()
    name = settings.instance_name(SERVICE)  # notifier, or notifier-2 etc. when replicated
    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    worker = DeliveryWorker.from_settings(engine, settings, name=f"{name}-webhooks")
    worker_thread = worker.start(stop)
    try:
        publisher = connect_bus(settings, name, stop=stop)
        consumer = make_consumer(
            settings, Topic.MATCHES, group_id="salon-notifier", publisher=publisher, client_id=name
        )
        report_status(engine, name, "ready")
        heartbeat(
            engine,
            name,
            stop,
            lambda: {**consumer.stats, "partitions": assigned_partitions(consumer), "webhooks": dict(worker.stats)},
        )
        log.info("notifier ready")
        try:
            consumer.run(partial(handle_match_event, engine=engine, wake=worker.wake), stop=stop)
        finally:
            consumer.close()
            publisher.close()
    finally:
        stop.set()
        worker.wake()
        worker_thread.join(timeout=30)
        worker.close()
        report_status(engine, name, "stopped")


if __name__ == "__main__":
    main()
