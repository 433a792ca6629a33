"""The no-data-lost invariant as numbers: what the database holds for a set of accepted
submissions (issue #6). Used by `salon bench recovery` and by the fault tests.

The invariant: every submission the API accepted (2xx) ends with exactly one stored vector
and one set of match proposals, whatever failed in between. For the entities of one run:

* accepted      ids the API answered 2xx for;
* entities      rows with those ids; `ghosts` are rows of the run's owners that no client
                saw accepted (a write that half-happened behind a 5xx);
* matched       of those, in status `matched`;
* vectors       `EntityVector` rows for them;
* match_sets    the matcher's inbox rows "this entity version was proposed for" (one per
                entity version, keyed so that a re-driven or re-delivered event cannot add one);
* proposals     distinct `match.proposed` event ids in the outbox whose subject is one of
                them (consumers dedupe by id); each match yields exactly one per side, so
                `duplicate_proposals` (events beyond the matches an entity is part of) and
                `missing_proposals` (the reverse) must be 0; `repeated_events` counts outbox
                rows that repeat an id (harmless, reported for information);
* unpublished   outbox rows not yet handed to the broker (all of them, not only the run's).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from sqlalchemy import func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.models import ENTITY_TABLES, EntityStatus, EntityVector, Match, OutboxMessage, ProcessedEvent

MATCHER_INBOX = "matcher"  # services.matcher.handlers.CONSUMER


@dataclass(frozen=True)
class Ledger:
    accepted: int
    entities: int
    ghosts: int
    matched: int
    vectors: int
    match_sets: int
    proposals: int
    duplicate_proposals: int
    missing_proposals: int
    with_proposals: int
    repeated_events: int
    unpublished: int

    def problems(self) -> list[str]:
        """Every way the invariant is broken (empty when it holds)."""
        found = []
        for name in ("entities", "matched", "vectors", "match_sets"):
            if getattr(self, name) != self.accepted:
                found.append(f"{name}={getattr(self, name)} but accepted={self.accepted}")
        for name in ("ghosts", "duplicate_proposals", "missing_proposals", "unpublished"):
            if getattr(self, name):
                found.append(f"{name}={getattr(self, name)}")
        return found

    def line(self) -> str:
        return " ".join(f"{name}={value}" for name, value in asdict(self).items())


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def count_ledger(
    engine: Engine, accepted: dict[str, str], owners: Iterable[str], *, matches_topic: str, chunk_size: int = 500
) -> Ledger:
    """The ledger for the entities of one test (see the module docstring); ids are read
    `chunk_size` at a time (bound parameters per query)."""
    ids = list(accepted)
    owners = list(owners)
    entities = matched = vectors = match_sets = 0
    rows_of_owners: set[str] = set()
    events_per_subject: Counter[str] = Counter()  # distinct event ids: what consumers see
    repeated = 0  # outbox rows repeating an event id (two replicas proposing one pair): deduped downstream
    matches_per_entity: Counter[str] = Counter()
    seen_matches: set[tuple[str, str]] = set()  # a pair with its sides in two chunks is read twice
    with Session(engine) as session:
        for kind, table in ENTITY_TABLES.items():
            for entity_id, status, version in session.exec(
                select(table.id, table.status, table.version).where(col(table.owner).in_(owners))
            ):
                rows_of_owners.add(entity_id)
                if accepted.get(entity_id) == kind:
                    entities += 1
                    matched += status == EntityStatus.MATCHED
                    inbox_key = f"{kind}:{entity_id}@v{version}"
                    match_sets += session.get(ProcessedEvent, (MATCHER_INBOX, inbox_key)) is not None
        for chunk in _chunks(ids, chunk_size):
            vectors += session.exec(
                select(func.count()).select_from(EntityVector).where(col(EntityVector.entity_id).in_(chunk))
            ).one()
            for key, events, rows in session.exec(
                select(OutboxMessage.key, func.count(func.distinct(OutboxMessage.event_id)), func.count())
                .where(
                    OutboxMessage.topic == matches_topic,
                    col(OutboxMessage.key).in_(chunk),
                    col(OutboxMessage.payload).contains('"type":"match.proposed"'),
                )
                .group_by(OutboxMessage.key)
            ):
                events_per_subject[key] = events
                repeated += rows - events
            for a_id, b_id in session.exec(
                select(Match.a_id, Match.b_id).where(or_(col(Match.a_id).in_(chunk), col(Match.b_id).in_(chunk)))
            ):
                if (a_id, b_id) in seen_matches:
                    continue
                seen_matches.add((a_id, b_id))
                matches_per_entity[a_id] += 1
                matches_per_entity[b_id] += 1
        unpublished = session.exec(
            select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.published_at).is_(None))
        ).one()
    return Ledger(
        accepted=len(ids),
        entities=entities,
        ghosts=len(rows_of_owners - set(ids)),
        matched=matched,
        vectors=vectors,
        match_sets=match_sets,
        proposals=sum(events_per_subject.values()),
        duplicate_proposals=sum(max(0, events_per_subject[i] - matches_per_entity[i]) for i in ids),
        missing_proposals=sum(max(0, matches_per_entity[i] - events_per_subject[i]) for i in ids),
        with_proposals=sum(1 for i in ids if events_per_subject[i]),
        repeated_events=repeated,
        unpublished=unpublished,
    )


def wait_settled(
    engine: Engine,
    accepted: dict[str, str],
    owners: Iterable[str],
    *,
    matches_topic: str,
    timeout: float,
    poll_s: float = 1.0,
) -> Ledger:
    """Count until every accepted entity is matched and the outbox is empty (or time runs out)."""
    owners = list(owners)
    deadline = time.monotonic() + timeout
    ledger = count_ledger(engine, accepted, owners, matches_topic=matches_topic)
    while time.monotonic() < deadline and (ledger.matched < ledger.accepted or ledger.unpublished):
        time.sleep(poll_s)
        ledger = count_ledger(engine, accepted, owners, matches_topic=matches_topic)
    return ledger
