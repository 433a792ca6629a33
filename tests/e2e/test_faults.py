"""No data lost under faults (issue #6), with real processes: the embedded Kafka broker, the
api, embedder, matcher and notifier, on SQLite and on the local PostgreSQL.

Every test ends by counting (tests/e2e/invariants.py): accepted = entities = vectors =
match sets, every entity matched, zero duplicate or missing proposals, nothing half
written. The ledgers are printed ("FAULT LEDGER …", shown with `pytest -s`) and logged.

One platform per database serves the whole module (starting one costs a model load); each
test submits as its own participants and counts only their entities. Faults that must hit
an exact place (between a batch's effect and its offset commit, between the matcher's two
transactions, between a webhook's send and its record) use `SALON_FAULT_INJECT`: the
process is restarted with the point armed and SIGKILLs itself there (shared/faults.py).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from sqlalchemy import text
from sqlmodel import Session, col, select

from services.launcher import ManagedProcess, Platform, free_port, port_open
from shared.bus import DLQ_SUFFIX
from shared.db import make_engine
from shared.events import Envelope, SubmissionData, Topic, VectorData
from shared.models import OutboxMessage, ServiceStatus
from shared.settings import Settings
from shared.webhooks.models import MessageStatus, WebhookMessage, message_id_for
from tests.conftest import PG_ADMIN_URL, fresh_pg_database
from tests.e2e.invariants import PLURAL, Ledger, Participants, Stream, settle, varied_bodies
from tests.webhook_receiver import Receiver

# The issue asks for at least 2,000 submissions around the broker kill; a developer may
# lower it locally (FAULT_TEST_SUBMISSIONS=300) on a busy machine. Part of `make test`: about
# 7 minutes per database on this 2-core machine (the broker-kill test about 3 of them).

BROKER_KILL_SUBMISSIONS = int(os.environ.get("FAULT_TEST_SUBMISSIONS", "2000"))
LOCK_TIMEOUT_MS = 1500
SETTLE_S = 900  # generous: a loaded two-core CI machine embeds a few dozen texts per second


# --- the platform, once per database ---------------------------------------------------------
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield ""
        return
    with fresh_pg_database("salon_faults") as url:
        yield url


@pytest.fixture(scope="module")
def platform(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("faults") / "var",
        database_url=database_url,
        kafka_bootstrap="",
        kafka_embedded_port=free_port(),
        api_port=free_port(),
        api_key_pepper="e2e-faults-pepper-0123456789",
        reconcile_after_s=10,  # events lost with the broker are re-driven after this
        db_lock_timeout_ms=LOCK_TIMEOUT_MS,
        rate_limit_per_minute=600_000,  # the load is the point here, not the per-key limit
        rate_limit_burst=10_000,
        webhook_allow_loopback=True,
        webhook_timeout_s=10,  # generous on a loaded machine (a timed-out attempt retries after 5 s, then 5 min)
    )
    with Platform(settings) as running:
        yield running


@pytest.fixture(autouse=True)
def every_process_up(platform: Platform) -> Iterator[None]:
    """A test starts and ends with every process running without armed faults."""
    heal(platform)
    yield
    heal(platform)


def heal(platform: Platform) -> None:
    if platform.broker is not None and not platform.broker.alive:
        platform.restart_broker()
    for name, process in platform.services.items():
        if not process.alive or process.env.get("SALON_FAULT_INJECT"):
            restart(platform, name, fault="")


def restart(platform: Platform, name: str, *, fault: str) -> None:
    """Stop `name` (if it runs), start it with `fault` armed (or none) and wait until ready."""
    process = platform.services[name]
    process.stop()
    with Session(platform.engine) as session:  # its old "ready" row must not count as the new one's
        row = session.get(ServiceStatus, name)
        if row is not None:
            session.delete(row)
            session.commit()
    process.env = {**platform.env, "SALON_FAULT_INJECT": fault}
    process.start()
    deadline = time.monotonic() + 240
    while not (port_open("127.0.0.1", platform.settings.api_port) if name == "api" else platform._is_ready(name)):
        assert process.alive, f"{name} died while starting:\n{process.tail()}"
        assert time.monotonic() < deadline, f"{name} not ready:\n{process.tail()}"
        time.sleep(0.3)


def wait_for_injected_kill(process: ManagedProcess, point: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while process.alive:
        assert time.monotonic() < deadline, f"{process.name} never reached {point}:\n{process.tail()}"
        time.sleep(0.2)
    assert process.process is not None and process.process.returncode == -signal.SIGKILL
    assert f"FAULT-INJECT {point}" in process.tail(200), process.tail()


def matches_topic(platform: Platform) -> str:
    return platform.settings.topic(Topic.MATCHES)


def ledger_of(platform: Platform, stream: Stream, participants: Participants, label: str) -> Ledger:
    database = "postgresql" if platform.settings.database_url else "sqlite"
    return settle(
        platform.engine,
        stream.accepted,
        participants.owners,
        matches_topic=matches_topic(platform),
        timeout=SETTLE_S,
        label=f"{label} / {database}",
    )


def assert_holds(ledger: Ledger, stream: Stream) -> None:
    assert not stream.unexpected, f"answers other than 202/503: {stream.unexpected[:5]}"
    assert set(stream.statuses) <= {202, 503}, stream.statuses
    assert not ledger.problems(), ledger.problems()


# --- 1. poison messages ------------------------------------------------------------------------
def _read_topic(bootstrap: str, topic: str, want: int, timeout: float = 60) -> list:
    reader = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1000, allow_auto_create_topics=False
    )
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < want and time.monotonic() < deadline:
            partitions = reader.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.5)
                continue
            reader.assign([TopicPartition(topic, p) for p in partitions])
            reader.seek_to_beginning()
            records = []
            stop_at = time.monotonic() + 3
            while time.monotonic() < stop_at:
                for batch in reader.poll(timeout_ms=500).values():
                    records.extend(batch)
            if len(records) < want:
                time.sleep(1)
    finally:
        reader.close()
    return records


@pytest.mark.timeout(900)
def test_poison_goes_to_the_dead_letter_topic_and_the_partitions_keep_flowing(platform: Platform):
    bootstrap = platform.settings.bootstrap
    submissions = platform.settings.topic(Topic.SUBMISSIONS)
    vectors = platform.settings.topic(Topic.VECTORS)
    participants = Participants.create(platform.engine, platform.settings.api_key_pepper, prefix="fault")
    ghost = str(uuid.uuid4())  # a pitch the database never had
    schema_valid_ghost = Envelope.wrap(
        "pitch.submitted",
        ghost,
        SubmissionData(
            kind="pitch", entity_id=ghost, version=1, owner="nobody", text="幽灵项目 ghost pitch", fields={}
        ),
    )
    wrong_dim = Envelope.wrap(
        "vector.computed",
        ghost,
        VectorData(
            kind="pitch", entity_id=ghost, version=1, model="other", dim=7, vector=[0.1] * 7, source_event_id=ghost
        ),
    )
    undecodable = b"\xff\xfe not even json"
    unknown_type = Envelope(type="pitch.exploded", subject="x", data={}).to_bytes()
    bad_schema = Envelope(type="pitch.submitted", subject="x", data={"kind": "pitch"}).to_bytes()

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", allow_auto_create_topics=False)
    partitions = sorted(producer.partitions_for(submissions))
    bodies = varied_bodies(60, seed=11)
    with Stream(platform.api_url, participants) as stream:
        for wave in range(2):  # poison first on every partition, then good submissions behind it
            for partition in partitions:
                for value in (undecodable, unknown_type, bad_schema):
                    producer.send(submissions, value=value, key=b"poison", partition=partition)
            producer.flush()
            stream.submit(bodies[wave * 30 : (wave + 1) * 30], start=wave * 30)
        producer.send(submissions, value=schema_valid_ghost.to_bytes(), key=ghost.encode())  # fails in the matcher
        producer.send(vectors, value=wrong_dim.to_bytes(), key=ghost.encode())
        producer.flush()
        producer.close()
        stream.submit(bodies[60:], start=60)
        ledger = ledger_of(platform, stream, participants, "poison")
    assert_holds(ledger, stream)
    assert ledger.accepted == 60

    poison_count = 2 * len(partitions) * 3
    dead = _read_topic(bootstrap, submissions + DLQ_SUFFIX, want=poison_count)
    sources = {}  # where each dead letter came from; a repeat (redelivery) names the same place
    for record in dead:
        headers = dict(record.headers)
        assert headers["salon-error"].startswith(b"PoisonMessageError")
        assert headers["salon-consumer-group"] == b"salon-embedder"
        sources[(headers["salon-source-partition"], headers["salon-source-offset"])] = record.value
    assert len(sources) == poison_count, "every poison record, and nothing else, was dead-lettered"
    assert Counter(sources.values()) == Counter(
        {undecodable: 2 * len(partitions), unknown_type: 2 * len(partitions), bad_schema: 2 * len(partitions)}
    )
    dead_vectors = {record.value: dict(record.headers) for record in _read_topic(bootstrap, vectors + DLQ_SUFFIX, 2)}
    assert b"dim 7" in dead_vectors[wrong_dim.to_bytes()]["salon-error"]
    ghost_errors = [h["salon-error"] for v, h in dead_vectors.items() if v != wrong_dim.to_bytes()]
    assert len(ghost_errors) == 1 and b"not in the database" in ghost_errors[0]


# --- 2. the database locked or away --------------------------------------------------------------
class HeldLock:
    """Holds the database's write lock from another connection for `seconds`."""

    def __init__(self, platform: Platform, seconds: float) -> None:
        self.platform, self.seconds = platform, seconds
        self.taken = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        url = self.platform.settings.resolved_database_url
        if url.startswith("sqlite"):
            connection = sqlite3.connect(url.split("///", 1)[1], timeout=30, isolation_level=None)
            connection.execute("BEGIN EXCLUSIVE")
            self.taken.set()
            time.sleep(self.seconds)
            connection.execute("ROLLBACK")
            connection.close()
            return
        engine = make_engine(url)
        with engine.connect() as connection:
            connection.execute(text("LOCK TABLE pitch, mandate, need IN ACCESS EXCLUSIVE MODE"))
            self.taken.set()
            time.sleep(self.seconds)
            connection.rollback()
        engine.dispose()

    def __enter__(self) -> HeldLock:
        self.thread.start()
        assert self.taken.wait(30), "could not take the lock"
        return self

    def __exit__(self, *_exc: object) -> None:
        self.thread.join(timeout=self.seconds + 30)


@pytest.mark.timeout(900)
def test_a_locked_database_answers_503_with_retry_after_and_loses_no_write(platform: Platform):
    participants = Participants.create(platform.engine, platform.settings.api_key_pepper, prefix="fault")
    bodies = varied_bodies(40, seed=12)
    under_lock = bodies[:8]
    keys = [f"fault-lock-{uuid.uuid4()}" for _ in under_lock]  # each retry repeats its Idempotency-Key

    def post(http: httpx.Client, n: int) -> httpx.Response:
        kind, body = under_lock[n]
        owners = participants.headers[kind]
        headers = {**owners[n % len(owners)], "Idempotency-Key": keys[n]}
        return http.post(f"/v1/{PLURAL[kind]}", json=body, headers=headers)

    with httpx.Client(base_url=platform.api_url, timeout=60) as http, ThreadPoolExecutor(8) as pool:
        with HeldLock(platform, seconds=8 * LOCK_TIMEOUT_MS / 1000):
            first = list(pool.map(partial(post, http), range(len(under_lock))))
        statuses = [response.status_code for response in first]
        # (On a starved machine a request may only reach the database after the release: a 202.)
        assert set(statuses) <= {202, 503} and 503 in statuses, [(r.status_code, r.text[:200]) for r in first]
        for response in first:
            if response.status_code == 503:
                assert response.headers["retry-after"].isdigit()
                detail = response.json()["detail"]
                assert "retry" in detail and "请稍后重试" in detail, "the problem is told in English and Chinese"
        time.sleep(LOCK_TIMEOUT_MS / 1000)
        retried = list(pool.map(partial(post, http), range(len(under_lock))))  # same requests, same keys
        assert [response.status_code for response in retried] == [202] * len(under_lock)
        for before, after in zip(first, retried, strict=True):
            if before.status_code == 202:  # a repeat of an accepted request is replayed, not stored twice
                assert after.headers.get("idempotent-replayed") == "true" and after.json() == before.json()

    with Stream(platform.api_url, participants) as stream:
        stream.accepted.update({r.json()["id"]: under_lock[n][0] for n, r in enumerate(retried)})
        if platform.settings.database_url:  # PostgreSQL: kill every connection the services hold
            admin = make_engine(PG_ADMIN_URL)
            with admin.connect() as connection:
                killed = connection.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": platform.settings.database_url.rsplit("/", 1)[1]},
                ).scalar()
            admin.dispose()
            assert killed, "the services held connections"
        stream.submit(bodies[len(under_lock) :])  # pools reconnect: no 500, at most a 503 that is retried
        ledger = ledger_of(platform, stream, participants, "database locked")
    assert_holds(ledger, stream)
    assert ledger.accepted == len(bodies)


# --- 3. workers killed between effect and offset commit ----------------------------------------
@pytest.mark.timeout(1800)
def test_workers_killed_between_effect_and_commit_lose_and_duplicate_nothing(platform: Platform):
    participants = Participants.create(platform.engine, platform.settings.api_key_pepper, prefix="fault")
    bodies = iter(varied_bodies(6 * 40 * 3 + 3 * 20, seed=13))
    faults = [
        ("embedder", "embedder.after_effect_before_commit@2"),
        ("matcher", "matcher.after_effect_before_commit@2"),
        ("matcher", "matcher.between_phases@5"),  # mid-batch: earlier events done, this one half, later ones not
    ]
    with Stream(platform.api_url, participants) as stream:
        sent = 0
        for name, spec in faults:
            restart(platform, name, fault=spec)
            process = platform.services[name]
            for _wave in range(6):  # feed the pipeline until the process reaches its point
                if not process.alive:
                    break
                wave = [next(bodies) for _ in range(40)]
                stream.submit(wave, start=sent)
                sent += len(wave)
                deadline = time.monotonic() + 60
                while process.alive and time.monotonic() < deadline:
                    time.sleep(0.5)
            wait_for_injected_kill(process, spec.split("@")[0])
            stream.submit([next(bodies) for _ in range(20)], start=sent)  # accepted while it is down
            sent += 20
            restart(platform, name, fault="")
        ledger = ledger_of(platform, stream, participants, "embedder and matcher killed")
    assert_holds(ledger, stream)


# --- 4. webhooks across a notifier kill --------------------------------------------------------
@pytest.mark.timeout(1500)
def test_every_due_webhook_arrives_under_its_one_id_across_a_notifier_kill(platform: Platform):
    participants = Participants.create(platform.engine, platform.settings.api_key_pepper, per_kind=2, prefix="fault")
    with Receiver() as receiver, httpx.Client(base_url=platform.api_url, timeout=30) as http:
        endpoints: dict[str, str] = {}  # owner → endpoint id
        for kind, owner_headers in participants.headers.items():
            for owner, headers in zip(participants.owners_by_kind[kind], owner_headers, strict=True):
                created = http.post(
                    "/v1/webhooks/endpoints",
                    json={"url": receiver.url, "event_types": ["match.proposed"], "description": owner},
                    headers=headers,
                )
                assert created.status_code == 201, created.text
                endpoints[owner] = created.json()["id"]
        restart(platform, "notifier", fault="notifier.after_send_before_record@2")
        with Stream(platform.api_url, participants) as stream:
            stream.submit(varied_bodies(60, seed=14))
            wait_for_injected_kill(platform.services["notifier"], "notifier.after_send_before_record")
            restart(platform, "notifier", fault="")
            ledger = ledger_of(platform, stream, participants, "notifier killed")
            assert_holds(ledger, stream)

            # The due set, from the outbox: one message per match.proposed event for an owner's endpoint.
            endpoint_ids = set(endpoints.values())
            due: set[str] = set()
            with Session(platform.engine) as session:
                subjects = set(stream.accepted)
                for row in session.exec(
                    select(OutboxMessage).where(
                        OutboxMessage.topic == matches_topic(platform),
                        col(OutboxMessage.payload).contains('"type":"match.proposed"'),
                    )
                ):
                    if row.key in subjects:
                        owner = Envelope.model_validate_json(row.payload).data["subject_owner"]
                        due.add(message_id_for(row.event_id, endpoints[owner]))
            assert due, "the submissions produced proposals to deliver"
            deadline = time.monotonic() + 420  # a claim cut short by the kill lapses after 2 × (10 + 5) + 30 s
            while time.monotonic() < deadline:
                with Session(platform.engine) as session:
                    messages = session.exec(
                        select(WebhookMessage).where(col(WebhookMessage.endpoint_id).in_(endpoint_ids))
                    ).all()
                if {m.id for m in messages if m.status == MessageStatus.DELIVERED} >= due:
                    break
                time.sleep(1)
        received: dict[str, set[bytes]] = {}
        for request in list(receiver.requests):
            received.setdefault(request.headers["webhook-id"], set()).add(request.body)
        repeats = sum(1 for request in receiver.requests) - len(received)
        print(f"FAULT WEBHOOKS due={len(due)} received_ids={len(received)} repeated_deliveries={repeats}")
    assert {m.id for m in messages} == due, "exactly the due messages were queued"
    assert all(m.status == MessageStatus.DELIVERED for m in messages)
    assert set(received) == due, "every due message arrived, and nothing else"
    assert all(len(bodies) == 1 for bodies in received.values()), "a repeat carries the same id and body"
    assert repeats >= 1, "the kill after sending made at least one message go out again (same id)"


# --- 5. the broker killed during ≥ 2,000 submissions -----------------------------------------
def wait_until_accepted(stream: Stream, feeder: threading.Thread, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while len(stream.accepted) < count:
        assert feeder.is_alive(), f"the submitting thread ended early; answers so far: {stream.statuses}"
        assert time.monotonic() < deadline, f"only {len(stream.accepted)} accepted"
        time.sleep(0.05)


@pytest.mark.timeout(2400)
def test_the_broker_killed_and_restarted_during_2000_submissions_loses_nothing(platform: Platform):
    assert platform.broker is not None
    participants = Participants.create(platform.engine, platform.settings.api_key_pepper, prefix="fault")
    total = BROKER_KILL_SUBMISSIONS
    bodies = varied_bodies(total, seed=15)
    with Stream(platform.api_url, participants, workers=8) as stream:
        feeder = stream.submit_in_background(bodies)
        wait_until_accepted(stream, feeder, total // 3)
        platform.broker.kill()  # kill -9: the memory-only broker loses every topic and offset
        down_from = len(stream.accepted)
        wait_until_accepted(stream, feeder, 2 * total // 3)
        accepted_while_down = len(stream.accepted) - down_from
        platform.restart_broker()
        feeder.join(timeout=600)
        assert not feeder.is_alive()
        ledger = ledger_of(platform, stream, participants, f"broker kill -9 during {total} submissions")
    with Session(platform.engine) as session:
        events = Counter(
            session.exec(
                select(OutboxMessage.key).where(
                    OutboxMessage.topic == platform.settings.topic(Topic.SUBMISSIONS),
                    col(OutboxMessage.key).in_(list(stream.accepted)[:30000]),
                )
            ).all()
        )
    redriven = sum(count - 1 for count in events.values())
    print(
        f"FAULT BROKER accepted_while_down={accepted_while_down} redriven={redriven} statuses={dict(stream.statuses)}"
    )
    assert accepted_while_down > 0, "the api kept accepting while the broker was down"
    assert_holds(ledger, stream)
    assert ledger.accepted == total
