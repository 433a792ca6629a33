"""The bus against a real broker: commit after effect, dedupe, dead-lettering, batching."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import UnknownError
from kafka.structs import MemberState

from services.launcher import ManagedProcess, free_port, port_open, tansu_binary
from shared.bus import DLQ_SUFFIX, Consumer, Message, Publisher, RetryableError, ensure_topics
from shared.errors import BusError, PoisonMessageError
from shared.events import Envelope, SubmissionData
from shared.settings import Settings

FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 10000}


def submission(n: int = 0) -> Envelope:
    entity_id = str(uuid.uuid4())
    return Envelope.wrap(
        "pitch.submitted",
        entity_id,
        SubmissionData(kind="pitch", entity_id=entity_id, version=1, owner="o", text=f"text {n}", fields={}),
    )


@pytest.fixture
def consumer_factory(broker: str, publisher: Publisher) -> Iterator[Callable[..., Consumer]]:
    made: list[Consumer] = []

    def make(topic: str, group: str | None = None, **kwargs: object) -> Consumer:
        consumer = Consumer(
            broker,
            [topic],
            group_id=group or f"g-{uuid.uuid4().hex[:8]}",
            publisher=publisher,
            **{**FAST_GROUP, **kwargs},
        )  # type: ignore[arg-type]
        made.append(consumer)
        return consumer

    yield make
    for consumer in made:
        consumer.close()


def drain(consumer: Consumer, handler: Callable[[list[Message]], object], want: int, timeout: float = 30) -> int:
    """Poll until `want` records were consumed (or time out)."""
    seen = 0
    deadline = time.monotonic() + timeout
    while seen < want and time.monotonic() < deadline:
        seen += consumer.process_once(handler, max_batch=50, max_wait_ms=300)
    return seen


def test_commit_happens_only_after_the_handler_succeeds(topic_factory, publisher, consumer_factory):
    topic = topic_factory()
    publisher.publish_many([(topic, submission(i)) for i in range(3)])
    calls: list[int] = []

    stop = threading.Event()

    def failing(batch: list[Message]) -> None:
        calls.append(len(batch))
        stop.set()  # shut down after this attempt: the batch must stay uncommitted
        raise RetryableError("database is away")

    first = consumer_factory(topic, group="g-commit")
    deadline = time.monotonic() + 30
    while not calls and time.monotonic() < deadline:
        assert first.process_once(failing, max_batch=10, max_wait_ms=500, stop=stop) == 0
    assert calls == [3]
    first.close()

    handled: list[str] = []
    second = consumer_factory(topic, group="g-commit")
    assert drain(second, lambda batch: handled.extend(m.envelope.id for m in batch), want=3) == 3
    assert len(handled) == 3, "every record of the failed batch is delivered again"


def test_duplicate_event_ids_reach_the_handler_once(topic_factory, publisher, consumer_factory):
    topic = topic_factory()
    event = submission()
    publisher.publish_many([(topic, event), (topic, event), (topic, submission(1))])
    handled: list[str] = []
    consumer = consumer_factory(topic)
    drain(consumer, lambda batch: handled.extend(m.envelope.id for m in batch), want=3)
    assert len(handled) == 2
    assert handled.count(event.id) == 1
    assert consumer.stats["duplicates"] == 1


def _dlq_records(broker: str, topic: str, want: int) -> list:
    reader = KafkaConsumer(
        topic + DLQ_SUFFIX,
        bootstrap_servers=broker,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        enable_auto_commit=False,
    )
    records = []
    deadline = time.monotonic() + 20
    while len(records) < want and time.monotonic() < deadline:
        for batch in reader.poll(timeout_ms=500).values():
            records.extend(batch)
    reader.close()
    return records


def test_poison_goes_to_the_dlq_and_the_partition_keeps_flowing(broker, topic_factory, publisher, consumer_factory):
    topic = topic_factory()
    good_before, good_after = submission(1), submission(2)
    publisher.publish(topic, good_before)
    publisher.publish_raw([(topic, b"k", b"{not json", [])])
    unknown = Envelope(type="pitch.exploded", subject="x", data={})
    publisher.publish_raw([(topic, b"x", unknown.to_bytes(), [])])
    publisher.publish(topic, good_after)

    handled: list[str] = []
    consumer = consumer_factory(topic)
    assert drain(consumer, lambda batch: handled.extend(m.envelope.id for m in batch), want=4) == 4
    assert handled == [good_before.id, good_after.id]

    dead = _dlq_records(broker, topic, want=2)
    assert [record.value for record in dead] == [b"{not json", unknown.to_bytes()]
    headers = dict(dead[0].headers)
    assert b"PoisonMessageError" in headers["salon-error"]
    assert headers["salon-source-topic"] == topic.encode()


def test_a_record_the_handler_keeps_failing_on_is_isolated_and_dead_lettered(
    broker, topic_factory, publisher, consumer_factory
):
    topic = topic_factory()
    events = [submission(i) for i in range(3)]
    publisher.publish_many([(topic, event) for event in events])
    handled: list[str] = []

    def handler(batch: list[Message]) -> None:
        if any(m.envelope.id == events[1].id for m in batch):
            raise ValueError("this one always breaks")
        handled.extend(m.envelope.id for m in batch)

    consumer = consumer_factory(topic, max_attempts=2)
    drain(consumer, handler, want=3)
    assert handled == [events[0].id, events[2].id]
    dead = _dlq_records(broker, topic, want=1)
    assert len(dead) == 1 and b"always breaks" in dict(dead[0].headers)["salon-error"]


def test_the_record_a_handler_refuses_is_the_one_dead_lettered_and_only_once(
    broker, topic_factory, publisher, consumer_factory
):
    topic = topic_factory()
    refused = submission(1)
    publisher.publish(topic, refused)
    publisher.publish_raw([(topic, b"k", b"{not json", [])])  # same batch, after the refused one
    attempts: list[int] = []

    def handler(batch: list[Message]) -> None:
        attempts.append(len(batch))
        if len(attempts) == 1:
            raise RetryableError("database busy")  # the batch is retried: nothing may be dead-lettered twice
        raise PoisonMessageError("refused by the handler")

    consumer = consumer_factory(topic)
    assert drain(consumer, handler, want=2) == 2
    assert attempts == [1, 1] and consumer.stats["dead_lettered"] == 2
    dead = _dlq_records(broker, topic, want=2)
    errors = {record.value: dict(record.headers)["salon-error"] for record in dead}
    assert set(errors) == {b"{not json", refused.to_bytes()}
    assert b"refused by the handler" in errors[refused.to_bytes()]
    assert b"not a salon event envelope" in errors[b"{not json"]


def test_a_member_closed_in_the_middle_of_its_join_does_not_wedge_the_group(topic_factory, publisher, consumer_factory):
    """Tansu never completes a rebalance after a LeaveGroup sent mid-join; close() must not send one."""
    topic = topic_factory()
    event = submission(1)
    publisher.publish(topic, event)
    group = f"g-midjoin-{uuid.uuid4().hex[:8]}"
    first = consumer_factory(topic, group=group)
    deadline = time.monotonic() + 20
    while not first._consumer.group_metadata().member_id:  # the broker gave it an id; the join goes on
        assert time.monotonic() < deadline
        assert first.process_once(lambda batch: None, max_batch=1, max_wait_ms=100) == 0
    assert first._consumer.group_metadata().state == MemberState.REBALANCING
    first.close()
    handled: list[str] = []
    second = consumer_factory(topic, group=group)
    assert drain(second, lambda batch: handled.extend(m.envelope.id for m in batch), want=1, timeout=60) == 1
    assert handled == [event.id]


def test_batches_close_at_max_batch_or_max_wait(topic_factory, publisher, consumer_factory):
    topic = topic_factory()
    publisher.publish_many([(topic, submission(i)) for i in range(5)])
    sizes: list[int] = []
    consumer = consumer_factory(topic)
    # The first poll includes the group join; keep going until all five arrived.
    deadline = time.monotonic() + 30
    while sum(sizes) < 5 and time.monotonic() < deadline:
        consumer.process_once(lambda batch: sizes.append(len(batch)), max_batch=3, max_wait_ms=1000)
    assert sum(sizes) == 5 and max(sizes) <= 3

    # A lone record is handed over once max_wait_ms passes, without waiting for a full batch.
    publisher.publish(topic, submission(9))
    started = time.monotonic()
    sizes.clear()
    while not sizes and time.monotonic() - started < 10:
        consumer.process_once(lambda batch: sizes.append(len(batch)), max_batch=100, max_wait_ms=300)
    assert sizes == [1]


def test_after_a_broker_restart_a_recreated_topic_is_read_from_its_start(tmp_path):
    """The memory-only broker forgets its topics; the same names come back starting at offset 0,
    while the member still holds its old positions (and Tansu answers fetches past the end with
    nothing). Every event published after the restart must still reach the handler."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"

    def start_broker() -> ManagedProcess:
        process = ManagedProcess(
            "broker",
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            tmp_path / "b.log",
        )
        process.start()
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port):
            assert process.alive and time.monotonic() < deadline, process.tail()
            time.sleep(0.1)
        return process

    broker_process = start_broker()
    bootstrap = f"127.0.0.1:{port}"
    planned = Settings().kafka_topic_partitions
    publisher = Publisher(bootstrap, client_id="tests", topics=["restarted"], partitions=planned)
    consumer = None
    try:
        ensure_topics(bootstrap, ["restarted"], partitions=planned)
        publisher.publish_many([("restarted", submission(i)) for i in range(30)])  # positions move well past 0
        consumer = Consumer(bootstrap, ["restarted"], group_id="g-restart", publisher=publisher, **FAST_GROUP)
        assert drain(consumer, lambda batch: None, want=30) == 30

        broker_process.kill()
        broker_process = start_broker()
        # The first client to ask for the topic's metadata makes Tansu create it with its default
        # partition count (it ignores allow_auto_topic_creation); the planned count is that default,
        # so the member's assignment still covers every partition.
        after = [submission(100 + i) for i in range(24)]
        deadline = time.monotonic() + 30
        while True:
            try:
                publisher.publish_many([("restarted", event) for event in after])
                break
            except BusError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        handled: list[str] = []
        partitions: set[int] = set()
        deadline = time.monotonic() + 60
        while len(handled) < len(after) and time.monotonic() < deadline:
            try:
                consumer.process_once(lambda batch: handled.extend(m.envelope.id for m in batch), max_wait_ms=300)
                partitions.update(tp.partition for tp in consumer.assignment)
            except BusError:
                time.sleep(0.5)
        assert sorted(handled) == sorted(event.id for event in after)
        probe = KafkaConsumer(bootstrap_servers=bootstrap, allow_auto_create_topics=False)
        try:
            assert probe.partitions_for_topic("restarted") == set(range(planned)), "Tansu's default changed?"
            assert partitions == set(range(planned)), "every partition is read"
        finally:
            probe.close()
    finally:
        if consumer is not None:
            consumer.close()
        publisher.close()
        broker_process.kill()


class _FailedSend:
    """A send the broker answered with its UNKNOWN error."""

    is_done = True
    exception = UnknownError("the broker could not store the batch")

    def get(self, timeout: float | None = None) -> None:
        raise self.exception


class _BrokerFailingUnknownOn:
    """A producer factory: real producers, except that sends to `topic` fail with UNKNOWN."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def __call__(self, **config):
        real = KafkaProducer(**config)
        broken_topic = self.topic

        class Producer:
            def send(self, topic, **kwargs):
                return _FailedSend() if topic == broken_topic else real.send(topic, **kwargs)

            def flush(self, timeout=None):
                real.flush(timeout=timeout)

            def close(self, timeout=None):
                real.close(timeout=timeout)

        return Producer()


def _records_and_partitions(broker: str, topic: str) -> tuple[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=broker)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return sum(consumer.end_offsets(partitions).values()), len(partitions)
    finally:
        consumer.close()


def test_a_topic_the_broker_keeps_failing_unknown_on_is_recreated_after_n_publishes_in_a_row(
    broker, topic_factory, publisher
):
    topic = topic_factory(partitions=2)
    publisher.publish(topic, submission())
    assert _records_and_partitions(broker, topic) == (1, 2)
    failing = Publisher(
        broker, topics=[topic], partitions=2, repair_after=3, producer_factory=_BrokerFailingUnknownOn(topic)
    )
    try:
        for _ in range(2):
            with pytest.raises(BusError):
                failing.publish(topic, submission())
        assert _records_and_partitions(broker, topic) == (1, 2), "two failures: the topic is left alone"

        with pytest.raises(BusError):
            failing.publish(topic, submission())
        assert _records_and_partitions(broker, topic) == (0, 2), "the third: a new, empty topic, as planned"
    finally:
        failing.close()
    publisher.publish(topic, submission())
    assert _records_and_partitions(broker, topic) == (1, 2)


def test_without_repair_after_a_failing_topic_is_never_recreated(broker, topic_factory, publisher):
    topic = topic_factory(partitions=1)
    publisher.publish(topic, submission())
    failing = Publisher(broker, topics=[topic], partitions=1, producer_factory=_BrokerFailingUnknownOn(topic))
    try:
        for _ in range(4):
            with pytest.raises(BusError):
                failing.publish(topic, submission())
    finally:
        failing.close()
    assert _records_and_partitions(broker, topic) == (1, 1)
