"""Horizontal scaling on one machine: 2 embedders and 2 matchers in their consumer groups on the
embedded broker, topics with 4 partitions. Partitions spread over both members of each group;
kill -9 of one embedder and one matcher mid-stream moves their partitions to the survivors, and
every accepted submission is matched exactly once — nothing lost, nothing proposed twice.

The reconciler is held off (SALON_RECONCILE_AFTER_S=600): the consumer groups' hand-over alone
must deliver everything."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from sqlmodel import Session, col, select

from services.demo import PLURAL, demo_items
from services.launcher import Platform, free_port
from shared.models import (
    ENTITY_TABLES,
    SUBMITTER_ROLE,
    EntityVector,
    Match,
    Notification,
    ServiceStatus,
    utcnow,
)
from shared.security import create_key
from shared.settings import Settings

PARTITIONS = 4
ENTITIES = 64
HEARTBEAT_FRESH_S = 6  # heartbeats come every 2 s
SUBMISSIONS, VECTORS = "salon.submissions", "salon.vectors"


@pytest.fixture
def scaled(pg_url: str, tmp_path: Path) -> Iterator[Platform]:
    settings = Settings(
        data_dir=tmp_path / "var",
        # PostgreSQL: there the two matchers' transactions really overlap (SQLite has one writer;
        # tests/services/matcher/test_replica.py forces the overlaps on both databases).
        database_url=pg_url,
        kafka_bootstrap="",
        kafka_embedded_port=free_port(),
        api_port=free_port(),
        api_key_pepper="e2e-pepper-0123456789",
        kafka_topic_partitions=PARTITIONS,
        reconcile_after_s=600,
        match_top_k=3,  # fewer proposals per entity: the same hand-over, fewer notifications to wait for
    )
    with Platform(settings, replicas={"embedder": 2, "matcher": 2}) as platform:
        yield platform


def assignments(platform: Platform) -> dict[str, list[str]]:
    """Each live replica's partitions, from its heartbeat row (Tansu cannot describe groups);
    a replica whose heartbeat stopped (killed) is left out."""
    fresh_after = utcnow() - timedelta(seconds=HEARTBEAT_FRESH_S)
    with Session(platform.engine) as session:
        rows = session.exec(select(ServiceStatus)).all()
        return {
            row.name: list(row.detail.get("partitions", []))
            for row in rows
            if row.name.split("-")[0] in {"embedder", "matcher"}
            and row.state == "ready"
            and row.updated_at.replace(tzinfo=None) > fresh_after.replace(tzinfo=None)
        }


def wait_until(condition: Callable[[], Any], timeout: float, what: str, on_fail: Callable[[], str] = str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f}s; {on_fail()}")
        time.sleep(0.5)


def owned(assignment: dict[str, list[str]], instance: str, topic: str) -> set[int]:
    return {int(tp.rsplit(":", 1)[1]) for tp in assignment.get(instance, []) if tp.rsplit(":", 1)[0] == topic}


def spread_over(assignment: dict[str, list[str]], members: list[str], topic: str) -> bool:
    """Every partition owned exactly once, and every member owning at least one."""
    owners = [owned(assignment, member, topic) for member in members]
    every = [p for parts in owners for p in parts]
    return all(owners) and sorted(every) == list(range(PARTITIONS))


def demo_submissions() -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, owner, body) of the demo data, pitches interleaved with mandates and needs, so
    counterparts arrive together and land on both matchers at the same time."""
    by_kind = {kind: demo_items(kind) for kind in ("pitch", "mandate", "need")}
    order: list[tuple[str, str, dict[str, Any]]] = []
    while any(by_kind.values()):
        for kind in ("mandate", "need", "pitch", "pitch"):
            if by_kind[kind]:
                item = by_kind[kind].pop(0)
                order.append((kind, item["owner"], {k: v for k, v in item.items() if k not in {"ref", "owner"}}))
    return order[:ENTITIES]


def statuses(platform: Platform, ids: list[str]) -> Counter[str]:
    with Session(platform.engine) as session:
        counts: Counter[str] = Counter()
        for table in ENTITY_TABLES.values():
            counts.update(session.exec(select(table.status).where(col(table.id).in_(ids))).all())
        return counts


def dead_lettered(bootstrap: str) -> dict[str, int]:
    reader = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        dlqs = [TopicPartition(f"{topic}.dlq", 0) for topic in (SUBMISSIONS, VECTORS, "salon.matches")]
        return {tp.topic: offset for tp, offset in reader.end_offsets(dlqs).items()}
    finally:
        reader.close()


def test_two_embedders_and_two_matchers_share_partitions_and_survive_a_kill(scaled: Platform):
    platform = scaled
    started = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - started, 1)

    embedders, matchers = ["embedder-1", "embedder-2"], ["matcher-1", "matcher-2"]
    before = wait_until(
        lambda: (
            (a := assignments(platform))
            and spread_over(a, embedders, SUBMISSIONS)
            and spread_over(a, matchers, VECTORS)
            and a
        ),
        90,
        "both members of each group own partitions",
        lambda: f"assignments {assignments(platform)}",
    )

    phase("groups_settled_s")
    submissions = demo_submissions()
    keys: dict[str, dict[str, str]] = {}
    with Session(platform.engine) as session:
        for kind, owner, _ in submissions:
            if owner not in keys:
                _, raw = create_key(
                    session, role=SUBMITTER_ROLE[kind], name=owner, owner=owner, pepper=platform.settings.api_key_pepper
                )
                keys[owner] = {"Authorization": f"Bearer {raw}"}
        session.commit()

    accepted: list[str] = []
    half = len(submissions) // 2
    with httpx.Client(base_url=platform.api_url, timeout=30) as http:

        def submit(batch: list[tuple[str, str, dict[str, Any]]]) -> None:
            for kind, owner, body in batch:
                response = http.post(f"/v1/{PLURAL[kind]}", json=body, headers=keys[owner])
                assert response.status_code == 202, response.text
                accepted.append(response.json()["id"])

        submit(submissions[:half])
        # Mid-stream: some of the first half matched, the rest in flight in both groups.
        wait_until(lambda: statuses(platform, accepted)["matched"] >= 5, 120, "the first matches")
        in_flight = statuses(platform, accepted)
        platform.services["embedder-1"].kill()
        platform.services["matcher-1"].kill()
        submit(submissions[half:])
    phase("killed_and_submitted_s")

    wait_until(
        lambda: statuses(platform, accepted)["matched"] == len(accepted),
        240,
        "every accepted entity matched",
        lambda: (
            f"statuses {dict(statuses(platform, accepted))}; matcher-2 log:\n{platform.services['matcher-2'].tail()}"
        ),
    )
    phase("all_matched_s")

    def survivor_index() -> dict[str, Any]:
        with Session(platform.engine) as session:
            row = session.get(ServiceStatus, "matcher-2")
            return dict(row.detail) if row else {}

    # The survivor's index holds every entity, also those matcher-1 handled before it died:
    # learned from the topic by its index feed, not by handling them.
    replica = wait_until(
        lambda: (d := survivor_index()) and sum(d.get("index", {}).values()) == len(accepted) and d,
        30,
        "matcher-2 holds the full index",
        lambda: f"matcher-2 status {survivor_index()}",
    )
    after = wait_until(
        lambda: (
            (a := assignments(platform))
            and owned(a, "embedder-2", SUBMISSIONS) == set(range(PARTITIONS))
            and owned(a, "matcher-2", VECTORS) == set(range(PARTITIONS))
            and a
        ),
        60,
        "the survivors own every partition",
        lambda: f"assignments {assignments(platform)}",
    )

    with Session(platform.engine) as session:
        vectors = Counter(session.exec(select(EntityVector.entity_id)).all())
        matches = session.exec(select(Match)).all()
    pairs = Counter((m.a_id, m.b_id) for m in matches)

    def notifications() -> list[tuple[str, str, str]]:
        with Session(platform.engine) as session:
            return [(n.recipient, n.payload["match_id"], n.subject) for n in session.exec(select(Notification)).all()]

    # Every proposal notifies both sides; the killed matcher's unpublished outbox rows are
    # taken over by the other relays when their lease runs out.
    delivered = wait_until(
        lambda: (n := notifications()) and len(n) >= 2 * len(matches) and n,
        120,
        "both sides of every proposal notified",
        lambda: f"{len(notifications())} notifications for {len(matches)} proposals",
    )
    phase("all_notified_s")
    time.sleep(3)  # anything still in flight would be a duplicate: give it the chance to show
    delivered = notifications()
    duplicates = sum(count - 1 for count in Counter(delivered).values())
    report = {
        "accepted": len(accepted),
        "matched_when_killed": in_flight["matched"],
        "vector_rows": sum(vectors.values()),
        "proposals": len(matches),
        "notifications": len(delivered),
        "duplicate_notifications": duplicates,
        "phases": phases,
        "survivor_index": replica["index"],
        "survivor_feed": replica["feed"],
        "assignments_before": {k: v for k, v in sorted(before.items())},
        "assignments_after": {k: v for k, v in sorted(after.items())},
    }
    print("scaling report", json.dumps(report, indent=1))

    assert set(vectors) == set(accepted) and set(vectors.values()) == {1}, "one vector row per accepted entity"
    assert matches and max(pairs.values()) == 1, "one proposal per pair"
    assert duplicates == 0 and len(delivered) == 2 * len(matches), "each side told of each proposal once"
    assert dead_lettered(platform.settings.bootstrap) == dict.fromkeys(
        (f"{SUBMISSIONS}.dlq", f"{VECTORS}.dlq", "salon.matches.dlq"), 0
    ), "nothing dead-lettered"
    assert not [name for name in platform.check_alive() if name not in {"embedder-1", "matcher-1"}]
