"""Index replication: every matcher replica holds the full index, fed from salon.vectors.

Matcher replicas share the partitions of salon.vectors in one consumer group, so each one
*handles* (stores, ranks, proposes) only the entities of its partitions. To rank against
all counterparts, each replica also runs an `IndexFeed`: a group-less reader assigned every
partition of salon.vectors that only learns vectors into the local index — no database
writes, no offset commits.

A vector event only names the entity: the FAISS id (`EntityVector.id`), the text for BM25
and the sector codes come from the database row that the owning replica writes in its
first transaction. An event whose row is not stored yet waits in `pending` and is
retried on every sync.

Consistency (see README "Scaling out"):
* Start: the feed starts at the matcher group's committed offsets, read *before* the
  database rebuild. Every event below them was fully handled before it was committed, so
  the rebuild has it; everything from them on is replayed by the feed (upserts are
  idempotent). No gap, some overlap.
* Steady state: `sync()` reads the log end offsets and consumes up to them, then retries
  pending rows. The matcher calls it between storing an entity's vector and ranking it
  (`handle_vector(before_match=...)`). For two entities X, Y stored on different replicas,
  say X's vector row committed first: X's event was in the log before X was handled, and
  Y's sync runs after Y's row committed, hence after X's, so Y's ranking sees X. The later
  of any two sees the earlier — the same guarantee a single matcher gives. Both may see
  each other; proposals are keyed by the pair (one `Match` row) and their event ids by the
  pair's versions, so that costs nothing twice.
* Idle replicas sync every loop turn (about every `max_wait_ms`), so a replica's index
  lags the others' writes by well under a second.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from services.matcher.state import MatcherState
from shared.errors import BusError, PoisonMessageError
from shared.events import Envelope, VectorData
from shared.models import ENTITY_TABLES, EntityVector, get_entities

log = logging.getLogger(__name__)


@dataclass
class FeedStats:
    read: int = 0  # records read from the topic
    applied: int = 0  # vectors learned into the local index
    skipped: int = 0  # already learned at that version (or newer)
    dropped: int = 0  # poison or superseded: the owning replica dead-letters or skips them
    syncs: int = 0
    pending: dict[str, tuple[str, int]] = field(default_factory=dict)  # entity id → (kind, version)

    def as_detail(self) -> dict[str, int]:
        return {
            "read": self.read,
            "applied": self.applied,
            "skipped": self.skipped,
            "dropped": self.dropped,
            "pending": len(self.pending),
            "syncs": self.syncs,
        }


class IndexFeed:
    """Reads every partition of the vectors topic and upserts what it reads into `state`."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group_id: str,
        engine: Engine,
        state: MatcherState,
        client_id: str,
        catch_up_timeout_s: float = 15.0,
        **overrides: Any,
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self._bootstrap = bootstrap
        self._engine = engine
        self._state = state
        self._catch_up_timeout_s = catch_up_timeout_s
        self.stats = FeedStats()
        config: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "group_id": None,  # no group: assigned every partition, never commits
            "enable_auto_commit": False,
            "allow_auto_create_topics": False,  # see shared.bus.Publisher
            "auto_offset_reset": "earliest",
            "client_id": client_id,
            "request_timeout_ms": 15000,
        }
        config.update(overrides)
        try:
            self._consumer = KafkaConsumer(**config)
        except KafkaError as exc:
            raise BusError(f"index feed cannot connect to {bootstrap}: {exc}") from exc
        self._partitions: list[TopicPartition] = []

    # --- start -----------------------------------------------------------------------
    def start(self, *, wait_s: float = 30.0) -> dict[int, int]:
        """Assign every partition at the group's committed offsets; call BEFORE rebuilding
        the index from the database. Returns the start offset of each partition."""
        committed = self._committed_offsets()
        self._assign(self._topic_partitions(wait_s))
        starts: dict[int, int] = {}
        for tp in self._partitions:
            offset = committed.get(tp.partition)
            if offset is None or offset < 0:
                self._consumer.seek_to_beginning(tp)
                starts[tp.partition] = 0
            else:
                self._consumer.seek(tp, offset)
                starts[tp.partition] = offset
        log.info("index feed on %s starts at %s", self.topic, starts)
        return starts

    def _topic_partitions(self, wait_s: float) -> list[TopicPartition]:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                partitions = self._consumer.partitions_for_topic(self.topic)
            except KafkaError as exc:
                raise BusError(f"index feed cannot read metadata of {self.topic}: {exc}") from exc
            if partitions:
                return [TopicPartition(self.topic, p) for p in sorted(partitions)]
            if time.monotonic() > deadline:
                raise BusError(f"topic {self.topic} has no partitions after {wait_s:.0f}s")
            time.sleep(0.5)

    def _assign(self, partitions: list[TopicPartition]) -> None:
        self._partitions = partitions
        self._consumer.assign(partitions)

    def _committed_offsets(self) -> dict[int, int]:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self._bootstrap, request_timeout_ms=10000, bootstrap_timeout_ms=10000
            )
        except KafkaError as exc:
            raise BusError(f"index feed cannot reach {self._bootstrap}: {exc}") from exc
        try:
            offsets = admin.list_group_offsets({self.group_id: None}).get(self.group_id, {})
        except KafkaError as exc:
            raise BusError(f"cannot read the committed offsets of {self.group_id}: {exc}") from exc
        finally:
            admin.close()
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == self.topic}

    # --- steady state ----------------------------------------------------------------
    def sync(self) -> int:
        """Consume up to the current log end of every partition and learn what arrived
        (plus pending rows now stored). Returns how many vectors were learned."""
        self.stats.syncs += 1
        self._pick_up_new_partitions()
        try:
            end = self._consumer.end_offsets(self._partitions)
        except KafkaError as exc:
            raise BusError(f"index feed cannot read end offsets of {self.topic}: {exc}") from exc
        self._reset_if_log_shrank(end)
        wanted: dict[str, tuple[str, int]] = {}
        deadline = time.monotonic() + self._catch_up_timeout_s
        while behind := self._behind(end):
            if time.monotonic() > deadline:
                raise BusError(f"index feed did not catch up on {self.topic} partitions {sorted(behind)}")
            try:
                polled = self._consumer.poll(timeout_ms=200)
            except KafkaError as exc:
                raise BusError(f"index feed poll failed: {exc}") from exc
            for records in polled.values():
                for record in records:
                    self._collect(record, wanted)
        for entity_id, (kind, version) in self.stats.pending.items():
            if version > wanted.get(entity_id, (kind, 0))[1]:
                wanted[entity_id] = (kind, version)
        return self._learn(wanted) if wanted else 0

    def _reset_if_log_shrank(self, end: dict[TopicPartition, int]) -> None:
        """A position past the log end means the (memory-only, embedded) broker restarted and
        lost the topic: what came before is in the index already, so read the new log."""
        for tp in self._partitions:
            position = self._consumer.position(tp)
            if position is not None and position > end.get(tp, 0):
                log.warning("index feed: %s[%d] is shorter than our position; rereading it", tp.topic, tp.partition)
                self._consumer.seek_to_beginning(tp)

    def _behind(self, end: dict[TopicPartition, int]) -> set[int]:
        behind = set()
        for tp in self._partitions:
            position = self._consumer.position(tp)
            if position is not None and position < end.get(tp, 0):
                behind.add(tp.partition)
        return behind

    def _pick_up_new_partitions(self) -> None:
        current = self._consumer.partitions_for_topic(self.topic) or set()
        if len(current) > len(self._partitions):
            known = {tp.partition for tp in self._partitions}
            added = [TopicPartition(self.topic, p) for p in sorted(current) if p not in known]
            self._assign(self._partitions + added)
            for tp in added:
                self._consumer.seek_to_beginning(tp)
            log.info("index feed: %s grew to %d partitions", self.topic, len(current))

    def _collect(self, record: Any, wanted: dict[str, tuple[str, int]]) -> None:
        self.stats.read += 1
        try:
            data: VectorData = Envelope.from_bytes(record.value).payload()
        except PoisonMessageError:
            self.stats.dropped += 1  # the owning replica dead-letters it
            return
        if self._state.vector_versions.get(data.entity_id, 0) >= data.version:
            self.stats.skipped += 1
            return
        if data.version > wanted.get(data.entity_id, (data.kind, 0))[1]:
            wanted[data.entity_id] = (data.kind, data.version)

    def _learn(self, wanted: dict[str, tuple[str, int]]) -> int:
        """Upsert every wanted entity whose vector row is stored at that version or newer.

        Stored versions are read first (two narrow columns), and only the entities ready to
        learn are loaded whole. During a burst most wanted entities are queued behind this
        replica's own partitions, not stored yet, and re-checked on every sync: loading
        them whole each time made an event cost time in proportion to the backlog."""
        try:
            with Session(self._engine) as session:
                stored_versions = dict(
                    session.exec(
                        select(EntityVector.entity_id, EntityVector.version).where(
                            col(EntityVector.entity_id).in_(list(wanted))
                        )
                    ).all()
                )
                ready = {eid: want for eid, want in wanted.items() if stored_versions.get(eid, 0) >= want[1]}
                waiting = {eid: want for eid, want in wanted.items() if eid not in ready}
                entity_versions = self._entity_versions(session, waiting)
                rows = (
                    {
                        row.entity_id: row
                        for row in session.exec(
                            select(EntityVector).where(col(EntityVector.entity_id).in_(list(ready)))
                        ).all()
                    }
                    if ready
                    else {}
                )
                entities = {}
                for kind in {kind for kind, _ in ready.values()}:
                    kind_ids = [entity_id for entity_id, (k, _) in ready.items() if k == kind]
                    entities.update({entity.id: entity for entity in get_entities(session, kind, kind_ids)})
        except OperationalError as exc:
            # Not learned yet, not lost: keep them pending for the next sync.
            self.stats.pending.update(wanted)
            raise BusError(f"index feed cannot read vectors: {exc.orig}") from exc
        for entity_id, (kind, version) in waiting.items():
            current = entity_versions.get(entity_id)
            if current is None or current > version:
                self.stats.pending.pop(entity_id, None)
                self.stats.dropped += 1  # deleted, poison, or superseded before it was stored
            else:
                self.stats.pending[entity_id] = (kind, version)  # its owner has not stored it yet
        learned = 0
        for entity_id in ready:
            entity, row = entities.get(entity_id), rows.get(entity_id)
            self.stats.pending.pop(entity_id, None)
            if entity is None or row is None or row.dim != self._state.dim or row.id is None:
                self.stats.dropped += 1  # deleted meanwhile, or a vector of the wrong size
                continue
            self._state.add(
                entity, row.id, np.frombuffer(cast(bytes, row.vector), dtype=np.float32), version=row.version
            )
            learned += 1
        self.stats.applied += learned
        return learned

    @staticmethod
    def _entity_versions(session: Session, wanted: dict[str, tuple[str, int]]) -> dict[str, int]:
        """Entity id → its stored version (absent: no such entity), two narrow columns per kind."""
        versions: dict[str, int] = {}
        for kind in {kind for kind, _ in wanted.values()}:
            table = ENTITY_TABLES[kind]
            kind_ids = [entity_id for entity_id, (k, _) in wanted.items() if k == kind]
            versions.update(session.exec(select(table.id, table.version).where(col(table.id).in_(kind_ids))).all())
        return versions

    def close(self) -> None:
        try:
            self._consumer.close()
        except KafkaError:  # closing after the broker went away must not mask the real error
            log.debug("index feed close failed", exc_info=True)
