"""The matcher process: owns the indices; consumes salon.vectors; proposes matches."""

from __future__ import annotations

import logging
from functools import partial

from services.matcher.handlers import handle_vector
from services.matcher.ranking import MatchPolicy
from services.matcher.scoring import Weights
from services.matcher.state import MatcherState
from services.runtime import connect_bus, heartbeat, make_consumer, report_status, setup_logging, stop_on_signals
from shared.db import init_db, make_engine
from shared.events import Topic
from shared.outbox import OutboxRelay
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)
SERVICE = "matcher"


def policy_from(settings: Settings) -> MatchPolicy:
    return MatchPolicy(
        top_k=settings.match_top_k,
        min_score=settings.match_min_score,
        weights=Weights(
            dense=settings.weight_dense,
            lexical=settings.weight_lexical,
            structured=settings.weight_structured,
            activity=settings.weight_activity,
            dense_cjk_reliability=settings.dense_cjk_reliability,
        ),
    )


def main() -> None:
    settings = get_settings()
    setup_logging(settings, SERVICE)
    stop = stop_on_signals()
    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    report_status(engine, SERVICE, "rebuilding")
    state = MatcherState(
        settings.embedding_dim, settings.resolved_index_dir, snapshot_every=settings.index_snapshot_every
    )
    how = state.rebuild(engine)
    publisher = connect_bus(settings, SERVICE, stop=stop)
    relay = OutboxRelay(engine, publisher, poll_interval_s=settings.outbox_poll_ms / 1000, name="matcher-relay")
    relay.start(stop)
    consumer = make_consumer(settings, Topic.VECTORS, group_id="salon-matcher", publisher=publisher)
    report_status(engine, SERVICE, "ready", index=state.sizes(), rebuilt_from=how)
    heartbeat(
        engine,
        SERVICE,
        stop,
        lambda: {"index": state.sizes(), "rebuilt_from": how, "outbox_published": relay.published, **consumer.stats},
    )
    handler = partial(
        handle_vector,
        engine=engine,
        state=state,
        policy=policy_from(settings),
        matches_topic=settings.topic(Topic.MATCHES),
    )
    log.info("matcher ready, index sizes %s", state.sizes())
    try:
        consumer.run(handler, stop=stop, max_batch=100, max_wait_ms=200)
    finally:
        consumer.close()
        state.snapshot()
        publisher.close()
        report_status(engine, SERVICE, "stopped", index=state.sizes())


if __name__ == "__main__":
    main()
