"""The live queue: `salon.matches` read in the api process and pushed to organizer browsers.

A kafka-python consumer thread with manual partition assignment from the latest offsets (no
consumer group: each api process sees every new proposal, and nothing waits on a slow group
join) hands each proposal to a hub that fans it out to the Server-Sent-Events connections.
EventSource cannot send an Authorization header, so a browser first exchanges its API key for
a short-lived signed stream token (`POST /v1/console/stream-token`); keys never appear in URLs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from shared.errors import PoisonMessageError
from shared.events import Envelope, Topic
from shared.settings import Settings

log = logging.getLogger(__name__)
TOKEN_TTL_S = 120
QUEUE_SIZE = 1000  # per connection; a browser that far behind misses events and reloads the list


class MatchHub:
    """Fans proposals out to every connected browser (each on its own asyncio queue)."""

    def __init__(self) -> None:
        self._subscribers: dict[asyncio.Queue[dict[str, Any]], asyncio.AbstractEventLoop] = {}
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, None] = OrderedDict()  # a proposal is published once per side
        self.live = False

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        with self._lock:
            self._subscribers[queue] = asyncio.get_running_loop()
        queue.put_nowait({"type": "status", "live": self.live})
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        with self._lock:
            self._subscribers.pop(queue, None)

    @property
    def connections(self) -> int:
        return len(self._subscribers)

    def set_live(self, live: bool) -> None:
        if live != self.live:
            self.live = live
            self._broadcast({"type": "status", "live": live})

    def publish_proposal(self, envelope: Envelope) -> bool:
        data = envelope.payload()
        if data.match_id in self._seen:
            return False
        self._seen[data.match_id] = None
        while len(self._seen) > 10000:
            self._seen.popitem(last=False)
        self._broadcast(
            {"type": "proposal", "match_id": data.match_id, "pair_kind": data.pair_kind, "score": data.score}
        )
        return True

    def _broadcast(self, item: dict[str, Any]) -> None:
        with self._lock:
            targets = list(self._subscribers.items())
        for queue, loop in targets:
            try:
                loop.call_soon_threadsafe(_offer, queue, item)
            except RuntimeError:  # that connection's loop is closed
                self.unsubscribe(queue)


def _offer(queue: asyncio.Queue[dict[str, Any]], item: dict[str, Any]) -> None:
    if not queue.full():
        queue.put_nowait(item)


def run_match_feed(settings: Settings, hub: MatchHub, stop: threading.Event) -> None:
    """Read new `match.proposed` events until `stop`; reconnects after broker trouble."""
    topic = settings.topic(Topic.MATCHES)
    while not stop.is_set():
        consumer: KafkaConsumer | None = None
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=settings.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                client_id="api-console-stream",
                allow_auto_create_topics=False,  # see shared.bus.Publisher
                request_timeout_ms=15000,
            )
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                stop.wait(1.0)
                continue
            assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            consumer.seek_to_end(*assigned)
            for tp in assigned:
                consumer.position(tp)  # resolve "end" now, so nothing published from here on is missed
            hub.set_live(True)
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=500).values():
                    if not hub.connections:  # nobody to tell: skip parsing ~40 events per submission
                        continue
                    for record in records:
                        try:
                            envelope = Envelope.from_bytes(record.value)
                            if envelope.type == "match.proposed":
                                hub.publish_proposal(envelope)
                        except PoisonMessageError:
                            log.debug("console stream skipped a message it cannot read")
        except KafkaError as exc:
            log.warning("console stream: broker trouble, reconnecting: %s", exc)
            stop.wait(2.0)
        except Exception:
            log.exception("console stream failed; reconnecting")
            stop.wait(2.0)
        finally:
            hub.set_live(False)
            if consumer is not None:
                consumer.close()


# --- stream tokens ----------------------------------------------------------------------------
def make_stream_token(key_id: str, pepper: str, *, now: float | None = None) -> str:
    expires = int((now or time.time()) + TOKEN_TTL_S)
    return f"{key_id}.{expires}.{_sign(key_id, expires, pepper)}"


def read_stream_token(token: str, pepper: str, *, now: float | None = None) -> str | None:
    """The key id the token was issued to, or None when it is forged or expired."""
    try:
        key_id, expires_text, signature = token.rsplit(".", 2)
        expires = int(expires_text)
    except ValueError:
        return None
    if not hmac.compare_digest(signature, _sign(key_id, expires, pepper)):
        return None
    if expires < (now or time.time()):
        return None
    return key_id


def _sign(key_id: str, expires: int, pepper: str) -> str:
    return hmac.new(pepper.encode(), f"stream:{key_id}:{expires}".encode(), hashlib.sha256).hexdigest()
