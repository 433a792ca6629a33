"""`salon bench latency`: end-to-end latency from `POST` to the first `match.proposed` event.

The whole platform runs for real (embedded Tansu broker, api, embedder, matcher as OS
processes, the configured model) on a database seeded with `--entities` demo-like entities
(services/bench/corpus.py says how; most vectors are near copies of a few thousand really
encoded texts). Then, open loop, fresh submissions are POSTed over HTTP at `--rate` per
second for `--duration` seconds — each on its schedule, whatever the earlier ones are doing
— while a kafka-python reader of `salon.matches` notes when each submission's first
`match.proposed` event arrives. Latency = that moment − the moment its POST was sent.

Figures: p50/p95/p99/max, the rate achieved, submissions lost (accepted but never proposed
nor accounted for: must be 0), the backlog when sending stopped and how long it took to
drain, and the latency trend over the run (a rate the machine cannot hold shows as latency
that grows). Where each part of the latency goes comes from the timestamps the pipeline
stores (row built, event published, vector stored, proposal written, published).
`--find-rate` steps the rate down (or up) to the highest rate whose p99 meets the target.
With `--search-sizes`, the candidate-search figures of services/bench/search.py are added.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, cast

import httpx
import typer
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from embeddings import SentenceTransformerEncoder
from services.bench import bench_app
from services.bench.corpus import seed_corpus, submission_bodies
from services.bench.load import PLURAL, Participants
from services.bench.results import DEFAULT_RESULTS_DIR, save_results
from services.bench.throughput import cpu_seconds_of
from services.launcher import Platform, free_port, matcher_index_dir, replica_names
from services.matcher.concepts import concepts_of
from services.matcher.state import MatcherState
from shared.db import init_db, make_engine
from shared.errors import SalonError
from shared.events import Topic
from shared.models import (
    ENTITY_TABLES,
    Entity,
    EntityVector,
    Match,
    OutboxMessage,
    ServiceStatus,
    entity_text,
)
from shared.settings import Settings

log = logging.getLogger(__name__)

TARGET_P99_S = 1.0
MARKER = "latency-corpus.json"
RETRIES = 3  # of a POST answered 429 or 503
OWNERS_PER_KIND = 40  # submitters; spreads the per-key rate limit the way real traffic does
STAGES = (
    ("http_to_row", "POST sent → entity row built (HTTP, auth, validation)"),
    ("to_submission_published", "→ submission event published (commit, outbox relay)"),
    ("to_vector_stored", "→ vector stored by the matcher (Kafka, embedder batch + model, Kafka)"),
    ("ranking", "→ proposal written (index sync, retrieval, scoring)"),
    ("to_observed", "→ event read from salon.matches (commit, outbox relay, Kafka)"),
)


class LatencyBenchError(SalonError):
    """The latency benchmark could not set up or run."""


# --- the reader of salon.matches -----------------------------------------------------------
class ProposalWatcher:
    """Notes the wall-clock time each subject's first `match.proposed` event is read."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.first_seen: dict[str, float] = {}
        self.events = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id="bench-latency-watcher",
            allow_auto_create_topics=False,
            fetch_max_wait_ms=20,  # our own reading must not add to what is measured
            request_timeout_ms=15000,
        )
        deadline = time.monotonic() + 30
        partitions = self._consumer.partitions_for_topic(topic)
        while not partitions:
            if time.monotonic() > deadline:
                raise LatencyBenchError(f"topic {topic} did not appear")
            time.sleep(0.2)
            partitions = self._consumer.partitions_for_topic(topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        self._consumer.seek_to_end(*assigned)
        for tp in assigned:
            self._consumer.position(tp)  # resolve "end" now: nothing published later is missed
        self._thread = threading.Thread(target=self._run, name="bench-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=100).values():
                seen = time.time()
                for record in records:
                    event = json.loads(record.value)
                    if event.get("type") != "match.proposed":
                        continue
                    with self._lock:
                        self.events += 1
                        self.first_seen.setdefault(event["subject"], seen)

    def seen(self, subject: str) -> float | None:
        with self._lock:
            return self.first_seen.get(subject)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


# --- sending -------------------------------------------------------------------------------
@dataclass
class Sent:
    number: int
    kind: str
    scheduled: float  # wall clock
    sent: float = 0.0  # wall clock, just before the request left
    status: int = 0
    entity_id: str | None = None
    error: str | None = None
    retries: int = 0  # 429/503 answers retried


@dataclass
class Outcome:
    """One rate's run: what was sent and what became of it."""

    rate: float
    duration_s: float
    sent: list[Sent]
    first_send: float
    last_send: float
    backlog_at_end: int
    drain_s: float | None
    latencies: dict[str, float] = field(default_factory=dict)  # entity id → seconds
    unaccounted: dict[str, str] = field(default_factory=dict)  # entity id → what became of it


def send_open_loop(
    client: httpx.Client,
    headers: Mapping[str, list[dict[str, str]]],
    bodies: Iterator[tuple[str, dict[str, Any], bool]],
    *,
    rate: float,
    duration_s: float,
) -> list[Sent]:
    """POST `rate`·`duration_s` submissions, each at its scheduled time, never waiting on replies."""
    count = max(1, round(rate * duration_s))
    plan = list(islice(bodies, count))
    results: list[Sent] = []
    turn = {kind: 0 for kind in headers}

    def post(item: Sent, body: dict[str, Any], owner_headers: dict[str, str]) -> None:
        item.sent = time.time()
        # Like a well-behaved client: a 429/503 is retried after its Retry-After (the clock
        # keeps running from the first send).
        for attempt in range(1, RETRIES + 2):
            try:
                response = client.post(f"/v1/{PLURAL[item.kind]}", json=body, headers=owner_headers)
            except httpx.HTTPError as exc:
                item.error = f"{type(exc).__name__}: {exc}"
                return
            item.status = response.status_code
            if response.status_code == 202:
                item.entity_id = response.json()["id"]
                return
            item.error = response.text[:300]
            if response.status_code not in (429, 503) or attempt > RETRIES:
                return
            item.retries += 1
            try:
                pause = float(response.headers.get("retry-after", "1"))
            except ValueError:
                pause = 1.0
            time.sleep(min(max(pause, 0.1), 5.0))

    # Enough workers that a slow reply never delays the next send (open loop).
    with ThreadPoolExecutor(max_workers=max(8, min(256, math.ceil(rate * 4)))) as pool:
        start_wall, start = time.time(), time.perf_counter()
        for number, (kind, body, _chinese) in enumerate(plan):
            due = start + number / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            item = Sent(number=number, kind=kind, scheduled=start_wall + number / rate)
            owner_headers = headers[kind][turn[kind] % len(headers[kind])]
            turn[kind] += 1
            results.append(item)
            pool.submit(post, item, body, owner_headers)
    return results


def measure_rate(
    platform: Platform,
    watcher: ProposalWatcher,
    headers: Mapping[str, list[dict[str, str]]],
    bodies: Iterator[tuple[str, dict[str, Any], bool]],
    *,
    rate: float,
    duration_s: float,
    drain_timeout_s: float,
) -> Outcome:
    with httpx.Client(base_url=platform.api_url, timeout=30, trust_env=False) as client:
        sent = send_open_loop(client, headers, bodies, rate=rate, duration_s=duration_s)
    accepted = [item.entity_id for item in sent if item.entity_id]
    ended = time.time()
    backlog = sum(1 for entity_id in accepted if watcher.seen(entity_id) is None)
    kinds = {item.entity_id: item.kind for item in sent if item.entity_id}
    waiting = wait_settled(platform.engine, watcher, kinds, timeout_s=drain_timeout_s)
    drained_at = max((watcher.seen(e) or 0.0 for e in accepted), default=ended)
    outcome = Outcome(
        rate=rate,
        duration_s=duration_s,
        sent=sent,
        first_send=min(item.sent for item in sent),
        last_send=max(item.sent for item in sent),
        backlog_at_end=backlog,
        drain_s=None if waiting else max(0.0, drained_at - ended),
    )
    for item in sent:
        seen = watcher.seen(item.entity_id) if item.entity_id else None
        if item.entity_id and seen is not None:
            outcome.latencies[item.entity_id] = seen - item.sent
    outcome.unaccounted = account_for(platform.engine, sent, [e for e in accepted if watcher.seen(e) is None])
    return outcome


def wait_settled(engine: Engine, watcher: ProposalWatcher, kinds: Mapping[str, str], *, timeout_s: float) -> list[str]:
    """Wait until every submission has its proposal event or is matched without one; returns
    those still without (the backlog left when `timeout_s` ran out)."""
    deadline = time.monotonic() + timeout_s
    waiting = [entity_id for entity_id in kinds if watcher.seen(entity_id) is None]
    check_at = time.monotonic() + 1.0
    while waiting and time.monotonic() < deadline:
        time.sleep(0.05)
        waiting = [entity_id for entity_id in waiting if watcher.seen(entity_id) is None]
        if waiting and time.monotonic() >= check_at:
            check_at = time.monotonic() + 1.0
            settled = settled_without_proposal(engine, {entity_id: kinds[entity_id] for entity_id in waiting})
            waiting = [entity_id for entity_id in waiting if entity_id not in settled]
    return waiting


def settled_without_proposal(engine: Engine, kinds: Mapping[str, str]) -> dict[str, str]:
    """Of these submissions, those matched with no event to expect: flagged as a duplicate
    ("duplicate") or with no counterpart good enough ("no_proposal")."""
    verdicts: dict[str, str] = {}
    with Session(engine) as session:
        for entity_id, kind in kinds.items():
            entity = cast(Entity | None, session.get(ENTITY_TABLES[kind], entity_id))
            if entity is None or entity.status != "matched":
                continue
            if entity.duplicate_of:
                verdicts[entity_id] = "duplicate"
                continue
            proposals = session.exec(
                select(func.count()).select_from(Match).where((Match.a_id == entity_id) | (Match.b_id == entity_id))
            ).one()
            if proposals == 0:
                verdicts[entity_id] = "no_proposal"
    return verdicts


def account_for(engine: Engine, sent: Sequence[Sent], waiting: Sequence[str]) -> dict[str, str]:
    """What became of submissions without a proposal event: refused, flagged as a duplicate,
    matched with no counterpart good enough, still in the pipeline (unfinished), or lost."""
    verdicts: dict[str, str] = {}
    for item in sent:
        if item.entity_id is None:
            verdicts[f"#{item.number}"] = f"refused: HTTP {item.status} {item.error or ''}".strip()
    kinds = {item.entity_id: item.kind for item in sent if item.entity_id}
    settled = settled_without_proposal(engine, {entity_id: kinds[entity_id] for entity_id in waiting})
    with Session(engine) as session:
        for entity_id in waiting:
            if entity_id in settled:
                verdicts[entity_id] = settled[entity_id]
                continue
            entity = cast(Entity | None, session.get(ENTITY_TABLES[kinds[entity_id]], entity_id))
            # Still accepted or embedded, or matched with proposal events not yet relayed (or
            # relayed a moment ago): in flight when the benchmark stopped waiting. Matched with
            # events published long ago that never arrived, or gone: lost.
            if entity is None:
                verdicts[entity_id] = "lost"
            elif entity.status != "matched" or _proposal_in_flight(session, entity_id):
                verdicts[entity_id] = "unfinished"
            else:
                verdicts[entity_id] = "lost"
    return verdicts


def _proposal_in_flight(session: Session, entity_id: str, grace_s: float = 30.0) -> bool:
    published = session.exec(
        select(OutboxMessage.published_at).where(
            OutboxMessage.key == entity_id, col(OutboxMessage.topic).endswith(Topic.MATCHES.value)
        )
    ).all()
    moments = [_moment(value) for value in published]
    return any(moment is None or moment > time.time() - grace_s for moment in moments)


# --- figures -------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 1)


def summarise(outcome: Outcome, target_p99_s: float) -> dict[str, Any]:
    latencies = [outcome.latencies[item.entity_id] for item in outcome.sent if item.entity_id in outcome.latencies]
    verdicts = list(outcome.unaccounted.values())
    lost = sum(1 for verdict in verdicts if verdict == "lost")
    span = outcome.last_send - outcome.first_send
    sent = len(outcome.sent)
    third = max(1, len(latencies) // 3)
    early, late = (
        statistics.median(latencies[:third]) if latencies else 0,
        (statistics.median(latencies[-third:]) if latencies else 0),
    )
    p99 = percentile(latencies, 99)
    lags = [item.sent - item.scheduled for item in outcome.sent]
    return {
        "rate_target_per_s": outcome.rate,
        "duration_s": outcome.duration_s,
        "sent": sent,
        "rate_achieved_per_s": round((sent - 1) / span, 2) if span > 0 else None,
        "accepted": sum(1 for item in outcome.sent if item.entity_id),
        "proposed": len(latencies),
        "refused": sum(1 for verdict in verdicts if verdict.startswith("refused")),
        "retried_posts": sum(1 for item in outcome.sent if item.retries),
        "duplicates": verdicts.count("duplicate"),
        "no_proposal": verdicts.count("no_proposal"),
        "unfinished": verdicts.count("unfinished"),
        "lost": lost,
        "p50_ms": _ms(percentile(latencies, 50)),
        "p95_ms": _ms(percentile(latencies, 95)),
        "p99_ms": _ms(p99),
        "max_ms": _ms(max(latencies)) if latencies else None,
        "target_p99_ms": target_p99_s * 1000,
        "p99_vs_target_ratio": round(p99 / target_p99_s, 3) if latencies else None,
        "backlog_at_end": outcome.backlog_at_end,
        "drain_s": None if outcome.drain_s is None else round(outcome.drain_s, 2),
        "late_vs_early_p50_ratio": round(late / early, 3) if early else None,
        "send_lag_max_ms": _ms(max(lags)) if lags else None,
        "held": bool(latencies) and lost == 0 and "unfinished" not in verdicts and p99 <= target_p99_s,
    }


def _moment(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def stage_breakdown(engine: Engine, outcome: Outcome) -> dict[str, dict[str, float | None]]:
    """p50/p95 of each part of the latency, from the timestamps the pipeline stores."""
    kinds = {item.entity_id: item.kind for item in outcome.sent if item.entity_id in outcome.latencies}
    sent_at = {item.entity_id: item.sent for item in outcome.sent if item.entity_id in outcome.latencies}
    marks: dict[str, dict[str, float | None]] = {entity_id: {} for entity_id in kinds}
    ids = list(kinds)
    with Session(engine) as session:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for kind in ENTITY_TABLES:
                table = ENTITY_TABLES[kind]
                for entity_id, created in session.exec(
                    select(table.id, table.created_at).where(col(table.id).in_(chunk))
                ).all():
                    marks[entity_id]["row"] = _moment(created)
            for entity_id, stored in session.exec(
                select(EntityVector.entity_id, EntityVector.updated_at).where(col(EntityVector.entity_id).in_(chunk))
            ).all():
                marks[entity_id]["vector"] = _moment(stored)
            for key, topic, created, published in session.exec(
                select(OutboxMessage.key, OutboxMessage.topic, OutboxMessage.created_at, OutboxMessage.published_at)
                .where(col(OutboxMessage.key).in_(chunk))
                .order_by(col(OutboxMessage.id))
            ).all():
                prefix = "submission" if topic.endswith(Topic.SUBMISSIONS.value) else "proposal"
                marks[key].setdefault(f"{prefix}_created", _moment(created))
                marks[key].setdefault(f"{prefix}_published", _moment(published))
    order = ("sent", "row", "submission_published", "vector", "proposal_created", "observed")
    spans: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    for entity_id, mark in marks.items():
        mark["sent"] = sent_at[entity_id]
        mark["observed"] = sent_at[entity_id] + outcome.latencies[entity_id]
        points = [mark.get(name) for name in order]
        for (name, _), begin, end in zip(STAGES, points[:-1], points[1:], strict=True):
            if begin is not None and end is not None:
                spans[name].append(end - begin)
    return {
        name: {"p50_ms": _ms(percentile(values, 50)), "p95_ms": _ms(percentile(values, 95))}
        for name, values in spans.items()
    }


# --- setup ---------------------------------------------------------------------------------
def prepare_corpus(
    settings: Settings, *, entities: int, distinct: int, seed: int, on_progress: Callable[[str], None]
) -> dict[str, Any]:
    """Seed the database unless `data_dir` holds this very corpus already; returns the marker."""
    marker_path = settings.data_dir / MARKER
    wanted = {
        "entities": entities,
        "distinct": distinct,
        "seed": seed,
        "model": settings.model,
        "database_url": settings.resolved_database_url,
    }
    if marker_path.exists():
        marker: dict[str, Any] = json.loads(marker_path.read_text(encoding="utf-8"))
        if {k: marker.get(k) for k in wanted} == wanted:
            marker["runs"] = marker.get("runs", 0) + 1
            marker["reused"] = True
            marker_path.write_text(json.dumps(marker, indent=2), encoding="utf-8")
            return marker
        raise LatencyBenchError(f"{settings.data_dir} holds another corpus ({marker_path}); use a fresh --data-dir")
    engine = make_engine(settings.resolved_database_url)
    try:
        init_db(engine)
        with Session(engine) as session:
            if session.exec(select(func.count()).select_from(EntityVector)).one():
                raise LatencyBenchError("the database already holds entities; the benchmark seeds a fresh one")
        encoder = SentenceTransformerEncoder(settings.model, max_tokens=settings.embed_max_tokens)
        report = seed_corpus(engine, encoder, total=entities, distinct=distinct, seed=seed, on_progress=on_progress)
    finally:
        engine.dispose()
    on_progress(f"cold index build over {entities:,} entities (then snapshotted for the matcher)")
    cold = cold_rebuild(settings)
    marker = {
        **wanted,
        "kinds": report.entities,
        "encoded_texts": report.encoded_texts,
        "seed_encoding_s": round(report.seconds_encoding, 1),
        "seed_inserting_s": round(report.seconds_inserting, 1),
        "cold_rebuild": cold,
        "runs": 1,
        "reused": False,
    }
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    marker_path.write_text(json.dumps(marker, indent=2), encoding="utf-8")
    return marker


def cold_rebuild(settings: Settings) -> dict[str, Any]:
    """What the matcher does on its very first start (every text tokenised), timed here and
    snapshotted, so the platform then starts like a matcher restarting with its snapshots.

    The concepts of every text are found too (a running matcher's snapshots hold those it
    met): without them the first run measured a matcher still filling its concept cache."""
    engine = make_engine(settings.resolved_database_url)
    try:
        state = MatcherState(settings.embedding_dim, settings.resolved_index_dir)
        state.rebuild(engine)
        started = time.perf_counter()
        with Session(engine) as session:
            for table in ENTITY_TABLES.values():
                for entity in session.exec(select(table)):
                    concepts_of(entity_text(cast(Entity, entity)))
        concepts_s = time.perf_counter() - started
        started = time.perf_counter()
        state.snapshot()
        return {
            **state.rebuild_stats,
            "concepts_s": round(concepts_s, 2),
            "snapshot_s": round(time.perf_counter() - started, 2),
        }
    finally:
        engine.dispose()


def seed_replica_snapshots(settings: Settings, matchers: int) -> None:
    """Each matcher replica snapshots into its own folder; one that has none yet starts from
    the corpus's snapshots instead of tokenising every text again (a minute at 100k)."""
    if matchers < 2:
        return
    shared_dir = settings.resolved_index_dir
    for instance in replica_names("matcher", matchers):
        replica_dir = matcher_index_dir(settings, instance)
        if replica_dir.exists():
            continue
        staging = shared_dir / f".{instance}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for path in shared_dir.iterdir():
            if path.is_file():
                shutil.copy2(path, staging / path.name)  # keeps the mtime the freshness check reads
        staging.rename(replica_dir)


def bench_settings(data_dir: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        kafka_bootstrap="",
        kafka_embedded_port=free_port(),
        api_port=free_port(),
        api_key_pepper="bench-latency-pepper-0123456789",
    )


def process_cpu(platform: Platform) -> dict[str, float | None]:
    """CPU seconds so far of every platform process (replicas by name), the broker, and this
    process (the load generator and the reader of salon.matches share the machine's cores)."""
    processes = {**platform.services, **({"broker": platform.broker} if platform.broker else {})}
    return {**{name: cpu_seconds_of(process) for name, process in processes.items()}, "bench": time.process_time()}


def cpu_per_submission(
    before: Mapping[str, float | None], after: Mapping[str, float | None], submissions: int
) -> dict[str, float]:
    """CPU milliseconds each process spent per submission over a run (its drain included), and
    their total: where the machine's cores went, and so the highest rate it can hold."""
    spent: dict[str, float] = {}
    for name, start in before.items():
        end = after.get(name)
        if start is not None and end is not None:
            spent[name] = 1000 * (end - start) / max(submissions, 1)
    figures = {name: round(ms, 1) for name, ms in sorted(spent.items())}
    figures["total"] = round(sum(spent.values()), 1)
    return figures


def _indexed(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        # One matcher is "matcher"; replicas are matcher-1, matcher-2, … with the same index.
        row = session.get(ServiceStatus, "matcher") or session.get(ServiceStatus, "matcher-1")
        index = (row.detail or {}).get("index", {}) if row else {}
        return {str(kind): int(size) for kind, size in index.items()}


def search_rate(measure: Callable[[float], bool], rate: float, *, held: bool) -> None:
    """Step from `rate` (whose run held or not) towards the highest rate that holds.

    Held: up in ×1.5 steps (at most three) until one fails. Not held: halve until one holds
    (down to 1/s), then try 1.4× that if it is still below the lowest failure. `measure(r)`
    runs `r` per second and says whether it held."""
    if held:
        for _ in range(3):
            rate = round(rate * 1.5, 1)
            if not measure(rate):
                return
        return
    failed = rate
    while rate / 2 >= 1.0:
        rate = round(rate / 2, 1)
        if measure(rate):
            between = round(rate * 1.4, 1)
            if between < failed:
                measure(between)
            return
        failed = rate


def run_latency_bench(
    *,
    entities: int = 100_000,
    rate: float = 20.0,
    duration_s: float = 60.0,
    distinct: int = 2000,
    seed: int = 0,
    data_dir: Path | None = None,
    database_url: str = "",
    drain_timeout_s: float = 300.0,
    warmup: int = 10,
    find_rate: bool = False,
    step_seconds: float = 20.0,
    search_sizes: Sequence[int] = (),
    with_notifier: bool = False,
    matchers: int = 1,
    target_p99_s: float = TARGET_P99_S,
    on_progress: Callable[[str], None] = lambda _message: None,
) -> dict[str, Any]:
    temporary = data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="salon-bench-latency-")) if data_dir is None else data_dir
    try:
        settings = bench_settings(folder, database_url)
        marker = prepare_corpus(settings, entities=entities, distinct=distinct, seed=seed, on_progress=on_progress)
        services = ("api", "embedder", "matcher", *(("notifier",) if with_notifier else ()))
        seed_replica_snapshots(settings, matchers)
        platform = Platform(settings, services=services, replicas={"matcher": matchers})
        on_progress("starting the platform (the matcher rebuilds its indices)")
        started = time.perf_counter()
        with platform:
            start_s = time.perf_counter() - started
            indexed = _indexed(platform.engine)
            headers = Participants.create(
                platform.engine, settings.api_key_pepper, per_kind=OWNERS_PER_KIND, prefix=f"latency-{marker['runs']}"
            ).headers
            bodies = submission_bodies(seed * 1000 + marker["runs"])
            watcher = ProposalWatcher(settings.bootstrap, settings.topic(Topic.MATCHES))
            try:
                if warmup:
                    on_progress(f"warm-up: {warmup} submissions")
                    measure_rate(
                        platform,
                        watcher,
                        headers,
                        bodies,
                        rate=2.0,
                        duration_s=warmup / 2,
                        drain_timeout_s=drain_timeout_s,
                    )
                on_progress(f"sending {rate:g}/s for {duration_s:g} s")
                cpu_before = process_cpu(platform)
                main = measure_rate(
                    platform,
                    watcher,
                    headers,
                    bodies,
                    rate=rate,
                    duration_s=duration_s,
                    drain_timeout_s=drain_timeout_s,
                )
                figures = summarise(main, target_p99_s)
                figures["cpu_ms_per_submission"] = cpu_per_submission(
                    cpu_before, process_cpu(platform), figures["accepted"]
                )
                stages = stage_breakdown(platform.engine, main)
                steps: list[dict[str, Any]] = []
                if find_rate:
                    previous = [main]

                    def measure(step_rate: float) -> bool:
                        # The previous run's backlog must be gone, or it slows this one down.
                        leftover = {
                            item.entity_id: item.kind
                            for outcome in previous
                            for item in outcome.sent
                            if item.entity_id and outcome.unaccounted.get(item.entity_id) == "unfinished"
                        }
                        wait_settled(platform.engine, watcher, leftover, timeout_s=drain_timeout_s)
                        on_progress(f"step search: {step_rate:g}/s for {step_seconds:g} s")
                        outcome = measure_rate(
                            platform,
                            watcher,
                            headers,
                            bodies,
                            rate=step_rate,
                            duration_s=step_seconds,
                            drain_timeout_s=drain_timeout_s,
                        )
                        previous[:] = [outcome]
                        steps.append(summarise(outcome, target_p99_s))
                        return bool(steps[-1]["held"])

                    search_rate(measure, rate, held=figures["held"])
            finally:
                watcher.close()
        report: dict[str, Any] = {
            "path": "HTTP POST → api (SQLite/PostgreSQL + outbox) → Kafka → embedder → Kafka → matcher → "
            "outbox → Kafka salon.matches (real processes, embedded Tansu broker)",
            "database": "PostgreSQL" if settings.resolved_database_url.startswith("postgres") else "SQLite",
            "model": settings.model,
            "embed_max_tokens": settings.embed_max_tokens,
            "matchers": matchers,
            "corpus": {
                "entities": entities,
                "kinds": marker.get("kinds"),
                "encoded_texts": marker.get("encoded_texts"),
                "derived": "near copies of the encoded texts: vectors = encoded vector + N(0, 0.01²) noise",
                "reused": marker.get("reused", False),
                "cold_rebuild": marker.get("cold_rebuild"),
            },
            "indexed_at_start": indexed,
            "platform_start_s": round(start_s, 1),
            **figures,
            "stages": stages,
            "latencies_ms": sorted(round(v * 1000, 1) for v in main.latencies.values()),
        }
        if find_rate:
            held = [step["rate_target_per_s"] for step in [figures, *steps] if step["held"]]
            report["rate_steps"] = steps
            report["max_rate_held_per_s"] = max(held) if held else None
        if search_sizes:
            report["search"] = search_figures(search_sizes, on_progress)
        return report
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def search_figures(sizes: Sequence[int], on_progress: Callable[[str], None]) -> dict[str, Any]:
    """Candidate-search figures from services/bench/search.py (another benchmark's module)."""
    try:
        from services.bench.search import run_search_bench
    except ImportError:
        return {"missing": "services/bench/search.py is not available"}
    on_progress(f"candidate search at {', '.join(str(size) for size in sizes)} entities")
    figures: dict[str, Any] = run_search_bench(sizes=list(sizes))
    return figures


# --- output --------------------------------------------------------------------------------
def plot_latency(figure: Figure, figures: Mapping[str, Any]) -> None:
    """Left: the latency CDF against the target; right: p50/p95 of each stage (log scales:
    the stages span milliseconds to, on an overloaded machine, minutes)."""
    cdf, bars = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    values = figures.get("latencies_ms") or []
    if values:
        cdf.plot(values, [(i + 1) / len(values) for i in range(len(values))], drawstyle="steps-post")
        cdf.set_xscale("log")
    target = figures["target_p99_ms"]
    cdf.axvline(target, color="red", linestyle="--", label=f"target p99 {target:g} ms")
    cdf.axhline(0.99, color="grey", linewidth=0.5)
    cdf.set_xlabel("POST → match.proposed (ms, log)")
    cdf.set_ylabel("fraction of submissions")
    cdf.set_title(
        f"{figures['rate_target_per_s']:g}/s over {figures['corpus']['entities']:,} entities\n"
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms",
        fontsize=10,
    )
    cdf.legend(loc="lower right", fontsize=8)
    stages = figures.get("stages", {})
    names = list(stages)
    bars.barh(names, [stages[n]["p95_ms"] or 0 for n in names], color="tab:orange", alpha=0.5, label="p95")
    bars.barh(names, [stages[n]["p50_ms"] or 0 for n in names], color="tab:blue", label="p50")
    bars.set_xscale("log")
    bars.invert_yaxis()
    bars.tick_params(axis="y", labelsize=8)
    bars.set_xlabel("ms (log)")
    bars.set_title("where the time goes", fontsize=10)
    bars.legend(loc="lower right", fontsize=8)


def print_report(report: Mapping[str, Any], console: Console) -> None:
    console.print(f"[bold]salon bench latency[/]: {report['path']}")
    corpus = report["corpus"]
    console.print(
        f"{report['database']}, model {report['model']} ({report.get('embed_max_tokens')} tokens), "
        f"{report.get('matchers', 1)} matcher process(es); {corpus['entities']:,} entities seeded "
        f"({corpus['encoded_texts']} texts encoded, the rest near copies); indexed at start: "
        f"{report['indexed_at_start']}; platform start {report['platform_start_s']} s (from snapshots)"
    )
    if corpus.get("cold_rebuild"):
        cold = corpus["cold_rebuild"]
        console.print(
            f"cold index build (first start, no snapshot): {cold['seconds']} s, "
            f"{cold['texts_tokenised']:,} texts tokenised; snapshot written in {cold['snapshot_s']} s"
        )
    table = Table("figure", "value", "target / limit")
    target = report["target_p99_ms"]
    rows = [
        ("rate sent (per s)", report["rate_achieved_per_s"], f"{report['rate_target_per_s']:g}"),
        ("submissions sent / accepted", f"{report['sent']} / {report['accepted']}", ""),
        ("POSTs retried after 429/503 / refused", f"{report['retried_posts']} / {report['refused']}", "0 / 0"),
        ("with a proposal event", report["proposed"], ""),
        ("lost", report["lost"], "0"),
        ("unfinished when the wait ended", report["unfinished"], "0 (else raise --drain-timeout)"),
        ("flagged duplicate / no proposal", f"{report['duplicates']} / {report['no_proposal']}", "(accounted for)"),
        ("p50 latency (ms)", report["p50_ms"], ""),
        ("p95 latency (ms)", report["p95_ms"], ""),
        ("p99 latency (ms)", report["p99_ms"], f"≤ {target:g}"),
        ("max latency (ms)", report["max_ms"], ""),
        ("p99 ÷ target", report["p99_vs_target_ratio"], "≤ 1"),
        ("backlog when sending stopped", report["backlog_at_end"], ""),
        ("drained after (s)", report["drain_s"], ""),
        ("late ÷ early p50", report["late_vs_early_p50_ratio"], "≈ 1 if the rate is held"),
        ("send lag max (ms)", report["send_lag_max_ms"], "small: open loop"),
    ]
    for name, value, limit in rows:
        table.add_row(name, str(value), limit)
    console.print(table)
    stages = Table("stage", "p50 ms", "p95 ms", title="where the time goes (from stored timestamps)")
    for name, description in STAGES:
        figures = report["stages"][name]
        stages.add_row(description, str(figures["p50_ms"]), str(figures["p95_ms"]))
    console.print(stages)
    cpu = report.get("cpu_ms_per_submission")
    if cpu:
        parts = ", ".join(f"{name} {ms:g}" for name, ms in cpu.items() if name != "total")
        cores = os.cpu_count() or 1
        console.print(
            f"CPU ms per submission at {report['rate_target_per_s']:g}/s: {parts}; total {cpu['total']:g} "
            f"(the {cores} cores are spent at {1000 * cores / cpu['total']:.1f}/s)"
            if cpu["total"]
            else f"CPU ms per submission: {parts}"
        )
    if "rate_steps" in report:
        steps = Table("rate (per s)", "sent", "lost", "unfinished", "p50 ms", "p99 ms", "held", title="rate steps")
        for step in report["rate_steps"]:
            steps.add_row(
                f"{step['rate_target_per_s']:g}",
                str(step["sent"]),
                str(step["lost"]),
                str(step["unfinished"]),
                str(step["p50_ms"]),
                str(step["p99_ms"]),
                str(step["held"]),
            )
        console.print(steps)
        console.print(f"highest rate held with p99 ≤ {target:g} ms: [bold]{report['max_rate_held_per_s']}[/]")
    if "search" in report:
        search = report["search"]
        sizes: list[dict[str, Any]] = search.get("sizes", []) if isinstance(search, dict) else []
        if not sizes:
            console.print(f"candidate search: {search}")
        else:
            table = Table(
                "entities", "index", "p50 ms", "p99 ms", "recall@k", title="candidate search (salon bench search)"
            )
            for row in sizes:
                table.add_row(
                    f"{row.get('size', 0):,}",
                    str(row.get("index_kind")),
                    str(row.get("p50_ms")),
                    str(row.get("p99_ms")),
                    str(row.get("recall_at_k")),
                )
            console.print(table)
    verdict = "[green]held[/]" if report["held"] else "[red]not held[/]"
    console.print(f"{report['rate_target_per_s']:g}/s with p99 ≤ {target:g} ms and nothing lost: {verdict}")


def parse_sizes(raw: str) -> list[int]:
    try:
        return [int(part.replace("_", "")) for part in raw.split(",") if part.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"sizes must be comma-separated integers, got {raw!r}") from exc


@bench_app.command("latency")
def bench_latency(
    entities: Annotated[int, typer.Option(min=100, max=2_000_000, help="Entities seeded before the run.")] = 100_000,
    rate: Annotated[float, typer.Option(min=0.5, max=500, help="Submissions per second (open loop).")] = 20.0,
    duration: Annotated[float, typer.Option(min=1, max=3600, help="Seconds of sending at --rate.")] = 60.0,
    distinct_texts: Annotated[int, typer.Option(min=10, help="Seeded texts encoded for real.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the corpus and the submissions.")] = 0,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the seeded platform here and reuse it next time (default: temporary).")
    ] = None,
    database_url: Annotated[str, typer.Option(help="Default: SQLite in the data folder.")] = "",
    drain_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the backlog after sending (and between rate steps).")
    ] = 300.0,
    warmup: Annotated[int, typer.Option(min=0, help="Submissions sent (and not counted) before measuring.")] = 10,
    find_rate: Annotated[
        bool, typer.Option("--find-rate", help="Then step the rate to the highest that holds the target.")
    ] = False,
    step_seconds: Annotated[float, typer.Option(min=1, help="Seconds of each --find-rate step.")] = 20.0,
    search_sizes: Annotated[
        str, typer.Option(help="Candidate-search sizes (services/bench/search.py); empty: none.")
    ] = "100000,1000000",
    with_notifier: Annotated[bool, typer.Option("--with-notifier", help="Run the notifier too.")] = False,
    matchers: Annotated[
        int, typer.Option(min=1, max=8, help="Matcher processes (replicas in one consumer group, each a full index).")
    ] = 1,
    results_dir: Annotated[Path, typer.Option(help="Where latency.json and latency.png go.")] = DEFAULT_RESULTS_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """p50/p95/p99 from POST to `match.proposed` at a steady rate, on a seeded platform (target p99 ≤ 1 s at 20/s)."""
    console = Console(soft_wrap=True, stderr=as_json)
    with console.status("preparing…") as status:
        report = run_latency_bench(
            entities=entities,
            rate=rate,
            duration_s=duration,
            distinct=distinct_texts,
            seed=seed,
            data_dir=data_dir,
            database_url=database_url,
            drain_timeout_s=drain_timeout,
            warmup=warmup,
            find_rate=find_rate,
            step_seconds=step_seconds,
            search_sizes=parse_sizes(search_sizes),
            with_notifier=with_notifier,
            matchers=matchers,
            on_progress=lambda message: status.update(message),
        )
    save_results("latency", report, results_dir=results_dir, plot=plot_latency)
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print_report(report, console)
    if report["lost"]:
        raise typer.Exit(1)
