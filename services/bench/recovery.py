"""`salon bench recovery`: how fast the platform catches up after the embedded broker restarts.

One run, real processes (`Platform`: Tansu + api, embedder, matcher, notifier), one machine:

  warm-up   a few submissions matched: the model is loaded and every consumer group joined;
  steady    `--steady` submissions POSTed with the broker up; the clock runs from the first
            POST to the last of them `matched`: the steady throughput (submissions/s to matched);
  outage    the broker is killed (kill -9; it is memory-only, so every topic and offset is
            gone) and `--pending` submissions are POSTed: the API keeps accepting them into its
            transactional outbox;
  recovery  the broker starts again; the clock runs from that moment to zero backlog (every
            pending submission matched and the outbox empty): recovery time, and throughput
            during recovery = pending ÷ recovery time; `recovery_vs_steady_ratio` compares it
            with the steady throughput (the group re-joins are inside the recovery time;
            `recovery_active_vs_steady_ratio` leaves them out, counting from the first match).

Nothing is in flight when the broker dies (the steady phase has settled). The reconciler still
runs, re-driving after `RECONCILE_AFTER_S`: in about half the runs the restarted embedded broker
(Tansu 0.6, memory storage) acknowledges the outbox's events and then never serves them
(tests/e2e/test_embedded_broker_restart.py), and the re-drive is what gets them through; the
recovery time includes it when it happens. The ledger afterwards (services/bench/ledger.py) must
show nothing lost and nothing proposed twice. Timing figures depend on the machine and on what
else runs on it.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.bench import bench_app
from services.bench.ledger import Ledger, wait_settled
from services.bench.load import Participants, SubmissionStream, varied_bodies
from services.bench.results import DEFAULT_RESULTS_DIR, save_results
from services.launcher import Platform, free_port
from shared.errors import SalonError
from shared.events import Topic
from shared.models import ENTITY_TABLES, EntityStatus, OutboxMessage
from shared.settings import Settings

RECOVERY_VS_STEADY_TARGET = 0.8  # catching up should run near the steady rate, group re-joins included
REJOIN_ALLOWANCE_S = 30.0  # consumer groups re-form on the new broker before anything flows
SAMPLE_EVERY_S = 0.5
LEDGER_SETTLE_S = 60.0  # after `follow`, for rows enqueued meanwhile by another process
RECONCILE_AFTER_S = 15  # what the restarted embedded broker loses is re-driven after this (see above)


class RecoveryBenchError(SalonError):
    """The recovery benchmark could not complete (a process died, the backlog never cleared)."""


def matched_of(engine: Engine, owners: list[str]) -> int:
    """Entities of these owners in status `matched`."""
    total = 0
    with Session(engine) as session:
        for table in ENTITY_TABLES.values():
            total += session.exec(
                select(func.count())
                .select_from(table)
                .where(col(table.owner).in_(owners), col(table.status) == EntityStatus.MATCHED)
            ).one()
    return total


def outbox_pending(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(
            select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.published_at).is_(None))
        ).one()


def follow(
    platform: Platform,
    owners: list[str],
    target: int,
    *,
    since: float,
    timeout_s: float,
) -> tuple[list[tuple[float, int]], float]:
    """Sample how many of `owners`' entities are matched until `target` are and the outbox is empty
    (checked after the matched count, so it holds their proposals too).

    Returns (seconds since `since`, matched) samples, the last one at the moment it finished,
    and the seconds until the outbox was first seen empty.
    """
    samples: list[tuple[float, int]] = []
    drained_s: float | None = None
    deadline = time.perf_counter() + timeout_s
    while True:
        matched = matched_of(platform.engine, owners)
        now = round(time.perf_counter() - since, 3)
        samples.append((now, matched))
        backlog = outbox_pending(platform.engine)
        if drained_s is None and not backlog:
            drained_s = now
        # Empty now, not only once: the last entities' proposals enter the outbox when they are
        # matched, and the ledger read next counts any row still unpublished as a problem.
        if matched >= target and drained_s is not None and not backlog:
            return samples, drained_s
        dead = platform.check_alive()
        if dead:
            raise RecoveryBenchError(f"{', '.join(dead)} died during the benchmark")
        if time.perf_counter() > deadline:
            raise RecoveryBenchError(f"only {matched} of {target} matched after {timeout_s:.0f} s")
        time.sleep(SAMPLE_EVERY_S)


def bench_settings(data_dir: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        kafka_bootstrap="",  # the embedded broker: the one this benchmark kills
        kafka_embedded_port=free_port(),
        api_port=free_port(),
        api_key_pepper="bench-recovery-pepper-0123456789",
        reconcile_after_s=RECONCILE_AFTER_S,
        rate_limit_per_minute=1_000_000,  # the load is the point, not the per-key limit
        rate_limit_burst=100_000,
    )


def run_recovery_bench(
    *,
    pending: int,
    steady: int,
    warmup: int = 10,
    workers: int = 8,
    database_url: str = "",
    work_dir: Path,
    timeout_s: float = 1800.0,
    on_progress: Callable[[str], None] = lambda _message: None,
) -> dict[str, Any]:
    settings = bench_settings(work_dir / "var", database_url)
    matches_topic = settings.topic(Topic.MATCHES)
    on_progress("starting the platform (broker, api, embedder, matcher, notifier)")
    with Platform(settings) as platform:
        assert platform.broker is not None
        pepper = settings.api_key_pepper
        runs = {
            name: Participants.create(platform.engine, pepper, prefix=f"bench-{name}")
            for name in ("warmup", "steady", "pending")
        }
        bodies = varied_bodies(warmup + steady + pending, seed=17)
        with SubmissionStream(platform.api_url, runs["warmup"], workers=workers) as stream:
            stream.submit(bodies[:warmup])
            wait_settled(
                platform.engine, stream.accepted, runs["warmup"].owners, matches_topic=matches_topic, timeout=timeout_s
            )

        on_progress(f"steady state: {steady} submissions with the broker up")
        with SubmissionStream(platform.api_url, runs["steady"], workers=workers) as steady_stream:
            started = time.perf_counter()
            steady_stream.submit(bodies[warmup : warmup + steady])
            steady_samples, _ = follow(
                platform, runs["steady"].owners, len(steady_stream.accepted), since=started, timeout_s=timeout_s
            )
        steady_s = steady_samples[-1][0]
        # Nothing is in flight when the broker dies: matched, and the outbox empty (follow waits for both).

        on_progress(f"outage: broker killed, {pending} submissions into the outbox")
        platform.broker.kill()
        with SubmissionStream(platform.api_url, runs["pending"], workers=workers) as outage_stream:
            intake_started = time.perf_counter()
            outage_stream.submit(bodies[warmup + steady :])
            intake_s = time.perf_counter() - intake_started
            queued = outbox_pending(platform.engine)

            on_progress("recovery: broker restarted, waiting for zero backlog")
            restarted = time.perf_counter()
            platform.restart_broker()
            owners = runs["pending"].owners
            recovery_samples, drained_s = follow(
                platform, owners, len(outage_stream.accepted), since=restarted, timeout_s=timeout_s
            )
        recovery_s = recovery_samples[-1][0]
        first_matched_s = next((t for t, matched in recovery_samples if matched > 0), recovery_s)
        # Settled already (follow saw every entity matched and the outbox empty); waiting a little
        # more only covers rows another process enqueues meanwhile (a reconciler re-drive).
        ledgers = {
            "steady": wait_settled(
                platform.engine,
                steady_stream.accepted,
                runs["steady"].owners,
                matches_topic=matches_topic,
                timeout=LEDGER_SETTLE_S,
            ),
            "pending": wait_settled(
                platform.engine, outage_stream.accepted, owners, matches_topic=matches_topic, timeout=LEDGER_SETTLE_S
            ),
        }
    steady_rate = len(steady_stream.accepted) / steady_s
    recovery_rate = len(outage_stream.accepted) / recovery_s
    active_s = max(recovery_s - first_matched_s, 1e-9)
    problems = [f"{name}: {problem}" for name, ledger in ledgers.items() for problem in ledger.problems()]
    unexpected = steady_stream.unexpected + outage_stream.unexpected
    problems += [f"HTTP {status}: {text[:120]}" for status, text in unexpected[:5]]
    return {
        "database": "postgresql" if database_url else "sqlite",
        "steady_submissions": len(steady_stream.accepted),
        "pending": len(outage_stream.accepted),
        "steady_seconds": round(steady_s, 2),
        "steady_rate": round(steady_rate, 2),
        "outage_intake_rate": round(len(outage_stream.accepted) / intake_s, 2),
        "outbox_queued_at_restart": queued,
        "first_matched_after_restart_s": round(first_matched_s, 2),
        "outbox_drained_s": round(drained_s, 2),
        "recovery_s": round(recovery_s, 2),
        "recovery_limit_s": round(len(outage_stream.accepted) / steady_rate + REJOIN_ALLOWANCE_S, 2),
        "recovery_rate": round(recovery_rate, 2),
        "recovery_active_rate": round((len(outage_stream.accepted)) / active_s, 2),
        "recovery_vs_steady_ratio": round(recovery_rate / steady_rate, 3),
        "recovery_active_vs_steady_ratio": round(len(outage_stream.accepted) / active_s / steady_rate, 3),
        "recovery_vs_steady_target": RECOVERY_VS_STEADY_TARGET,
        "lost": ledgers["pending"].accepted
        - ledgers["pending"].matched
        + ledgers["steady"].accepted
        - ledgers["steady"].matched,
        "duplicate_proposals": sum(ledger.duplicate_proposals for ledger in ledgers.values()),
        "http_statuses": {str(status): n for status, n in (steady_stream.statuses + outage_stream.statuses).items()},
        "ledger": {name: ledger_figures(ledger) for name, ledger in ledgers.items()},
        "problems": problems,
        "timeline": {"steady": steady_samples, "recovery": recovery_samples},
    }


def ledger_figures(ledger: Ledger) -> dict[str, int]:
    return {name: int(value) for name, value in vars(ledger).items()}


def plot_recovery(figure: Figure, figures: Mapping[str, Any]) -> None:
    axes = figure.add_subplot(1, 1, 1)
    for phase, colour, label in (
        ("steady", "#2c7fb8", f"steady: {figures['steady_rate']}/s"),
        ("recovery", "#c0392b", f"after broker restart: {figures['recovery_rate']}/s"),
    ):
        samples = figures["timeline"][phase]
        axes.plot([t for t, _ in samples], [n for _, n in samples], color=colour, label=label)
    axes.axvline(
        figures["first_matched_after_restart_s"], color="#999999", linestyle=":", label="first match after restart"
    )
    axes.set_xlabel("seconds since the phase started (first POST / broker restart)")
    axes.set_ylabel("submissions matched")
    axes.set_title(
        f"Recovery of {figures['pending']} pending submissions: zero backlog after {figures['recovery_s']} s, "
        f"recovery ÷ steady = {figures['recovery_vs_steady_ratio']}",
        fontsize=10,
    )
    axes.legend(loc="lower right", fontsize=8)


def _table(figures: Mapping[str, Any]) -> Table:
    table = Table(title=f"salon bench recovery ({figures['database']}, embedded broker killed and restarted)")
    for column in ("figure", "measured", "target / limit"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    ratio, target = figures["recovery_vs_steady_ratio"], figures["recovery_vs_steady_target"]
    mark = "green" if ratio >= target else "red"
    rows = [
        ("steady throughput (POST → matched)", f"{figures['steady_rate']}/s over {figures['steady_submissions']}", ""),
        ("intake while the broker is down", f"{figures['outage_intake_rate']}/s", "every POST accepted (202)"),
        ("outbox rows queued at restart", str(figures["outbox_queued_at_restart"]), f"≥ {figures['pending']}"),
        ("first match after restart", f"{figures['first_matched_after_restart_s']} s", f"≤ {REJOIN_ALLOWANCE_S:.0f} s"),
        ("outbox drained after restart", f"{figures['outbox_drained_s']} s", ""),
        ("zero backlog after restart", f"{figures['recovery_s']} s", f"≤ {figures['recovery_limit_s']} s"),
        ("throughput during recovery", f"{figures['recovery_rate']}/s", ""),
        ("recovery ÷ steady", f"[{mark}]{ratio}[/]", f"≥ {target}"),
        ("recovery ÷ steady, after the first match", str(figures["recovery_active_vs_steady_ratio"]), ""),
        ("lost / duplicate proposals", f"{figures['lost']} / {figures['duplicate_proposals']}", "0 / 0"),
        ("HTTP answers", ", ".join(f"{k}×{v}" for k, v in figures["http_statuses"].items()), "202 only (503 retried)"),
    ]
    for row in rows:
        table.add_row(*row)
    return table


@bench_app.command("recovery")
def bench_recovery(
    pending: Annotated[int, typer.Option(help="Submissions accepted while the broker is down.")] = 2000,
    steady: Annotated[int, typer.Option(help="Submissions for the steady-state rate, broker up.")] = 1000,
    workers: Annotated[int, typer.Option(help="Concurrent HTTP clients posting submissions.")] = 8,
    database_url: Annotated[str, typer.Option(help="PostgreSQL URL; empty: a fresh SQLite file.")] = "",
    work_dir: Annotated[Path | None, typer.Option(help="Scratch folder (default: a temporary one).")] = None,
    results_dir: Annotated[Path, typer.Option(help="Where recovery.json and .png go.")] = DEFAULT_RESULTS_DIR,
    timeout: Annotated[float, typer.Option(help="Give up on a phase after this many seconds.")] = 1800.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Time from broker restart to zero backlog, and throughput during recovery vs steady state."""
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="salon-bench-recovery-") as scratch:
        figures = run_recovery_bench(
            pending=pending,
            steady=steady,
            workers=workers,
            database_url=database_url,
            work_dir=work_dir or Path(scratch),
            timeout_s=timeout,
            on_progress=lambda message: None if as_json else console.print(f"[dim]{message}[/]"),
        )
    save_results("recovery", figures, results_dir=results_dir, plot=plot_recovery)
    if as_json:
        typer.echo(json.dumps(figures, ensure_ascii=False))
    else:
        Console().print(_table(figures))
        for problem in figures["problems"]:
            Console().print(f"[red]{problem}[/]")
    if figures["problems"]:
        raise typer.Exit(1)
