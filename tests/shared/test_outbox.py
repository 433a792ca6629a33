"""Outbox: events commit with their cause, and the relay publishes them at least once."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaConsumer
from sqlmodel import Session, select

from shared.bus import Publisher
from shared.errors import BusError
from shared.events import Envelope, SubmissionData
from shared.models import OutboxMessage, Pitch
from shared.outbox import OutboxRelay, enqueue, enqueue_many, pending_count


def event(subject: str) -> Envelope:
    return Envelope.wrap(
        "pitch.submitted",
        subject,
        SubmissionData(kind="pitch", entity_id=subject, version=1, owner="o", text="t", fields={}),
    )


def read_all(broker: str, topic: str, want: int) -> list[Envelope]:
    reader = KafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest", enable_auto_commit=False)
    got: list[Envelope] = []
    deadline = time.monotonic() + 20
    while len(got) < want and time.monotonic() < deadline:
        for batch in reader.poll(timeout_ms=500).values():
            got.extend(Envelope.from_bytes(record.value) for record in batch)
    reader.close()
    return got


def one_by_one(session: Session, events: list[tuple[str, Envelope]]) -> None:
    for topic, envelope in events:
        enqueue(session, topic, envelope)


WRITERS = pytest.mark.parametrize("write", [one_by_one, enqueue_many], ids=["enqueue", "enqueue_many"])


@WRITERS
def test_a_rolled_back_transaction_leaves_no_event(any_engine, write):
    with pytest.raises(RuntimeError), Session(any_engine) as session:
        session.add(
            Pitch(company="c", title="t", summary="s" * 10, stage="seed", funding_ask=1, region="r1", owner="o")
        )
        write(session, [("salon.submissions", event("x")), ("salon.submissions", event("y"))])
        session.flush()
        raise RuntimeError("the request failed half-way")
    assert pending_count(any_engine) == 0
    with Session(any_engine) as session:
        assert session.exec(select(Pitch)).all() == []


@WRITERS
def test_relay_publishes_in_order_and_marks_sent(any_engine, broker, topic_factory, publisher, write):
    topic = topic_factory()
    events = [event(str(uuid.uuid4())) for _ in range(5)]
    with Session(any_engine) as session:
        write(session, [(topic, envelope) for envelope in events])
        session.commit()
    relay = OutboxRelay(any_engine, publisher)
    assert relay.relay_once() == 5
    assert relay.relay_once() == 0, "published rows are not sent again"
    assert pending_count(any_engine) == 0
    assert [e.id for e in read_all(broker, topic, 5)] == [e.id for e in events]


class BrokenPublisher(Publisher):
    def __init__(self) -> None:  # no connection: every publish fails like a broker that is away
        pass

    def publish_raw(self, items, *, timeout_s: float = 30.0) -> None:
        raise BusError("broker unavailable")


def test_broker_outage_keeps_events_pending_until_it_returns(sqlite_engine, broker, topic_factory, publisher):
    topic = topic_factory()
    with Session(sqlite_engine) as session:
        enqueue(session, topic, event("a"))
        session.commit()
    with pytest.raises(BusError):
        OutboxRelay(sqlite_engine, BrokenPublisher()).relay_once()
    assert pending_count(sqlite_engine) == 1
    with Session(sqlite_engine) as session:
        row = session.exec(select(OutboxMessage)).one()
        assert row.attempts == 1 and "unavailable" in (row.last_error or "")
        assert row.claimed_until is None, "a failed claim is released for the next attempt"
    assert OutboxRelay(sqlite_engine, publisher).relay_once() == 1
    assert pending_count(sqlite_engine) == 0


def test_two_relays_do_not_both_claim_a_row(sqlite_engine, topic_factory, publisher):
    topic = topic_factory()
    with Session(sqlite_engine) as session:
        for _ in range(10):
            enqueue(session, topic, event(str(uuid.uuid4())))
        session.commit()
    first, second = OutboxRelay(sqlite_engine, publisher, batch_size=6), OutboxRelay(sqlite_engine, publisher)
    assert first.relay_once() + second.relay_once() == 10
    assert first.relay_once() + second.relay_once() == 0


def test_a_commit_wakes_the_relay_before_its_next_poll(sqlite_engine, broker, topic_factory, publisher):
    """A relay polling once a minute still publishes a just-committed event right away."""
    import threading

    topic = topic_factory()
    relay = OutboxRelay(sqlite_engine, publisher, poll_interval_s=60.0)
    stop = threading.Event()
    thread = relay.start(stop)
    try:
        time.sleep(0.5)  # the relay found nothing and sleeps for its minute
        with Session(sqlite_engine) as session:
            enqueue_many(session, [(topic, event("woken"))])  # as `enqueue` does
            session.commit()
        deadline = time.monotonic() + 30  # half the poll interval: only a wake-up gets there
        while relay.published == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert relay.published == 1
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive(), "the relay stops promptly while waiting"
