"""The Kafka bus: thin wrappers over kafka-python with salon's delivery rules.

* Producer: `acks=all`, keyed by the event subject so one entity's events stay ordered.
* Consumer: auto-commit off; poll, handle, commit only after the handler's effect is stored.
  Poison messages go to `<topic>.dlq` with the error; transient failures are retried from
  the same offsets, so nothing accepted is skipped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownError, UnknownTopicOrPartitionError
from kafka.structs import MemberState, OffsetAndMetadata, TopicPartition

from shared import faults, metrics
from shared.errors import BusError, PoisonMessageError, SalonError
from shared.events import Envelope
from shared.logs import log_context

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"


class RetryableError(SalonError):
    """The handler could not store its effect now (database busy, broker away); retry later."""


def ensure_topics(bootstrap: str, topics: Iterable[str], *, partitions: int, with_dlq: bool = True) -> list[str]:
    """Create missing topics (and their dead-letter topics); returns the names created."""
    wanted: list[str] = []
    for name in topics:
        wanted.append(name)
        if with_dlq:
            wanted.append(name + DLQ_SUFFIX)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, bootstrap_timeout_ms=10000)
    except KafkaError as exc:
        raise BusError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        created: list[str] = []
        for name in missing:
            # One request per topic: a concurrent creator makes only its own topic fail.
            try:
                admin.create_topics([NewTopic(name, partitions if not name.endswith(DLQ_SUFFIX) else 1, 1)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created
    except KafkaError as exc:
        raise BusError(f"cannot create topics on {bootstrap}: {exc}") from exc
    finally:
        admin.close()


def recreate_topic(bootstrap: str, topic: str, *, partitions: int, wait_s: float = 10.0) -> None:
    """Delete `topic` and create it again with `partitions` (everything in it is gone)."""
    with _admin(bootstrap, timeout_ms=10000) as admin:
        try:
            with contextlib.suppress(UnknownTopicOrPartitionError):
                admin.delete_topics([topic])
            deadline = time.monotonic() + wait_s
            while topic in set(admin.list_topics()) and time.monotonic() < deadline:
                time.sleep(0.1)
        except KafkaError as exc:
            raise BusError(f"cannot delete {topic} on {bootstrap}: {exc}") from exc
    ensure_topics(bootstrap, [topic], partitions=partitions, with_dlq=False)  # tolerates a racing creator


@contextlib.contextmanager
def _admin(bootstrap: str, *, timeout_ms: int) -> Iterator[KafkaAdminClient]:
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms
        )
    except KafkaError as exc:
        raise BusError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        yield admin
    finally:
        admin.close()


def broker_topics(bootstrap: str, *, timeout_ms: int = 3000) -> set[str]:
    """The broker's topic names; raises BusError when it does not answer."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms
        )
    except KafkaError as exc:
        raise BusError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        return set(admin.list_topics())
    except KafkaError as exc:
        raise BusError(f"Kafka at {bootstrap} did not list topics: {exc}") from exc
    finally:
        admin.close()


class Publisher:
    """Publishes envelopes; `publish_many` returns only when the broker acknowledged all.

    After a failed publish the underlying producer is discarded and rebuilt on the next
    call, so a broker that restarted (and forgot producer ids and topics) is picked up.
    Before the rebuild it creates `topics` again with their planned partition count. Our
    clients ask the broker not to auto-create topics, whose default partition count may
    differ from the plan (a group keeps its old assignment and never reads a partition
    added under it). Apache Kafka honours that; Tansu does not, re-creating any topic a
    client asks about with 4 partitions, which is why the default plan is 4 partitions.

    `repair_after` (0: never) deletes and re-creates a topic whose produces failed with the
    broker's UNKNOWN error that many publishes in a row. That is how a restarted embedded
    broker (Tansu 0.6, memory storage) can break: it keeps counting records it no longer serves
    and may refuse new ones on those partitions; a new topic clears it
    (tests/e2e/test_embedded_broker_restart.py). What the topic held is lost to the broker,
    not to salon: the database is the source of truth, and the reconciler re-drives every
    entity stuck before `matched`.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "salon",
        topics: Sequence[str] = (),
        partitions: int = 1,
        repair_after: int = 0,
        producer_factory: Callable[..., KafkaProducer] = KafkaProducer,
        **overrides: Any,
    ) -> None:
        self._bootstrap = bootstrap
        self._producer_factory = producer_factory
        self._topics = list(topics)
        self._partitions = partitions
        self._failed = False
        self._repair_after = repair_after
        self._unknown_errors: Counter[str] = Counter()  # publishes in a row that failed UNKNOWN, by topic
        self._config: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "client_id": client_id,
            "allow_auto_create_topics": False,
            "acks": "all",
            "retries": 5,
            "linger_ms": 5,
            "max_in_flight_requests_per_connection": 1,  # keeps per-key order across retries
            # Idempotence ties the producer to broker-side state that a restarted embedded
            # broker has lost; consumers dedupe by event id instead.
            "enable_idempotence": False,
            "request_timeout_ms": 15000,
            "max_block_ms": 15000,
        }
        self._config.update(overrides)
        self._producer: KafkaProducer | None = None
        self._connect()

    def _connect(self) -> KafkaProducer:
        if self._producer is None:
            if self._failed and self._topics:
                # A restarted broker has no topics: make them as planned before anything else can.
                ensure_topics(self._bootstrap, self._topics, partitions=self._partitions)
            try:
                self._producer = self._producer_factory(**self._config)
            except KafkaError as exc:
                raise BusError(f"cannot create a producer for {self._config['bootstrap_servers']}: {exc}") from exc
        return self._producer

    def publish_many(self, items: Sequence[tuple[str, Envelope]], *, timeout_s: float = 30.0) -> None:
        """Send (topic, envelope) pairs keyed by subject and wait for every acknowledgement."""
        self.publish_raw(
            [(topic, env.subject.encode(), env.to_bytes(), []) for topic, env in items], timeout_s=timeout_s
        )

    def publish(self, topic: str, envelope: Envelope, *, timeout_s: float = 30.0) -> None:
        self.publish_many([(topic, envelope)], timeout_s=timeout_s)

    def publish_raw(
        self,
        items: Sequence[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]],
        *,
        timeout_s: float = 30.0,
    ) -> None:
        producer = self._connect()
        sent: list[tuple[str, Any]] = []
        try:
            for topic, key, value, headers in items:
                sent.append((topic, producer.send(topic, key=key, value=value, headers=headers or None)))
            producer.flush(timeout=timeout_s)
            for _topic, future in sent:
                future.get(timeout=timeout_s)
        except KafkaError as exc:
            self._discard()
            self._repair_broken_topics(sent)
            raise BusError(f"publish failed: {exc}") from exc
        if self._unknown_errors:  # usually empty: nothing to reset on the hot path
            for topic, _future in sent:
                self._unknown_errors.pop(topic, None)

    def _repair_broken_topics(self, sent: Sequence[tuple[str, Any]]) -> None:
        if not self._repair_after:
            return
        failed = {topic for topic, future in sent if future.is_done and isinstance(future.exception, UnknownError)}
        for topic in {topic for topic, _future in sent} - failed:
            self._unknown_errors.pop(topic, None)
        for topic in failed:
            self._unknown_errors[topic] += 1
            if self._unknown_errors[topic] < self._repair_after:
                continue
            log.error(
                "%s: %d publishes in a row failed with the broker's UNKNOWN error; deleting and re-creating "
                "the topic (the reconciler re-drives what it held)",
                topic,
                self._unknown_errors[topic],
            )
            try:
                recreate_topic(self._bootstrap, topic, partitions=self._partitions)
            except BusError:
                log.warning("could not re-create %s; trying again after the next failure", topic, exc_info=True)
                continue
            del self._unknown_errors[topic]
            metrics.TOPICS_RECREATED.labels(topic).inc()

    def _discard(self) -> None:
        self._failed = True
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except KafkaError:  # it is being thrown away because it failed
                log.debug("discarding a failed producer", exc_info=True)

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)
            except KafkaError:  # unsent records stay in the outbox and are sent by the next relay
                log.warning("producer did not flush on close", exc_info=True)
            self._producer = None


@dataclass(frozen=True)
class Message:
    """One consumed record: the parsed envelope and where it came from."""

    envelope: Envelope
    topic: str
    partition: int
    offset: int


BatchHandler = Callable[[list[Message]], object]
EventHandler = Callable[[Envelope], object]


class Consumer:
    """A consumer-group member that commits after success and dead-letters poison.

    The loop is quix-streams-like: poll a batch (up to `max_batch` records or
    `max_wait_ms`, whichever first), hand it to the handler, commit its offsets.
    On `RetryableError` (or any unexpected error, up to `max_attempts`) it seeks back and
    retries the same batch; `PoisonMessageError` sends the record to `<topic>.dlq`.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        *,
        group_id: str,
        publisher: Publisher,
        session_timeout_ms: int = 6000,
        heartbeat_interval_ms: int = 1000,
        max_poll_interval_ms: int = 30000,
        max_attempts: int = 5,
        dedupe_cache_size: int = 10000,
        lag_every_s: float = 5.0,
        **overrides: Any,
    ) -> None:
        config: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "group_id": group_id,
            "allow_auto_create_topics": False,  # see Publisher: topics are created as planned
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
            "max_poll_interval_ms": max_poll_interval_ms,
            "request_timeout_ms": max(session_timeout_ms + 5000, 15000),
        }
        config.update(overrides)
        try:
            self._consumer = KafkaConsumer(*topics, **config)
        except KafkaError as exc:
            raise BusError(f"cannot join group {group_id} on {bootstrap}: {exc}") from exc
        self.group_id = group_id
        self._session_timeout_s = session_timeout_ms / 1000
        self._topics = set(topics)
        self._topic_ids: dict[str, str] = {}
        self._recreated: set[str] = set()
        self._recreated_lock = threading.Lock()
        self._watch_topic_ids()
        self._publisher = publisher
        self._max_attempts = max_attempts
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._recent_size = dedupe_cache_size
        self.stats = {"handled": 0, "duplicates": 0, "dead_lettered": 0, "retries": 0, "lag": 0}
        # Lag is measured from the loop's own thread (KafkaConsumer is not thread-safe), at most this often.
        self._lag_every_s = lag_every_s
        self._lag_due = 0.0
        self._lag_partitions: set[TopicPartition] = set()
        # Records of the current batch already in the DLQ, so a retried batch does not send them twice.
        self._dead_lettered: set[tuple[str, int, int]] = set()

    # --- public loop -----------------------------------------------------------------
    def run(self, handler: EventHandler, *, stop: threading.Event, **batching: int) -> None:
        """Handle events one at a time (commits still happen per polled batch)."""

        def per_event(batch: list[Message]) -> None:
            for message in batch:
                with log_context(**message_fields([message])):
                    handler(message.envelope)

        self.run_batches(per_event, stop=stop, **batching)

    def run_batches(
        self, handler: BatchHandler, *, stop: threading.Event, max_batch: int = 100, max_wait_ms: int = 200
    ) -> None:
        while not stop.is_set():
            self.process_once(handler, max_batch=max_batch, max_wait_ms=max_wait_ms, stop=stop)

    def process_once(
        self,
        handler: BatchHandler,
        *,
        max_batch: int = 100,
        max_wait_ms: int = 200,
        stop: threading.Event | None = None,
    ) -> int:
        """Poll one batch, handle it, commit it. Returns the number of records consumed."""
        records = self._rewind_recreated_topics(self._poll_batch(max_batch, max_wait_ms))
        if time.monotonic() >= self._lag_due:
            self.refresh_lag(records)
        if not records:
            return 0
        metrics.count_by_topic(metrics.EVENTS_CONSUMED, self.group_id, records)
        attempt = 0
        while True:
            attempt += 1
            try:
                self._handle(records, handler)
                break
            except (RetryableError, BusError) as exc:  # the store or the broker is away: never give up
                self.stats["retries"] += 1
                metrics.count_by_topic(metrics.EVENTS_FAILED, self.group_id, records)
                log.warning(
                    "retryable failure in %s (attempt %d): %s",
                    self.group_id,
                    attempt,
                    exc,
                    extra=record_fields(records),
                )
            except Exception as exc:  # the error hook decides: retry, then dead-letter
                self.stats["retries"] += 1
                metrics.count_by_topic(metrics.EVENTS_FAILED, self.group_id, records)
                if attempt >= self._max_attempts:
                    log.error(
                        "giving up on batch in %s after %d attempts: %s",
                        self.group_id,
                        attempt,
                        exc,
                        exc_info=True,
                        extra=record_fields(records),
                    )
                    self._dead_letter_each(records, handler, exc)
                    break
                log.warning(
                    "failure in %s (attempt %d): %r",
                    self.group_id,
                    attempt,
                    exc,
                    exc_info=True,
                    extra=record_fields(records),
                )
            if stop is not None and stop.is_set():
                return 0  # offsets stay uncommitted: the batch is handled again after restart
            time.sleep(min(0.2 * 2**attempt, 5.0))
        faults.reach("after_effect_before_commit")
        self._commit(records)
        return len(records)

    def close(self) -> None:
        # Tansu (the embedded broker) never completes a rebalance when a member leaves the group
        # in the middle of its own join: the next member waits for minutes (reproduced with bare
        # kafka-python). So a member still joining first finishes the join (its fetched records
        # are not committed: the next owner gets them), and one that cannot leaves by session expiry.
        deadline = time.monotonic() + self._session_timeout_s
        try:
            while self._joining() and time.monotonic() < deadline:
                self._consumer.poll(timeout_ms=200)
            if self._joining():
                log.warning("%s: still joining at close; leaving the group by session expiry", self.group_id)
                return
            self._consumer.close()
        except KafkaError:  # closing a consumer whose broker went away must not mask the real error
            log.debug("consumer close failed", exc_info=True)

    def _joining(self) -> bool:
        return bool(self._consumer.group_metadata().state == MemberState.REBALANCING)

    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    def refresh_lag(self, in_hand: Sequence[Any] = ()) -> dict[TopicPartition, int]:
        """Records of each owned partition not yet handled: the high watermark the last fetch
        reported minus this member's position, plus the polled records `in_hand` (not handled
        yet); sets the `salon_consumer_lag` gauges and `stats["lag"]`. Call from the consumer's
        own thread.

        Measured from the client's own state, as Kafka's `records-lag` metric is, never by
        asking the broker: kafka-python's `end_offsets` was seen blocking far past its
        timeout right after a broker restart, which stalled the whole consumer loop. A
        partition not fetched yet (no high watermark) leaves the measurement incomplete, and
        `lag_measured_at` then stays old, so the reconciler treats the backlog as unknown.
        """
        self._lag_due = time.monotonic() + self._lag_every_s
        owned = self.assignment
        for gone in self._lag_partitions - owned:  # now another member's to report
            with contextlib.suppress(KeyError):  # never measured
                metrics.CONSUMER_LAG.remove(self.group_id, gone.topic, str(gone.partition))
        self._lag_partitions = owned
        held: Counter[TopicPartition] = Counter(TopicPartition(r.topic, r.partition) for r in in_hand)
        lag: dict[TopicPartition, int] = {}
        complete = True
        for tp in owned:
            highwater, position = self._highwater_and_position(tp)
            if highwater is None or position is None:
                complete = False
                continue
            lag[tp] = max(0, highwater - position) + held[tp]
            metrics.CONSUMER_LAG.labels(self.group_id, tp.topic, str(tp.partition)).set(lag[tp])
        self.stats["lag"] = sum(lag.values())
        if complete:
            self.stats["lag_measured_at"] = int(time.time())  # the reconciler trusts only a recent measurement
        return lag

    def _highwater_and_position(self, tp: TopicPartition) -> tuple[int | None, int | None]:
        """The partition's last reported high watermark and this member's fetch position,
        both from the client's memory (None when not known yet, or no longer assigned)."""
        try:
            highwater = self._consumer.highwater(tp)
        except KafkaError:  # IllegalStateError: revoked since `assignment` was read
            return None, None
        # kafka-python keeps the position in its subscription state; the public `position()`
        # would ask the coordinator when it is missing, which is what must not happen here.
        state = self._consumer._subscription.assignment.get(tp)
        if state is None or not state.has_valid_position:
            return highwater, None
        return highwater, state.position.offset

    # --- internals -------------------------------------------------------------------
    def _watch_topic_ids(self) -> None:
        """Notice when a subscribed topic is deleted and created again under the same name.

        The embedded broker is memory-only: after a restart every topic is new and starts at
        offset 0, but this member keeps fetching from its old positions, and Tansu answers a
        fetch past the end with nothing rather than OFFSET_OUT_OF_RANGE. Without a rewind, the
        first records of each new partition would be skipped. kafka-python sees the new topic
        id in its metadata; there is no public hook for it, hence the cluster listener.
        """
        cluster = getattr(self._consumer, "_cluster", None)
        if cluster is None or not hasattr(cluster, "add_listener") or not hasattr(cluster, "topic_id"):
            log.warning(
                "%s: cannot watch topic ids with this kafka-python; a re-created topic is not rewound", self.group_id
            )
            return

        def on_metadata(updated: Any) -> None:  # runs on kafka-python's network thread
            for topic in self._topics:
                topic_id = updated.topic_id(topic)
                if topic_id is None:
                    continue
                with self._recreated_lock:
                    known = self._topic_ids.setdefault(topic, topic_id)
                    if known != topic_id:
                        self._topic_ids[topic] = topic_id
                        self._recreated.add(topic)

        cluster.add_listener(on_metadata)

    def _rewind_recreated_topics(self, records: list[Any]) -> list[Any]:
        """Read re-created topics again from their beginning (as a reset to 'earliest' after
        OFFSET_OUT_OF_RANGE would); records just polled from them come again, so they are dropped."""
        with self._recreated_lock:
            recreated, self._recreated = self._recreated, set()
        if not recreated:
            return records
        owned = [tp for tp in self._consumer.assignment() if tp.topic in recreated]
        log.warning(
            "%s: %s re-created (broker restarted?); reading it from the start", self.group_id, sorted(recreated)
        )
        if owned:
            self._consumer.seek_to_beginning(*owned)
        return [record for record in records if record.topic not in recreated]

    def _poll_batch(self, max_batch: int, max_wait_ms: int) -> list[Any]:
        """Up to `max_batch` records: waits up to `max_wait_ms` for the first ones, then takes
        only what has already arrived. Lingering for a fuller batch would add up to
        `max_wait_ms` to every event's latency at a steady rate (measured by `salon bench
        latency`); under load, batches fill by themselves while the handler works."""
        records: list[Any] = []
        timeout_ms = max_wait_ms
        while len(records) < max_batch:
            try:
                polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_batch - len(records))
            except KafkaError as exc:
                raise BusError(f"poll failed in {self.group_id}: {exc}") from exc
            for partition_records in polled.values():
                records.extend(partition_records)
            if not polled:
                break
            timeout_ms = 0
        return records

    def _handle(self, records: list[Any], handler: BatchHandler) -> None:
        batch: list[Message] = []
        sources: list[Any] = []  # the record of each message in `batch`
        duplicates: list[Any] = []  # counted once the batch succeeds, not on every retry
        batch_ids: set[str] = set()
        for record in records:
            try:
                envelope = Envelope.from_bytes(record.value)
                envelope.payload()  # validates data against its schema before the handler sees it
            except PoisonMessageError as exc:
                self._send_to_dlq(record, exc)
                continue
            if envelope.id in self._recent or envelope.id in batch_ids:
                self.stats["duplicates"] += 1
                duplicates.append(record)
                continue
            batch_ids.add(envelope.id)
            batch.append(Message(envelope, record.topic, record.partition, record.offset))
            sources.append(record)
        if batch:
            try:
                with log_context(**message_fields(batch)), metrics.HANDLER_DURATION.labels(self.group_id).time():
                    handler(batch)
            except PoisonMessageError as exc:
                # The poison is among the decoded records (the undecodable ones are dead-lettered already).
                if len(batch) == 1:
                    self._send_to_dlq(sources[0], exc)
                    return
                self._dead_letter_each(sources, handler, exc)
                return
        for message in batch:
            self._remember(message.envelope.id)
        self.stats["handled"] += len(batch)
        metrics.count_by_topic(metrics.EVENTS_DUPLICATE, self.group_id, duplicates)
        if batch:
            metrics.count_by_topic(metrics.EVENTS_HANDLED, self.group_id, batch)
            log.info("handled %d event(s) from %s", len(batch), batch[0].topic, extra=message_fields(batch))

    def _dead_letter_each(self, records: list[Any], handler: BatchHandler, batch_error: Exception) -> None:
        """Isolate the bad record(s): handle one by one, dead-letter those that still fail."""
        for record in records:
            try:
                envelope = Envelope.from_bytes(record.value)
                if envelope.id in self._recent:
                    continue
                handler([Message(envelope, record.topic, record.partition, record.offset)])
                self._remember(envelope.id)
                metrics.EVENTS_HANDLED.labels(self.group_id, record.topic).inc()
            except (RetryableError, BusError):
                raise
            except Exception as exc:  # noqa: BLE001 - recorded in the DLQ with its error
                self._send_to_dlq(record, exc if len(records) > 1 else batch_error)

    def _send_to_dlq(self, record: Any, error: Exception) -> None:
        where = (record.topic, record.partition, record.offset)
        if where in self._dead_lettered:
            return
        headers = [
            ("salon-error", f"{type(error).__name__}: {error}"[:2000].encode()),
            ("salon-source-topic", record.topic.encode()),
            ("salon-source-partition", str(record.partition).encode()),
            ("salon-source-offset", str(record.offset).encode()),
            ("salon-consumer-group", self.group_id.encode()),
        ]
        self._publisher.publish_raw([(record.topic + DLQ_SUFFIX, record.key, record.value, headers)])
        self._dead_lettered.add(where)
        self.stats["dead_lettered"] += 1
        metrics.EVENTS_DEAD_LETTERED.labels(self.group_id, record.topic).inc()
        log.error(
            "dead-lettered %s[%d]@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            error,
            exc_info=error,
            extra=record_fields([record]),
        )

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > self._recent_size:
            self._recent.popitem(last=False)

    def _commit(self, records: list[Any]) -> None:
        self._dead_lettered.clear()
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if tp not in offsets or offsets[tp].offset <= record.offset:
                offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
        try:
            self._consumer.commit(offsets)
        except KafkaError as exc:
            # A rebalance took the partition away: its new owner re-handles these records,
            # which is harmless because every effect is idempotent.
            log.warning("commit failed in %s (records will be re-delivered): %s", self.group_id, exc)


def message_fields(batch: Sequence[Message]) -> dict[str, Any]:
    """Log fields naming the event(s) in hand: all of them for one, ids (up to 20) for a batch."""
    if len(batch) == 1:
        message = batch[0]
        return {
            "event_id": message.envelope.id,
            "event_type": message.envelope.type,
            "entity_id": message.envelope.subject,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
        }
    topics = sorted({message.topic for message in batch})
    return {
        "topic": topics[0] if len(topics) == 1 else topics,
        "batch_size": len(batch),
        "event_ids": [message.envelope.id for message in batch[:20]],
    }


def record_fields(records: Sequence[Any]) -> dict[str, Any]:
    """Log fields naming raw records (before or without decoding a whole batch)."""
    if len(records) == 1:
        record = records[0]
        try:
            event_id: str | None = Envelope.from_bytes(record.value).id
        except PoisonMessageError:
            event_id = None
        return {
            "event_id": event_id,
            "entity_id": record.key.decode(errors="replace") if record.key else None,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        }
    topics = sorted({record.topic for record in records})
    return {"topic": topics[0] if len(topics) == 1 else topics, "batch_size": len(records)}
