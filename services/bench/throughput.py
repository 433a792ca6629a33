"""`salon bench throughput`: the running embedder's rate beside raw `SentenceTransformer.encode`.

In one run, on the same demo-like texts (the demo entities of `shared/demo/`, their sentences
rotated deterministically so no two texts are equal, composed exactly as the API composes them):

  raw       the model loaded here with sentence-transformers, `encode()` over all N texts at each
            batch size; the best rate is the hardware limit (taken again after the pipeline run,
            and the higher of the two kept, so a quiet moment in the sweep cannot flatter the ratio);
  pipeline  the real embedded Tansu broker and the real embedder process (`Platform`); once it is
            warm (model loaded, group joined, one warm-up batch embedded) N `*.submitted` events —
            the API's envelope and schema — are published in one burst on salon.submissions, and
            the clock runs until the N-th `vector.computed` is read from salon.vectors;
  import    (`--import-count` > 0) `services.bench.imports.run_import_bench`: demo-like entities
            end to end against its own raw encode rate.

Both processes use torch's default thread count (one per core) unless SALON_* / torch
environment variables say otherwise; both counts are printed. After the clock stops, every
vector is checked: one per submission, none twice, each agreeing with the raw encoding.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from sqlmodel import Session

from services.api.intake import build_entity, submission_event
from services.bench import bench_app
from services.bench.results import DEFAULT_RESULTS_DIR, save_results
from services.demo import demo_items
from services.launcher import ManagedProcess, Platform, free_port
from shared.bus import Publisher
from shared.errors import SalonError
from shared.events import Envelope, Topic
from shared.models import CREATE_MODELS, ServiceStatus
from shared.settings import Settings, get_settings

DEFAULT_BATCH_SIZES = (8, 16, 32, 64, 128, 256)
PIPELINE_TARGET = 0.85  # the pipeline must reach this share of the raw encode rate
MATCHER_WARMUP_EVENTS = 150  # handled (not timed) before the matcher's CPU per event is
WARMUP_TEXTS = 64  # embedded before the clock starts: model warm, consumer group joined
ENCODER_MAX_CHARS = 2000  # what SentenceTransformerEncoder cuts texts to; the raw run does the same
LONG_FIELD = {"pitch": "summary", "mandate": "thesis", "need": "description"}
TITLE_FIELD = {"pitch": "title", "mandate": "fund_name", "need": "missing_link"}


class ThroughputBenchError(SalonError):
    """The throughput benchmark could not complete (embedder died, vectors missing, timeout)."""


# --- demo-like submissions -------------------------------------------------------------------
def _sentences(text: str) -> list[str]:
    """Split after Chinese or Latin sentence ends, keeping the punctuation."""
    parts: list[str] = []
    current = ""
    for char in text:
        current += char
        if char in "。！？；.!?;" and len(current.strip()) > 1:
            parts.append(current)
            current = ""
    if current.strip():
        parts.append(current)
    return parts


def _varied(item: Mapping[str, Any], kind: str, variant: int) -> dict[str, Any]:
    """Demo item number `variant` of its kind: sentences rotated, title tagged; same length profile."""
    body = {key: value for key, value in item.items() if key not in {"ref", "owner"}}
    if variant == 0:
        return body
    sentences = _sentences(str(body[LONG_FIELD[kind]]))
    shift = variant % len(sentences)
    body[LONG_FIELD[kind]] = "".join(sentences[shift:] + sentences[:shift])
    title = body.get(TITLE_FIELD[kind]) or ""
    body[TITLE_FIELD[kind]] = f"{title}（第{variant}期 / round {variant}）".strip()
    return body


def demo_like_submissions(count: int) -> list[Envelope]:
    """`count` submission events built like the API builds them, cycling pitch/mandate/need.

    Deterministic texts (the demo data varied by index); entity and event ids are fresh.
    """
    pools = {kind: demo_items(kind) for kind in ("pitch", "mandate", "need")}
    kinds = [kind for kind, items in pools.items() for _ in items]  # the demo's own mix of kinds
    taken = Counter[str]()
    events: list[Envelope] = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        position = taken[kind]
        taken[kind] += 1
        items = pools[kind]
        item = items[position % len(items)]
        body = CREATE_MODELS[kind].model_validate(_varied(item, kind, position // len(items)))
        entity = build_entity(kind, body, owner=str(item["owner"]), entity_id=str(uuid.uuid4()))
        entity.version = 1
        events.append(submission_event(entity, "submitted"))
    return events


def submission_texts(events: Sequence[Envelope]) -> list[str]:
    return [str(event.data["text"]) for event in events]


# --- raw encode: the hardware limit ----------------------------------------------------------
def load_raw_model(model: str, max_tokens: int | None) -> Any:
    """The same model the embedder loads (truncating where it does), straight from sentence-transformers."""
    from embeddings.encoder import cap_tokens, resolve_model_path

    path = resolve_model_path(model)
    if Path(path).is_dir():  # a local folder needs no hub (the deployment has no internet)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" bars would garble --json output
    raw = SentenceTransformer(path, device="cpu")
    cap_tokens(raw, max_tokens)
    return raw


@dataclass(frozen=True)
class EncodeRun:
    vectors: np.ndarray
    rate: float  # texts per wall-clock second
    cpu_ms_per_text: float  # CPU time of this process (all torch threads) per text


def raw_encode(model: Any, texts: Sequence[str], batch_size: int) -> EncodeRun:
    """One plain `encode()` call over all texts, as a user of sentence-transformers would write it."""
    prepared = [text[:ENCODER_MAX_CHARS] for text in texts]
    cpu_started, started = time.process_time(), time.perf_counter()
    vectors = model.encode(
        prepared, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return EncodeRun(np.asarray(vectors, dtype=np.float32), len(prepared) / elapsed, 1000 * cpu / len(prepared))


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc); None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the running pipeline --------------------------------------------------------------------
@dataclass
class PipelineRun:
    rate: float
    seconds: float
    produced: int
    duplicates: int
    missing: int
    vectors: dict[str, np.ndarray]  # submission event id -> vector
    poll_sizes: dict[str, int] = field(default_factory=dict)
    embedder: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: dict[str, float | None] = field(default_factory=dict)  # embedder, broker, bench


def _embedder_detail(platform: Platform) -> dict[str, Any]:
    with Session(platform.engine) as session:
        row = session.get(ServiceStatus, "embedder")
        return dict(row.detail or {}) if row else {}


def _wait_for_handled(platform: Platform, handled: int, timeout_s: float) -> dict[str, Any]:
    """The embedder's heartbeat detail once it reports `handled` submissions (heartbeats every 2 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        detail = _embedder_detail(platform)
        if int(detail.get("handled", 0)) >= handled:
            return detail
        if time.monotonic() > deadline:
            raise ThroughputBenchError(f"the embedder reported {detail.get('handled')} handled, expected {handled}")
        time.sleep(0.2)


class VectorReader:
    """Reads salon.vectors from the start of every partition, without a consumer group."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            group_id=None,
            fetch_max_bytes=64 * 1024 * 1024,
            allow_auto_create_topics=False,
        )
        partitions = self._consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise ThroughputBenchError(f"topic {topic} has no partitions")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        self._consumer.seek_to_beginning(*assigned)

    def read(self, count: int, *, timeout_s: float, dead: Callable[[], list[str]]) -> list[bytes]:
        """Raw values of the next `count` records (parsing waits until the clock has stopped)."""
        values: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while len(values) < count:
            for records in self._consumer.poll(timeout_ms=200, max_records=count - len(values)).values():
                values.extend(record.value for record in records)
            if time.monotonic() > deadline:
                raise ThroughputBenchError(f"only {len(values)} of {count} vectors after {timeout_s:.0f}s")
            if exited := dead():
                raise ThroughputBenchError(f"{', '.join(exited)} exited during the run")
        return values

    def drain(self, *, quiet_s: float) -> list[bytes]:
        """Whatever else arrives until the topic stays quiet for `quiet_s`."""
        values: list[bytes] = []
        while polled := self._consumer.poll(timeout_ms=int(quiet_s * 1000)):
            for records in polled.values():
                values.extend(record.value for record in records)
        return values

    def close(self) -> None:
        self._consumer.close()


def _new_counts(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    """Histogram `after` minus `before`, largest key first."""
    diff = {size: int(after.get(size, 0)) - int(before.get(size, 0)) for size in after}
    return {size: n for size, n in sorted(diff.items(), key=lambda kv: -int(kv[0])) if n > 0}


def cpu_seconds_of(process: ManagedProcess | None) -> float | None:
    pid = process.process.pid if process is not None and process.process is not None else None
    return process_cpu_seconds(pid) if pid is not None else None


def _spent(after: float | None, before: float | None) -> float | None:
    return round(after - before, 3) if after is not None and before is not None else None


def run_pipeline(
    submissions: Sequence[Envelope],
    warmup: Sequence[Envelope],
    *,
    work_dir: Path,
    base: Settings,
    timeout_s: float,
) -> PipelineRun:
    """Warm the embedder with `warmup`, then time `submissions` from the burst to the last vector."""
    settings = base.model_copy(
        update={
            "data_dir": work_dir / "var",
            "database_url": "",
            "kafka_bootstrap": "",  # the embedded broker, as `salon up` starts it
            "kafka_embedded_port": free_port(),
            "api_port": free_port(),
            "instance_id": "",
            "log_level": "WARNING",
        }
    )
    submissions_topic = settings.topic(Topic.SUBMISSIONS)
    # Serialised before the clock starts: the clock measures the embedder, not this producer.
    burst: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
        (submissions_topic, e.subject.encode(), e.to_bytes(), []) for e in submissions
    ]
    with Platform(settings, services=("embedder",)) as platform:
        embedder = platform.services["embedder"]
        publisher = Publisher(settings.bootstrap, client_id="bench-throughput")
        reader = VectorReader(settings.bootstrap, settings.topic(Topic.VECTORS))
        try:
            publisher.publish_many([(submissions_topic, e) for e in warmup])
            reader.read(len(warmup), timeout_s=timeout_s, dead=platform.check_alive)
            before = _wait_for_handled(platform, len(warmup), timeout_s=60)
            cpu_before = (cpu_seconds_of(embedder), cpu_seconds_of(platform.broker), time.process_time())

            started = time.perf_counter()
            publisher.publish_raw(burst, timeout_s=120)
            values = reader.read(len(submissions), timeout_s=timeout_s, dead=platform.check_alive)
            seconds = time.perf_counter() - started

            cpu_after = (cpu_seconds_of(embedder), cpu_seconds_of(platform.broker), time.process_time())
            after = _wait_for_handled(platform, len(warmup) + len(submissions), timeout_s=60)
            values.extend(reader.drain(quiet_s=1.0))  # a vector published twice would come now
        finally:
            reader.close()
            publisher.close()
    wanted = {event.id for event in submissions}
    vectors: dict[str, np.ndarray] = {}
    duplicates = 0
    for value in values:
        data = Envelope.from_bytes(value).payload()
        if data.source_event_id in vectors:
            duplicates += 1
        elif data.source_event_id in wanted:
            vectors[data.source_event_id] = np.asarray(data.vector, dtype=np.float32)
    return PipelineRun(
        rate=len(submissions) / seconds,
        seconds=seconds,
        produced=len(vectors),
        duplicates=duplicates,
        missing=len(wanted - set(vectors)),
        vectors=vectors,
        poll_sizes=_new_counts(after.get("poll_sizes", {}), before.get("poll_sizes", {})),
        embedder={key: after[key] for key in ("torch_threads", "model", "dim") if key in after},
        cpu_seconds={
            name: _spent(a, b)
            for name, a, b in zip(("embedder", "broker", "bench"), cpu_after, cpu_before, strict=True)
        },
    )


# --- the matcher's cost per event, for capacity planning -------------------------------------
def _rss_bytes() -> int | None:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return None


def measure_matcher(
    *, entities: int, events: int, work_dir: Path, settings: Settings, warmup: int = MATCHER_WARMUP_EVENTS
) -> dict[str, Any]:
    """The matcher's CPU per `vector.computed` and memory per indexed entity, at `entities`.

    In this process, without Kafka: a SQLite database seeded with demo-like entities
    (services/bench/corpus.py), the matcher's state rebuilt from it, then `handle_vector` on
    `warmup + events` fresh submissions, one at a time as the matcher does. The first `warmup`
    fill its caches (counterparts, glossary concepts) as the first minutes after a start do;
    their mean is reported apart (`cpu_ms_per_event_cold`), the steady state is the rest. The vectors come from the
    hashing encoder: what the matcher spends (FAISS search, BM25, rules, the database writes)
    does not depend on which model made them, and seeding 100k with the model takes hours.
    """
    from itertools import islice

    from embeddings import HashingEncoder
    from embeddings.lexical import tokenize
    from services.bench.corpus import seed_corpus, submission_bodies, variant_entity
    from services.matcher.handlers import handle_vector
    from services.matcher.main import index_config_from, policy_from
    from services.matcher.state import MatcherState
    from shared.db import init_db, make_engine
    from shared.events import VectorData
    from shared.models import entity_text

    work_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{work_dir / 'matcher.db'}")
    init_db(engine)
    encoder = HashingEncoder(settings.embedding_dim)
    seed_corpus(engine, encoder, total=entities, distinct=min(entities, 2000))
    tokenize("石墨負極材料 graphite anodes 数据中心")  # loads jieba's dictionary and OpenCC: not per entity
    gc.collect()
    rss_before, cpu_before = _rss_bytes(), time.process_time()
    state = MatcherState(
        settings.embedding_dim, work_dir / "index", snapshot_every=10**9, index_config=index_config_from(settings)
    )
    state.rebuild(engine)
    rebuild_cpu, rss_after = time.process_time() - cpu_before, _rss_bytes()
    fresh = [
        variant_entity(kind, body, owner=f"bench-owner-{n}")
        for n, (kind, body, _) in enumerate(islice(submission_bodies(seed=11), warmup + events))
    ]
    with Session(engine) as session:
        session.add_all(fresh)
        session.commit()
        for entity in fresh:
            session.refresh(entity)
    vectors = encoder.encode([entity_text(entity) for entity in fresh])
    policy = policy_from(settings)
    cpu_ms: list[float] = []
    proposals = 0
    for entity, vector in zip(fresh, vectors, strict=True):
        kind: Any = entity.kind
        event = Envelope.wrap(
            "vector.computed",
            entity.id,
            VectorData(
                kind=kind,
                entity_id=entity.id,
                version=entity.version,
                model=encoder.model_name,
                dim=encoder.dim,
                vector=[float(x) for x in vector],
                source_event_id=str(uuid.uuid4()),
            ),
        )
        started = time.process_time()
        proposals += handle_vector(event, engine=engine, state=state, policy=policy, matches_topic="bench.matches")
        cpu_ms.append(1000 * (time.process_time() - started))
    engine.dispose()
    grown = rss_after - rss_before if rss_after is not None and rss_before is not None else None
    cold, cpu_ms = cpu_ms[:warmup], cpu_ms[warmup:]
    return {
        "entities": entities,
        "events": events,
        "warmup_events": warmup,
        "index_sizes": state.sizes(),
        "proposals_per_event": round(proposals / max(warmup + events, 1), 2),
        "cpu_ms_per_event": round(float(np.mean(cpu_ms)), 2),
        "cpu_ms_per_event_p50": round(float(np.percentile(cpu_ms, 50)), 2),
        "cpu_ms_per_event_p95": round(float(np.percentile(cpu_ms, 95)), 2),
        "cpu_ms_per_event_cold": round(float(np.mean(cold)), 2) if cold else None,
        "rebuild_cpu_seconds": round(rebuild_cpu, 1),
        "state_bytes_per_entity": round(grown / entities) if grown is not None else None,
    }


# --- the benchmark ---------------------------------------------------------------------------
def _agreement(pipeline: Mapping[str, np.ndarray], raw: np.ndarray, events: Sequence[Envelope]) -> float:
    """The lowest cosine between a pipeline vector and the raw encoding of the same text."""
    cosines = [float(np.dot(pipeline[event.id], raw[row])) for row, event in enumerate(events) if event.id in pipeline]
    return round(min(cosines), 6) if cosines else 0.0


def _per_text_ms(seconds: float | None, count: int) -> float | None:
    return round(1000 * seconds / count, 2) if seconds is not None else None


def run_throughput_bench(
    *,
    count: int = 2000,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    work_dir: Path,
    import_count: int = 0,
    matcher_entities: int = 0,
    matcher_events: int = 50,
    settings: Settings | None = None,
    timeout_s: float = 1800.0,
) -> dict[str, Any]:
    """Every figure of `salon bench throughput`, measured in this run."""
    if count <= 0 or not batch_sizes:
        raise ValueError("count must be positive and at least one batch size given")
    base = settings or get_settings()
    warmup_count = min(base.embed_poll_size, WARMUP_TEXTS)
    events = demo_like_submissions(warmup_count + count)
    warmup, submissions = events[:warmup_count], events[warmup_count:]
    texts = submission_texts(submissions)

    matcher = (  # first, while nothing else in this process allocates or frees memory
        measure_matcher(entities=matcher_entities, events=matcher_events, work_dir=work_dir / "matcher", settings=base)
        if matcher_entities > 0
        else None
    )
    model = load_raw_model(base.model, base.embed_max_tokens)
    raw_encode(model, submission_texts(warmup), max(batch_sizes))  # first calls allocate: not timed
    sweep = {batch_size: raw_encode(model, texts, batch_size) for batch_size in batch_sizes}
    best_batch = max(sweep, key=lambda b: sweep[b].rate)

    pipeline = run_pipeline(submissions, warmup, work_dir=work_dir / "pipeline", base=base, timeout_s=timeout_s)

    recheck = raw_encode(model, texts, best_batch)
    limit = max(sweep[best_batch].rate, recheck.rate)
    del model
    embedder_cpu = pipeline.cpu_seconds.get("embedder")
    broker_cpu = pipeline.cpu_seconds.get("broker")
    figures: dict[str, Any] = {
        "texts": count,
        "mean_text_chars": round(sum(map(len, texts)) / len(texts), 1),
        "model": base.model,
        "torch_threads": torch_threads(),
        "embedder_torch_threads": pipeline.embedder.get("torch_threads"),
        "encode_rate_by_batch_size": {str(b): round(run.rate, 2) for b, run in sweep.items()},
        "encode_best_batch_size": best_batch,
        "encode_best_rate_sweep": round(sweep[best_batch].rate, 2),
        "encode_best_rate_recheck": round(recheck.rate, 2),
        "encode_best_rate": round(limit, 2),
        "embed_batch_size": base.embed_batch_size,
        "embed_poll_size": base.embed_poll_size,
        "embed_batch_wait_ms": base.embed_batch_wait_ms,
        "embed_polls_used": pipeline.poll_sizes,
        "pipeline_seconds": round(pipeline.seconds, 3),
        "pipeline_rate": round(pipeline.rate, 2),
        "pipeline_vs_encode_ratio": round(pipeline.rate / limit, 3),
        "pipeline_vs_encode_target": PIPELINE_TARGET,
        # CPU time per text: steadier than wall time on a shared machine, and what capacity
        # planning divides by (texts per CPU-second = texts per second per core).
        "encode_cpu_ms_per_text": round(sweep[best_batch].cpu_ms_per_text, 2),
        "embedder_cpu_ms_per_text": _per_text_ms(embedder_cpu, count),
        "broker_cpu_ms_per_text": _per_text_ms(broker_cpu, count),
        "bench_cpu_ms_per_text": _per_text_ms(pipeline.cpu_seconds.get("bench"), count),
        # Raw CPU per text ÷ the embedder's: the wall ratio's counterpart that other jobs on the
        # machine disturb much less (1.0 = the pipeline costs nothing beyond the model).
        "pipeline_vs_encode_cpu_ratio": (
            round(sweep[best_batch].cpu_ms_per_text / (1000 * embedder_cpu / count), 3) if embedder_cpu else None
        ),
        "vectors_produced": pipeline.produced,
        "vectors_duplicated": pipeline.duplicates,
        "vectors_missing": pipeline.missing,
        "vector_agreement_min_cosine": _agreement(pipeline.vectors, recheck.vectors, submissions),
    }
    if matcher is not None:
        figures["matcher"] = matcher
    if import_count > 0:
        from services.bench.imports import run_import_bench

        imported = run_import_bench(count=import_count, work_dir=work_dir / "import", encoder_batch=best_batch)
        figures["import"] = imported
        figures["import_vs_encode_ratio"] = imported.get("import_vs_encode_ratio")
    return figures


def plot_throughput(figure: Figure, figures: Mapping[str, Any]) -> None:
    axes = figure.add_subplot(1, 1, 1)
    by_batch = figures["encode_rate_by_batch_size"]
    sizes = list(by_batch)
    axes.bar(sizes, [by_batch[s] for s in sizes], color="#9bb7d4", label="raw SentenceTransformer.encode")
    axes.axhline(figures["pipeline_rate"], color="#c0392b", linewidth=2, label="embedder pipeline (topic → topic)")
    target = figures["encode_best_rate"] * figures["pipeline_vs_encode_target"]
    axes.axhline(target, color="#555555", linestyle="--", label=f"target {figures['pipeline_vs_encode_target']}× best")
    import_rate = (figures.get("import") or {}).get("import_rate")
    if import_rate:
        axes.axhline(import_rate, color="#27ae60", linestyle=":", linewidth=2, label="bulk import, end to end")
    axes.set_xlabel("raw encode batch size")
    axes.set_ylabel("texts embedded per second")
    axes.set_title(
        f"Embedding throughput on {figures['texts']} demo-like texts: pipeline ÷ best raw = "
        f"{figures['pipeline_vs_encode_ratio']}",
        fontsize=10,
    )
    axes.legend(loc="lower right", fontsize=8)


def _table(figures: Mapping[str, Any]) -> Table:
    table = Table(title="salon bench throughput (same texts, same machine, same run)")
    for column in ("figure", "measured", "target / limit", "ratio"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for size, rate in figures["encode_rate_by_batch_size"].items():
        table.add_row(f"raw encode, batch {size}", f"{rate:.1f}/s", "", "")
    best = f"{figures['encode_best_rate']:.1f}/s raw, batch {figures['encode_best_batch_size']}"
    ratio = figures["pipeline_vs_encode_ratio"]
    mark = "green" if ratio >= figures["pipeline_vs_encode_target"] else "red"
    table.add_row(
        "embedder pipeline", f"{figures['pipeline_rate']:.1f}/s", f"≥ {PIPELINE_TARGET} × {best}", f"[{mark}]{ratio}[/]"
    )
    polls = ", ".join(f"{n}×{size}" for size, n in figures["embed_polls_used"].items()) or "—"
    table.add_row("embedder polls (count × texts)", polls, f"≤ {figures['embed_poll_size']} per poll", "")
    table.add_row(
        "CPU ms per text: raw / embedder / broker",
        f"{figures['encode_cpu_ms_per_text']} / {figures['embedder_cpu_ms_per_text']} / "
        f"{figures['broker_cpu_ms_per_text']}",
        "",
        str(figures["pipeline_vs_encode_cpu_ratio"]),
    )
    table.add_row(
        "vectors produced / duplicated / missing",
        f"{figures['vectors_produced']} / {figures['vectors_duplicated']} / {figures['vectors_missing']}",
        f"{figures['texts']} / 0 / 0",
        "",
    )
    table.add_row("min cosine, pipeline vs raw vector", str(figures["vector_agreement_min_cosine"]), "≈ 1", "")
    imported = figures.get("import")
    if imported:
        table.add_row(
            f"bulk import of {imported.get('count', '?')} entities, end to end",
            f"{imported.get('import_rate', 0):.1f}/s",
            f"{imported.get('encode_rate', 0):.1f}/s raw encode",
            str(figures["import_vs_encode_ratio"]),
        )
    matcher = figures.get("matcher")
    if matcher:
        table.add_row(
            f"matcher CPU ms per vector event ({matcher['entities']} indexed)",
            f"{matcher['cpu_ms_per_event']} (p95 {matcher['cpu_ms_per_event_p95']})",
            f"first {matcher.get('warmup_events')} after a start: {matcher.get('cpu_ms_per_event_cold')}",
            "",
        )
        table.add_row("matcher memory per indexed entity", f"{matcher['state_bytes_per_entity']} B", "", "")
    threads = f"{figures['torch_threads']} / {figures['embedder_torch_threads']}"
    table.add_row("torch threads: bench / embedder", threads, "", "")
    return table


@bench_app.command("throughput")
def bench_throughput(
    count: Annotated[int, typer.Option(help="Submissions embedded (and texts per raw encode run).")] = 2000,
    batch_size: Annotated[
        list[int] | None, typer.Option("--batch-size", help="Raw encode batch sizes to sweep (repeatable).")
    ] = None,
    import_count: Annotated[int, typer.Option(help="Entities for the bulk import figure; 0 skips it.")] = 10_000,
    matcher_entities: Annotated[
        int, typer.Option(help="Index size for the matcher's CPU per event and memory per entity; 0 skips it.")
    ] = 100_000,
    matcher_events: Annotated[int, typer.Option(help="Vector events timed through the matcher's handler.")] = 50,
    work_dir: Annotated[Path | None, typer.Option(help="Scratch folder (default: a temporary one).")] = None,
    results_dir: Annotated[Path, typer.Option(help="Where throughput.json and .png go.")] = DEFAULT_RESULTS_DIR,
    timeout: Annotated[float, typer.Option(help="Give up waiting for vectors after this many seconds.")] = 1800.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Embedder throughput vs raw encode at its best batch size (target ≥ 0.85×), and bulk import."""
    sizes = tuple(batch_size) if batch_size else DEFAULT_BATCH_SIZES
    with tempfile.TemporaryDirectory(prefix="salon-bench-throughput-") as scratch:
        figures = run_throughput_bench(
            count=count,
            batch_sizes=sizes,
            work_dir=work_dir or Path(scratch),
            import_count=import_count,
            matcher_entities=matcher_entities,
            matcher_events=matcher_events,
            timeout_s=timeout,
        )
    save_results("throughput", figures, results_dir=results_dir, plot=plot_throughput)
    if as_json:
        typer.echo(json.dumps(figures, ensure_ascii=False))
    else:
        Console().print(_table(figures))
    if figures["vectors_missing"]:
        raise typer.Exit(1)
