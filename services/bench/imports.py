"""`salon bench import`: bulk import of N demo-like entities end to end vs the raw encode rate.

1. N rows are generated from the shipped demo entities (sentences recombined, numbers,
   names and places varied — `services.bench.corpus`), so no two texts are the same, and
   written to one CSV with Chinese headers and a 类型 column (pitches, mandates and needs mixed).
2. The raw rate: `SentenceTransformer.encode` on exactly the texts the embedder will see,
   at the best of several batch sizes (swept on a sample), measured in this process
   before the platform starts, so the two never compete for the CPU.
3. A real platform (embedded Tansu broker, api, embedder, matcher, notifier as processes;
   SQLite in the work folder; no demo data) with the embedder's batch size set to that best
   size; the CSV goes in through `import_bytes`, the code `salon import` runs; the clock
   runs from reading the file until the last entity is `matched`.

Figures: the end-to-end rate (entities/s), the import's own write rate, the raw encode
rate and `import_vs_encode_ratio` (end to end ÷ raw encode: 1.0 would mean the pipeline
costs nothing beyond the model). Also counted: duplicates the matcher flagged, proposals,
and submission events the reconciler re-sent while the backlog drained.
"""

from __future__ import annotations

import csv
import gc
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from embeddings.encoder import cap_tokens, resolve_model_path
from services.api.imports import ImportOptions, import_bytes
from services.api.intake import build_entity
from services.bench import bench_app
from services.bench.corpus import kind_sequence, load_templates, variant_body
from services.bench.results import DEFAULT_RESULTS_DIR, save_results
from services.launcher import Platform, free_port
from shared.events import Topic
from shared.models import CREATE_MODELS, ENTITY_TABLES, EntityStatus, Match, OutboxMessage, entity_text
from shared.settings import Settings

BATCH_SIZES = (16, 32, 64, 128)
SWEEP_SAMPLE = 512  # texts per batch size in the sweep; the best size then encodes them all
TARGET_RATIO = 0.5  # end to end at least half the raw encode rate: the pipeline at most doubles the cost

OWNER_FIELD = {"pitch": "company", "mandate": "fund_name", "need": "issuer"}
KIND_WORD = {"pitch": "项目", "mandate": "基金", "need": "需求"}
# One Chinese header per column; 行业, 地区, 阶段 and 币种 serve several kinds (see aliases.json).
HEADERS = {
    "kind": "类型",
    "owner": "所有者",
    "company": "企业名称",
    "title": "项目名称",
    "summary": "项目简介",
    "stage": "阶段",
    "stages": "阶段",
    "funding_ask": "融资金额",
    "currency": "币种",
    "region": "地区",
    "regions": "地区",
    "chain_position": "产业链位置",
    "technology_transfer": "技术转移方式",
    "sectors": "行业",
    "target_sectors": "行业",
    "needs": "企业需求",
    "fund_name": "基金名称",
    "fund_type": "基金类型",
    "thesis": "投资逻辑",
    "ticket_min": "单笔投资下限",
    "ticket_max": "单笔投资上限",
    "reinvestment_region": "返投地区",
    "reinvestment_ratio": "返投比例",
    "relocation_required": "是否要求迁址",
    "loss_tolerance": "风险容忍度",
    "exclusions": "排除行业",
    "issuer": "发布单位",
    "chain_action": "产业链行动",
    "missing_link": "缺失环节",
    "description": "需求描述",
    "resource_elements": "资源要素",
    "offerings": "可提供资源",
    "financials": "财务信息",
    "contact": "联系方式",
    "attachments": "附件",
}
JSON_CELLS = frozenset({"financials", "contact", "attachments"})  # a pitch's confidential parts


def demo_like_rows(count: int, *, seed: int = 7) -> list[tuple[str, str, dict[str, Any]]]:
    """`count` (kind, owner, API body) varied from the demo entities, deterministic per seed."""
    rng = random.Random(f"import-bench-{seed}")
    templates = load_templates()
    rows = []
    for number, kind in enumerate(kind_sequence(count, rng)):
        # mix=2: two sentences dropped, two or three borrowed, so the matcher's near-duplicate
        # check (same wording and meaning) does not short-cut rows the way real copies would.
        body = variant_body(templates, kind, number, rng, mix=2)
        rows.append((kind, body[OWNER_FIELD[kind]], body))
    return rows


def _cell(field: str, value: Any) -> str:
    if value is None:
        return ""
    if field in JSON_CELLS:
        return json.dumps(value, ensure_ascii=False)
    if field == "resource_elements":
        text = "\n".join(f"{element['type']}：{element['description']}" for element in value)
        if any(sep in element["description"] for element in value for sep in ";；|\n"):
            return json.dumps(value, ensure_ascii=False)  # a description with a separator: JSON keeps it whole
        return text
    if isinstance(value, list):
        return "、".join(str(item) for item in value)
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value)


def write_csv(rows: Sequence[tuple[str, str, dict[str, Any]]], path: Path) -> None:
    headers = list(dict.fromkeys(HEADERS.values()))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        for kind, owner, body in rows:
            cells = {HEADERS["kind"]: KIND_WORD[kind], HEADERS["owner"]: owner}
            cells |= {HEADERS[field]: _cell(field, value) for field, value in body.items()}
            writer.writerow([cells.get(header, "") for header in headers])


def embedded_texts(rows: Sequence[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """The texts the embedder will encode for these rows (as a single submission builds them)."""
    return [
        entity_text(build_entity(kind, CREATE_MODELS[kind].model_validate(body), owner=owner))
        for kind, owner, body in rows
    ]


def measure_encode(
    texts: Sequence[str], *, model_name: str, batch_sizes: Sequence[int], max_tokens: int | None = None
) -> tuple[int, float, dict[int, float]]:
    """(best batch size, texts/s of all texts at it, texts/s per swept size on a sample)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_model_path(model_name), device="cpu")
    cap_tokens(model, max_tokens)  # as the embedder truncates
    try:
        model.encode(list(texts[:32]), batch_size=32, normalize_embeddings=True)  # warm-up
        sample = list(texts[:SWEEP_SAMPLE])
        by_size: dict[int, float] = {}
        for size in batch_sizes:
            started = time.perf_counter()
            model.encode(sample, batch_size=size, normalize_embeddings=True)
            by_size[size] = len(sample) / (time.perf_counter() - started)
        best = max(by_size, key=lambda size: by_size[size])
        started = time.perf_counter()
        model.encode(list(texts), batch_size=best, normalize_embeddings=True)
        rate = len(texts) / (time.perf_counter() - started)
    finally:
        del model
        gc.collect()
    return best, rate, by_size


def table_status_counts(engine: Engine) -> dict[str, int]:
    """Entities per status over every table (the bench database holds only the import)."""
    counts = {status.value: 0 for status in EntityStatus}
    with Session(engine) as session:
        for table in ENTITY_TABLES.values():
            for status, count in session.exec(select(table.status, func.count()).group_by(table.status)):
                counts[status] = counts.get(status, 0) + count
    return counts


class Sampler:
    """Samples the entities' statuses once a second in a thread, for the timeline plot."""

    def __init__(self, engine: Engine, started: float, every_s: float = 1.0) -> None:
        self.engine, self.started, self.every_s = engine, started, every_s
        self.samples: list[tuple[float, int, int]] = []  # (seconds, stored, matched)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="import-bench-sampler", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.every_s)

    def sample(self) -> dict[str, int]:
        counts = table_status_counts(self.engine)
        stored = sum(counts.values())
        self.samples.append((round(time.monotonic() - self.started, 2), stored, counts[EntityStatus.MATCHED]))
        return counts

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def _pipeline_figures(engine: Engine, settings: Settings, count: int) -> dict[str, int]:
    with Session(engine) as session:
        duplicates = sum(
            session.exec(select(func.count()).where(col(table.duplicate_of).is_not(None))).one()
            for table in ENTITY_TABLES.values()
        )
        proposals = session.exec(select(func.count()).select_from(Match)).one()
        submission_events = session.exec(
            select(func.count()).where(OutboxMessage.topic == settings.topic(Topic.SUBMISSIONS))
        ).one()
    return {
        "duplicates_flagged": int(duplicates),
        "proposals": int(proposals),
        "submission_events": int(submission_events),
        "redriven_events": int(submission_events) - count,
    }


def run_import_bench(
    *,
    count: int = 10_000,
    work_dir: Path,
    encoder_batch: int | None = None,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    timeout_s: float | None = None,
    matchers: int = 1,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Import `count` demo-like entities into a fresh platform and time them to `matched`.

    `encoder_batch` fixes the batch size (of the raw encode and of the platform's embedder);
    None sweeps `batch_sizes` and uses the fastest for both. `matchers`: matcher processes
    (replicas in one consumer group, each a full index).
    """
    say = on_progress or (lambda _text: None)
    work_dir.mkdir(parents=True, exist_ok=True)
    rows = demo_like_rows(count)
    csv_path = work_dir / "import.csv"
    write_csv(rows, csv_path)
    texts = embedded_texts(rows)
    base = Settings()
    say(f"raw encode of {len(texts)} texts")
    best, encode_rate, by_size = measure_encode(
        texts,
        model_name=base.model,
        batch_sizes=[encoder_batch] if encoder_batch else batch_sizes,
        max_tokens=base.embed_max_tokens,
    )
    settings = base.model_copy(
        update={
            "data_dir": work_dir / "var",
            "database_url": "",
            "kafka_bootstrap": "",
            "kafka_embedded_port": free_port(),
            "api_port": free_port(),
            "embed_batch_size": best,
            "log_level": "WARNING",
        }
    )
    deadline_s = timeout_s if timeout_s is not None else max(600.0, count * 2.0)  # a safety net only
    say(f"starting the platform (no demo data, {matchers} matcher process(es))")
    with Platform(settings, replicas={"matcher": matchers}) as platform:
        data = csv_path.read_bytes()
        written_at: list[float] = []
        started = time.monotonic()
        with Sampler(platform.engine, started) as sampler:
            report = import_bytes(
                data,
                engine=platform.engine,
                settings=settings,
                options=ImportOptions(batch_size=settings.import_batch_size),
                filename=csv_path.name,
                on_progress=lambda phase, done, total: (
                    written_at.append(time.monotonic()) if phase == "writing" and done == total else None
                ),
            )
            imported_s = time.monotonic() - started
            if report.accepted != count:
                raise RuntimeError(f"the import stored {report.accepted} of {count} rows: {report.rejected[:5]}")
            say(f"imported {count} rows in {imported_s:.1f}s; waiting for matching")
            while True:
                counts = sampler.sample()
                if counts[EntityStatus.MATCHED] >= count:
                    break
                if time.monotonic() - started > deadline_s:
                    raise TimeoutError(f"{counts} after {deadline_s:.0f}s")
                dead = platform.check_alive()
                if dead:
                    raise RuntimeError(f"process(es) exited during the bench: {dead}")
                time.sleep(0.5)
            end_to_end_s = time.monotonic() - started
        first_matched = next((t for t, _stored, matched in sampler.samples if matched), end_to_end_s)
        pipeline = _pipeline_figures(platform.engine, settings, count)
    import_rate = count / end_to_end_s
    return {
        "count": count,
        "matchers": matchers,
        "kinds": report.kinds,
        "csv_bytes": len(data),
        "import_seconds": round(imported_s, 2),
        "import_write_rate": round(count / imported_s, 1),
        "end_to_end_seconds": round(end_to_end_s, 2),
        "first_matched_seconds": round(first_matched, 2),
        "import_rate": round(import_rate, 3),
        "encode_rate": round(encode_rate, 3),
        "encode_batch_size": best,
        "encode_rate_by_batch_size": {str(size): round(rate, 2) for size, rate in by_size.items()},
        "embed_batch_size": settings.embed_batch_size,
        "import_vs_encode_ratio": round(import_rate / encode_rate, 3),
        "import_vs_encode_target": TARGET_RATIO,
        **pipeline,
        "timeline": thinned(sampler.samples, 200),
    }


def thinned(samples: Sequence[tuple[float, int, int]], most: int) -> list[tuple[float, int, int]]:
    """At most `most` evenly spaced samples, the last one kept (the plot needs no more)."""
    step = max(1, -(-len(samples) // most))
    kept = list(samples[::step])
    return kept if not samples or kept[-1] == samples[-1] else [*kept, samples[-1]]


def plot_import(figure: Figure, figures: Mapping[str, Any]) -> None:
    timeline = figures["timeline"]
    left = figure.add_subplot(1, 2, 1)
    seconds = [t for t, _, _ in timeline]
    left.plot(seconds, [stored for _, stored, _ in timeline], label="stored (import)", color="#2c7fb8")
    left.plot(seconds, [matched for _, _, matched in timeline], label="matched", color="#c0392b")
    horizon = figures["end_to_end_seconds"]
    encoded_by = figures["count"] / figures["encode_rate"]  # when raw encode would have done them all
    left.plot(
        [0, encoded_by, max(horizon, encoded_by)],
        [0, figures["count"], figures["count"]],
        linestyle="--",
        color="#555555",
        label="raw encode rate",
    )
    left.set_xlabel("seconds since the import started")
    left.set_ylabel("entities")
    left.set_title(f"bulk import of {figures['count']} entities")
    left.legend(loc="lower right")
    right = figure.add_subplot(1, 2, 2)
    names = ["raw encode", "import (file → DB)", "end to end"]
    rates = [figures["encode_rate"], figures["import_write_rate"], figures["import_rate"]]
    right.bar(names, rates, color=["#9bb7d4", "#7fcdbb", "#c0392b"])
    right.set_yscale("log")
    right.set_ylabel("entities / s (log)")
    right.set_title(f"end to end ÷ raw encode = {figures['import_vs_encode_ratio']}")
    right.tick_params(axis="x", labelrotation=15)


def report_table(figures: Mapping[str, Any]) -> Table:
    table = Table(
        title=f"salon bench import — {figures['count']} demo-like entities (CSV, mixed kinds), "
        f"{figures.get('matchers', 1)} matcher process(es)"
    )
    for column in ("figure", "measured", "target / limit"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for size, rate in figures["encode_rate_by_batch_size"].items():
        table.add_row(f"raw encode, batch {size} (sample)", f"{rate:.1f}/s", "")
    table.add_row(
        "raw encode, all texts", f"{figures['encode_rate']:.1f}/s", f"batch {figures['encode_batch_size']} (best)"
    )
    table.add_row(
        "import: read + validate + write",
        f"{figures['import_write_rate']:.1f}/s",
        f"{figures['import_seconds']}s for {figures['csv_bytes'] / 1e6:.1f} MB",
    )
    table.add_row("first entity matched", f"{figures['first_matched_seconds']}s", "")
    table.add_row("end to end (import start → last matched)", f"{figures['import_rate']:.1f}/s", "")
    ratio = figures["import_vs_encode_ratio"]
    mark = "green" if ratio >= figures["import_vs_encode_target"] else "red"
    table.add_row("import_vs_encode_ratio", f"[{mark}]{ratio}[/]", f"≥ {figures['import_vs_encode_target']}")
    table.add_row("duplicates flagged by the matcher", str(figures["duplicates_flagged"]), "0 (texts differ)")
    table.add_row("submission events re-sent by the reconciler", str(figures["redriven_events"]), "0")
    table.add_row("proposals stored", str(figures["proposals"]), "")
    return table


@bench_app.command("import")
def bench_import(
    count: Annotated[int, typer.Option(help="Entities imported.")] = 10_000,
    encoder_batch: Annotated[
        int | None, typer.Option(help="Fix the encode/embedder batch size (default: sweep and take the best).")
    ] = None,
    work_dir: Annotated[Path | None, typer.Option(help="Scratch folder (default: a temporary one).")] = None,
    results_dir: Annotated[Path, typer.Option(help="Where import.json and import.png go.")] = DEFAULT_RESULTS_DIR,
    timeout: Annotated[float | None, typer.Option(help="Give up waiting for matches after this many s.")] = None,
    matchers: Annotated[
        int, typer.Option(min=1, max=8, help="Matcher processes (replicas in one consumer group, each a full index).")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Bulk import end to end (import start → last matched) vs the raw encode rate."""
    import tempfile

    console = Console(stderr=as_json)
    with tempfile.TemporaryDirectory(prefix="salon-import-bench-") as scratch:
        figures = run_import_bench(
            count=count,
            work_dir=work_dir or Path(scratch),
            encoder_batch=encoder_batch,
            timeout_s=timeout,
            matchers=matchers,
            on_progress=lambda text: console.print(f"[dim]{text}[/]"),
        )
    save_results("import", figures, results_dir=results_dir, plot=plot_import)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in figures.items() if k != "timeline"}, ensure_ascii=False))
        return
    console.print(report_table(figures))
