"""The embedded broker alone (Tansu 0.6, memory storage), no salon code: does it still serve every
record it acknowledged when producers keep sending across a kill -9 and restart?

It does not, in most runs on 2026-11-22: partitions whose high watermark counts records that no fetch
returns, and produces that then fail with UNKNOWN (the broker logs `AlreadyExists` for a batch
at an offset it already holds). This is the defect behind the opt-in recovery bench test and the
non-strict broker-restart e2e test; it is kept here, opt-in, to check a newer Tansu against.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from services.launcher import free_port, port_open, tansu_binary

TOPICS = ("a", "b", "c")
PARTITIONS = 4
PRODUCERS = 3

pytestmark = [
    pytest.mark.faults,
    pytest.mark.xfail(strict=False, reason="Tansu 0.6 memory storage loses acknowledged records across a restart"),
]


def start_broker(port: int, log: Path) -> subprocess.Popen[bytes]:
    url = f"tcp://127.0.0.1:{port}"
    with log.open("ab") as out:
        broker = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + 20
    while not port_open("127.0.0.1", port):
        assert time.monotonic() < deadline, "the broker did not listen"
        time.sleep(0.05)
    return broker


def produce_until(bootstrap: str, stop: threading.Event, tag: str) -> None:
    """Send one record to every topic in a loop, rebuilding the producer after a failure, as
    an outbox relay does."""
    producer: KafkaProducer | None = None
    n = 0
    while not stop.is_set():
        try:
            if producer is None:
                producer = KafkaProducer(
                    bootstrap_servers=bootstrap,
                    acks="all",
                    enable_idempotence=False,
                    allow_auto_create_topics=False,
                    max_in_flight_requests_per_connection=1,
                    max_block_ms=5000,
                    request_timeout_ms=5000,
                )
            futures = [producer.send(topic, key=f"{tag}-{n}".encode(), value=b"v") for topic in TOPICS]
            for future in futures:
                future.get(10)
            n += 1
        except KafkaError:
            if producer is not None:
                producer.close(timeout=0)
            producer = None
            time.sleep(0.3)
        time.sleep(0.02)
    if producer is not None:
        producer.close(timeout=5)


def served_vs_counted(bootstrap: str) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition: (records a fresh consumer fetches from offset 0, the high watermark)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for topic in TOPICS for p in range(PARTITIONS)]
        ends = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        fetched: Counter[TopicPartition] = Counter()
        quiet_polls = 0
        while quiet_polls < 5:
            batch = consumer.poll(timeout_ms=300)
            quiet_polls = 0 if batch else quiet_polls + 1
            for tp, records in batch.items():
                fetched[tp] += len(records)
        return {tp: (fetched[tp], ends[tp]) for tp in partitions}
    finally:
        consumer.close()


def test_the_embedded_broker_serves_every_record_it_acknowledged_across_a_restart(tmp_path: Path):
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    log = tmp_path / "broker.log"
    broker = start_broker(port, log)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1) for topic in TOPICS])
    admin.close()
    stop = threading.Event()
    producers = [
        threading.Thread(target=produce_until, args=(bootstrap, stop, f"p{i}"), daemon=True) for i in range(PRODUCERS)
    ]
    try:
        for thread in producers:
            thread.start()
        time.sleep(5)
        broker.send_signal(signal.SIGKILL)
        broker.wait()
        time.sleep(3)
        broker = start_broker(port, log)  # topics come back as the clients ask for them
        time.sleep(8)
        stop.set()
        for thread in producers:
            thread.join(timeout=30)

        mismatched = {
            f"{tp.topic}[{tp.partition}]": pair
            for tp, pair in served_vs_counted(bootstrap).items()
            if pair[0] != pair[1]
        }
        storage_errors = log.read_text(errors="replace").count("AlreadyExists")
        assert mismatched == {} and storage_errors == 0, (
            f"(fetched, high watermark): {mismatched}; {storage_errors} storage errors"
        )
    finally:
        stop.set()
        broker.kill()
        broker.wait()
