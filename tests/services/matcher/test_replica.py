"""Index replication between matcher replicas: two MatcherStates in one test process, each with
its own IndexFeed on a real Tansu broker, sharing one real database (SQLite and PostgreSQL).

Interleavings are forced through `handle_vector(before_match=...)`, the point where a replica
catches its index up: the worst case is two counterparts stored at the same time on two
replicas, where each ranks before the other has finished."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from embeddings import HashingEncoder
from services.api.intake import create_entity
from services.matcher.handlers import handle_vector
from services.matcher.ranking import MatchPolicy
from services.matcher.replica import IndexFeed
from services.matcher.state import MatcherState
from shared.bus import Publisher
from shared.events import Envelope, VectorData
from shared.models import CREATE_MODELS, ENTITY_TABLES, Entity, Match, OutboxMessage, entity_text
from shared.settings import Settings
from tests.payloads import MANDATE, PITCH

ENCODER = HashingEncoder(dim=64)
MATCHES = "salon.matches"


class Replica:
    def __init__(self, name: str, *, broker: str, topic: str, group: str, engine: Engine, index_dir: Path) -> None:
        self.engine = engine
        self.state = MatcherState(ENCODER.dim, index_dir / name)
        self.feed = IndexFeed(
            bootstrap=broker, topic=topic, group_id=group, engine=engine, state=self.state, client_id=name
        )
        self.feed.start()
        self.state.rebuild(engine)

    def handle(self, envelope: Envelope, *, then: Callable[[], object] | None = None, catch_up: bool = True) -> int:
        """Handle one vector; `then` runs after this replica stored it and before it ranks."""

        def before_match() -> None:
            if then is not None:
                then()
            if catch_up:
                self.feed.sync()

        return handle_vector(
            envelope,
            engine=self.engine,
            state=self.state,
            policy=MatchPolicy(min_score=0.05),
            matches_topic=MATCHES,
            before_match=before_match,
        )

    def holds(self, entity: Entity) -> bool:
        return entity.id in self.state.kinds[entity.kind].entity_of.values()


@pytest.fixture
def vectors_topic(topic_factory: Callable[..., str]) -> str:
    return topic_factory(partitions=2)


@pytest.fixture
def replicas(broker: str, vectors_topic: str, any_engine: Engine, tmp_path: Path) -> Iterator[Callable[[str], Replica]]:
    made: list[Replica] = []

    def make(name: str) -> Replica:
        replica = Replica(
            name, broker=broker, topic=vectors_topic, group=f"g-{vectors_topic}", engine=any_engine, index_dir=tmp_path
        )
        made.append(replica)
        return replica

    yield make
    for replica in made:
        replica.feed.close()


def submit(engine: Engine, kind: str, body: dict, owner: str) -> Entity:
    with Session(engine, expire_on_commit=False) as session:
        return create_entity(session, Settings(), kind, CREATE_MODELS[kind].model_validate(body), owner=owner)


def published_vector(publisher: Publisher, topic: str, entity: Entity) -> Envelope:
    """The embedder's part: the entity's vector event, on the topic keyed by entity id."""
    envelope = Envelope.wrap(
        "vector.computed",
        entity.id,
        VectorData(
            kind=entity.kind,
            entity_id=entity.id,
            version=entity.version,
            model=ENCODER.model_name,
            dim=ENCODER.dim,
            vector=ENCODER.encode([entity_text(entity)])[0].tolist(),
            source_event_id=Envelope(type="x", subject="s", data={}).id,
        ),
    )
    publisher.publish(topic, envelope)
    return envelope


def pairs_and_events(engine: Engine) -> tuple[list[tuple[str, str]], Counter[str]]:
    with Session(engine) as session:
        pairs = [(m.a_id, m.b_id) for m in session.exec(select(Match)).all()]
        events = Counter(row.event_id for row in session.exec(select(OutboxMessage)).all() if row.topic == MATCHES)
    return pairs, events


def test_counterparts_stored_at_once_on_two_replicas_still_meet_once(replicas, publisher, vectors_topic, any_engine):
    a, b = replicas("matcher-a"), replicas("matcher-b")
    pitch = submit(any_engine, "pitch", PITCH, "鹤岗碳材")
    mandate = submit(any_engine, "mandate", MANDATE, "龙江基金")
    pitch_event = published_vector(publisher, vectors_topic, pitch)
    mandate_event = published_vector(publisher, vectors_topic, mandate)

    # a stores the pitch; before a ranks it, b stores AND ranks the mandate; then a ranks.
    proposed = a.handle(pitch_event, then=lambda: b.handle(mandate_event))

    assert proposed == 1, "a's feed learned the mandate b had stored"
    pairs, events = pairs_and_events(any_engine)
    assert pairs == [(pitch.id, mandate.id)], "b also proposed the pair: still one Match row"
    assert len(events) == 2 and set(events.values()) == {2}, "both replicas wrote the same two event ids"
    with Session(any_engine) as session:
        assert {session.get(ENTITY_TABLES[e.kind], e.id).status for e in (pitch, mandate)} == {"matched"}
    for replica in (a, b):
        replica.feed.sync()
        assert replica.holds(pitch) and replica.holds(mandate), "every replica holds the full index"


def test_without_the_catch_up_two_replicas_miss_the_pair(replicas, publisher, vectors_topic, any_engine):
    """The control: the same interleaving with no sync before ranking proposes nothing."""
    a, b = replicas("matcher-a"), replicas("matcher-b")
    pitch = submit(any_engine, "pitch", PITCH, "鹤岗碳材")
    mandate = submit(any_engine, "mandate", MANDATE, "龙江基金")
    pitch_event = published_vector(publisher, vectors_topic, pitch)
    mandate_event = published_vector(publisher, vectors_topic, mandate)

    a.handle(pitch_event, then=lambda: b.handle(mandate_event, catch_up=False), catch_up=False)

    assert pairs_and_events(any_engine)[0] == []


def test_a_later_replica_starts_where_the_group_committed_and_waits_for_unstored_rows(
    replicas, publisher, vectors_topic, any_engine, broker
):
    owner = replicas("matcher-a")
    pitch = submit(any_engine, "pitch", PITCH, "鹤岗碳材")
    mandate = submit(any_engine, "mandate", {**MANDATE, "fund_name": "二号基金"}, "二号基金")
    owner.handle(published_vector(publisher, vectors_topic, pitch))
    commit_handled(broker, f"g-{vectors_topic}", vectors_topic)
    second = published_vector(publisher, vectors_topic, mandate)  # published, not handled yet

    late = replicas("matcher-late")  # starts at the committed offsets, rebuilds from the DB
    assert late.holds(pitch), "below the committed offsets: from the database rebuild"
    assert late.feed.sync() == 0 and not late.holds(mandate)
    assert late.feed.stats.pending == {mandate.id: ("mandate", 1)}, "its owner has not stored it yet"

    owner.handle(second)
    assert late.feed.sync() == 1 and late.holds(mandate) and not late.feed.stats.pending


def commit_handled(broker: str, group: str, topic: str) -> None:
    """Commit the group's offsets at the log end of every partition, as the group's consumer
    does once it has handled everything there."""
    consumer = KafkaConsumer(bootstrap_servers=broker, group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions)
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in ends.items()})
    finally:
        consumer.close()


def test_two_replicas_never_flag_each_others_copy_as_the_duplicate(replicas, publisher, vectors_topic, any_engine):
    a, b = replicas("matcher-a"), replicas("matcher-b")
    first = submit(any_engine, "pitch", PITCH, "鹤岗碳材")
    copy = submit(any_engine, "pitch", PITCH, "鹤岗碳材二号")
    first_event = published_vector(publisher, vectors_topic, first)
    copy_event = published_vector(publisher, vectors_topic, copy)

    a.handle(first_event, then=lambda: b.handle(copy_event))  # each sees the other's copy

    with Session(any_engine) as session:
        flagged = {e.id: session.get(ENTITY_TABLES["pitch"], e.id).duplicate_of for e in (first, copy)}
    assert flagged == {first.id: None, copy.id: first.id}, "only the later-stored copy is the duplicate"


def test_records_arriving_during_a_sync_are_read_once(replicas, publisher, vectors_topic, any_engine):
    """A sync reads to the end offsets it fetched and may read past them; the next one goes on
    from there (it must not take a position past an old end for a lost log and reread)."""
    feed = replicas("matcher-a").feed
    pitches = [submit(any_engine, "pitch", {**PITCH, "title": f"石墨负极 {i}"}, f"企业{i}") for i in range(24)]
    writer = threading.Thread(target=lambda: [published_vector(publisher, vectors_topic, p) for p in pitches])
    writer.start()
    while writer.is_alive():
        feed.sync()
    writer.join()
    feed.sync()
    feed.sync()
    assert feed.stats.read == len(pitches)
    assert len(feed.stats.pending) == len(pitches), "none stored by an owner yet: all wait"


def test_an_entity_is_indexed_once_though_feed_and_handler_both_see_it(replicas, publisher, vectors_topic, any_engine):
    """The catch-up before ranking learns the entity being matched (its vector row is stored by
    then); the handler's own add afterwards is a no-op, and later syncs skip it too."""
    replica = replicas("matcher-a")
    pitch = submit(any_engine, "pitch", PITCH, "鹤岗碳材科技")
    adds = []
    original_add = replica.state.kinds["pitch"].add_metadata
    replica.state.kinds["pitch"].add_metadata = lambda *a, **k: adds.append(a) or original_add(*a, **k)
    replica.handle(published_vector(publisher, vectors_topic, pitch))
    replica.feed.sync()
    assert len(adds) == 1, "tokenised and indexed once"
    assert replica.feed.stats.read == 1
    assert replica.holds(pitch)


def test_vectors_of_deleted_or_superseded_entities_are_dropped_not_kept_waiting(
    replicas, publisher, vectors_topic, any_engine
):
    feed = replicas("matcher-a").feed
    deleted = submit(any_engine, "pitch", PITCH, "鹤岗碳材")
    superseded = submit(any_engine, "mandate", MANDATE, "二号基金")
    waiting = submit(any_engine, "pitch", {**PITCH, "title": "石墨负极二期"}, "鹤岗碳材二号")
    for entity in (deleted, superseded, waiting):
        published_vector(publisher, vectors_topic, entity)
    with Session(any_engine) as session:
        session.delete(session.get(ENTITY_TABLES["pitch"], deleted.id))
        newer = session.get(ENTITY_TABLES["mandate"], superseded.id)
        newer.version = 2  # updated before its first version was ever stored
        session.add(newer)
        session.commit()

    assert feed.sync() == 0
    assert feed.stats.pending == {waiting.id: ("pitch", 1)}, "only the one its owner may still store waits"
    assert feed.stats.dropped == 2
