"""Synthetic participants and a concurrent submitter for load and fault runs.

`SubmissionStream` POSTs over keep-alive connections from a thread pool, the way a busy
front end would, and remembers what the API accepted; a 503 is retried after its
`Retry-After`, as the API asks.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.bench.corpus import submission_bodies
from services.demo import PLURAL
from shared.models import SUBMITTER_ROLE
from shared.security import create_key


@dataclass
class Participants:
    """Several owners per kind, each with its own API key (so no single key's rate limit binds)."""

    headers: dict[str, list[dict[str, str]]]  # kind → one Authorization header per owner
    owners_by_kind: dict[str, list[str]]  # kind → the owners, in the order of `headers`

    @property
    def owners(self) -> list[str]:
        return [owner for owners in self.owners_by_kind.values() for owner in owners]

    @classmethod
    def create(cls, engine: Engine, pepper: str, *, per_kind: int = 3, prefix: str = "load") -> Participants:
        """Fresh owners (unique per call, so a run counts only its own rows) and their keys."""
        tag = f"{prefix}-{uuid.uuid4().hex[:6]}"
        headers: dict[str, list[dict[str, str]]] = {}
        owners: dict[str, list[str]] = {}
        with Session(engine) as session:
            for kind, role in SUBMITTER_ROLE.items():
                for n in range(per_kind):
                    owner = f"{tag}-{kind}-{n}"
                    _, raw = create_key(session, role=role, name=owner, owner=owner, pepper=pepper)
                    headers.setdefault(kind, []).append({"Authorization": f"Bearer {raw}"})
                    owners.setdefault(kind, []).append(owner)
            session.commit()
        return cls(headers, owners)


def varied_bodies(count: int, *, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """`count` distinct demo-like (kind, body) pairs: all three kinds, bilingual, deterministic."""
    stream = submission_bodies(seed)
    return [(kind, body) for kind, body, _chinese in (next(stream) for _ in range(count))]


@dataclass
class SubmissionStream:
    """POSTs submissions concurrently over keep-alive connections and remembers the outcome.

    A 503 is retried after its Retry-After (for up to `retry_for_s`), as a client should;
    every other answer than 202 is recorded in `unexpected` (a 500 never should be).
    """

    api_url: str
    participants: Participants
    workers: int = 8
    idempotency_keys: bool = False
    retry_for_s: float = 120.0
    accepted: dict[str, str] = field(default_factory=dict)  # entity id → kind
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[tuple[int, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        limits = httpx.Limits(max_connections=self.workers, max_keepalive_connections=self.workers)
        self._http = httpx.Client(base_url=self.api_url, timeout=60, limits=limits, trust_env=False)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="submit")

    def post_one(self, n: int, kind: str, body: dict[str, Any]) -> httpx.Response:
        """POST one submission as the n-th owner of its kind (round robin)."""
        owners = self.participants.headers[kind]
        headers = dict(owners[n % len(owners)])
        if self.idempotency_keys:
            headers["Idempotency-Key"] = f"load-{uuid.uuid4()}"  # one per submission, kept across retries
        deadline = time.monotonic() + self.retry_for_s
        while True:
            response = self._http.post(f"/v1/{PLURAL[kind]}", json=body, headers=headers)
            with self._lock:
                self.statuses[response.status_code] += 1
            retry_after = response.headers.get("retry-after", "")
            if response.status_code == 503 and retry_after.isdigit() and time.monotonic() < deadline:
                time.sleep(float(retry_after))
                continue
            with self._lock:
                if response.status_code == 202:
                    self.accepted[response.json()["id"]] = kind
                else:
                    self.unexpected.append((response.status_code, response.text[:300]))
            return response

    def submit(self, items: Iterable[tuple[str, dict[str, Any]]], *, start: int = 0) -> None:
        """Blocks until every item was answered."""
        futures = [self._pool.submit(self.post_one, start + n, kind, body) for n, (kind, body) in enumerate(items)]
        for future in futures:
            future.result()

    def submit_in_background(self, items: list[tuple[str, dict[str, Any]]]) -> threading.Thread:
        thread = threading.Thread(target=self.submit, args=(items,), name="stream", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()

    def __enter__(self) -> SubmissionStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
