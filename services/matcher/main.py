"""The matcher process: handles its partitions of salon.vectors (store, rank, propose) and,
like every replica, keeps a full index fed from all partitions (services/matcher/replica.py)."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from embeddings.index import IndexConfig
from services.matcher.handlers import handle_vector
from services.matcher.ranking import MatchPolicy
from services.matcher.replica import IndexFeed
from services.matcher.scoring import Weights
from services.matcher.state import MatcherState
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
from shared import metrics
from shared.bus import Message
from shared.db import init_db, make_engine
from shared.errors import BusError
from shared.events import Topic
from shared.outbox import OutboxRelay
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)
SERVICE = "matcher"
GROUP = "salon-matcher"
MAX_BATCH = 20


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


def index_config_from(settings: Settings) -> IndexConfig:
    """When each kind's FAISS index switches from exact to IVF, and the IVF's tuning."""
    return IndexConfig(
        exact_max=settings.index_exact_max,
        nprobe=settings.index_ivf_nprobe,
        list_factor=settings.index_ivf_list_factor,
    )


def main() -> None:
    settings = get_settings()
    setup_logging(settings, SERVICE)
    serve_metrics(settings, SERVICE)
    stop = stop_on_signals()
    name = settings.instance_name(SERVICE)  # matcher, or matcher-2 etc. when replicated
    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    report_status(engine, name, "rebuilding")
    state = MatcherState(
        settings.embedding_dim,
        settings.resolved_index_dir,
        snapshot_every=settings.index_snapshot_every,
        index_config=index_config_from(settings),
        entity_cache_size=settings.matcher_entity_cache,
    )
    publisher = connect_bus(settings, name, stop=stop)
    # The feed fixes its start (the group's committed offsets) before the rebuild reads the
    # database, so nothing falls between the two (services/matcher/replica.py).
    feed = IndexFeed(
        bootstrap=settings.bootstrap,
        topic=settings.topic(Topic.VECTORS),
        group_id=GROUP,
        engine=engine,
        state=state,
        client_id=f"{name}-feed",
    )
    feed.start()
    how = state.rebuild(engine)
    feed.sync()
    metrics.watch_index_sizes(state.sizes)
    relay = OutboxRelay(engine, publisher, poll_interval_s=settings.outbox_poll_ms / 1000, name=f"{name}-relay")
    relay.start(stop)
    consumer = make_consumer(settings, Topic.VECTORS, group_id=GROUP, publisher=publisher, client_id=name)

    def detail() -> dict[str, Any]:
        return {
            "index": state.sizes(),
            "rebuilt_from": how,
            "outbox_published": relay.published,
            "partitions": assigned_partitions(consumer),
            "feed": feed.stats.as_detail(),
            **consumer.stats,
        }

    report_status(engine, name, "ready", **detail())
    heartbeat(engine, name, stop, detail)
    handle = partial(
        handle_vector,
        engine=engine,
        state=state,
        policy=policy_from(settings),
        matches_topic=settings.topic(Topic.MATCHES),
        before_match=feed.sync,
    )

    def handle_batch(batch: list[Message]) -> None:
        for message in batch:
            handle(message.envelope)

    log.info("%s ready, index sizes %s", name, state.sizes())
    try:
        while not stop.is_set():
            # Small batches: events are handled one by one anyway, and a batch must finish
            # well within the group's max poll interval or the member is evicted mid-batch.
            consumer.process_once(handle_batch, max_batch=MAX_BATCH, max_wait_ms=200, stop=stop)
            sync_quietly(feed)  # learn what the other replicas handle, also while idle
    finally:
        consumer.close()
        feed.close()
        state.snapshot()
        publisher.close()
        report_status(engine, name, "stopped", index=state.sizes())


def sync_quietly(feed: IndexFeed) -> None:
    """An idle-time sync; a failure is logged and retried next turn (matching syncs again
    before it ranks, and there a failure retries the batch)."""
    try:
        feed.sync()
    except BusError as exc:
        log.warning("index feed sync failed, retrying: %s", exc)


if __name__ == "__main__":
    main()
