"""`salon import FILE`: bulk import into the configured database, with progress, rate and ETA.

Writes directly to the database (like `salon keys create`) through the same code as
POST /v1/imports; the running platform's outbox relay then publishes the events. The CLI
is the operator's tool: rows may name any owner (an `owner` column or `--owner`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Engine

from services.api.imports import ImportOptions, ImportReport, ImportWriteError, import_bytes
from services.api.imports.aliases import load_aliases
from services.api.imports.status import status_counts
from shared.db import init_db, make_engine
from shared.settings import get_settings

console = Console(soft_wrap=True)
SHOWN_ERRORS = 50  # the table shows this many rejected cells; --report has them all


class RateColumn(ProgressColumn):
    """Rows per second, estimated by rich over the last 30 s."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed or (task.completed / task.elapsed if task.elapsed else None)
        return Text(f"{speed:,.0f} rows/s" if speed else "– rows/s", style="progress.data.speed")


def progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def print_report(report: ImportReport, *, elapsed_s: float) -> None:
    verb = "would store" if report.dry_run else "stored"
    console.print(
        f"{report.rows} rows ({report.format}): {report.valid} valid, {verb} {report.accepted}, "
        f"{report.already_present} already present, {report.rejected_rows} rejected "
        f"— {elapsed_s:.1f}s ({report.rows / elapsed_s if elapsed_s else 0:,.0f} rows/s)"
    )
    if report.kinds:
        console.print("by kind: " + ", ".join(f"{kind} {count}" for kind, count in sorted(report.kinds.items())))
    if report.ignored_columns:
        console.print(f"ignored columns / 已忽略的列: {', '.join(report.ignored_columns)}")
    if not report.rejected:
        return
    table = Table(title="rejected / 被拒绝", show_lines=False)
    for name in ("row", "column", "field", "message"):
        table.add_column(name, overflow="fold")
    for error in report.rejected[:SHOWN_ERRORS]:
        table.add_row(str(error.row), error.column or "", error.field, error.message)
    console.print(table)
    if len(report.rejected) > SHOWN_ERRORS:
        console.print(f"… and {len(report.rejected) - SHOWN_ERRORS} more (--report FILE writes them all)")
    if report.imported_nothing_because_of_errors or not report.valid:
        console.print(
            "[red]nothing was imported[/] / 未导入任何内容 — fix the rows above, or pass --skip-invalid "
            "to import the valid rows"
        )


def follow_pipeline(engine: Engine, ids: list[str], *, poll_s: float = 1.0) -> None:
    """Show the imported rows moving to `matched` (needs a running platform; Ctrl-C stops waiting)."""
    with progress_bar() as progress:
        task = progress.add_task("embedding and matching", total=len(ids))
        try:
            while True:
                matched = status_counts(engine, ids)["matched"]
                progress.update(task, completed=matched)
                if matched >= len(ids):
                    return
                time.sleep(poll_s)
        except KeyboardInterrupt:
            console.print("stopped waiting; the platform keeps processing the import")


def import_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV, XLSX or JSONL file.")],
    kind: Annotated[
        str | None, typer.Option(help="pitch | mandate | need (项目/基金/需求) for rows without a kind column.")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Owner of rows without an owner column.")] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows even if some are rejected.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and report; store nothing.")] = False,
    encoding: Annotated[str | None, typer.Option(help="CSV encoding (default: UTF-8, else GB18030).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Rows per transaction.")] = None,
    report_path: Annotated[Path | None, typer.Option("--report", help="Write the full report as JSON.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Then show embedding and matching progress (platform running).")
    ] = False,
) -> None:
    """Import pitches, mandates or needs from a file; nothing is imported if any row is rejected."""
    settings = get_settings()
    resolved = None
    if kind:
        resolved = load_aliases().kind_of(kind)
        if resolved is None:
            console.print(f"[red]unknown kind {kind!r}[/]; use pitch, mandate or need / 未知类型")
            raise typer.Exit(2)
    options = ImportOptions(
        kind=resolved,
        default_owner=owner,
        skip_invalid=skip_invalid,
        dry_run=dry_run,
        encoding=encoding,
        batch_size=batch_size or settings.import_batch_size,
    )
    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    data = file.read_bytes()
    started = time.monotonic()
    with progress_bar() as progress:
        tasks: dict[str, TaskID] = {}

        def on_progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done, total=total)

        try:
            report = import_bytes(
                data, engine=engine, settings=settings, options=options, filename=file.name, on_progress=on_progress
            )
        except ImportWriteError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from exc
    print_report(report, elapsed_s=time.monotonic() - started)
    if report_path is not None:
        report_path.write_text(json.dumps(report.model_dump(mode="json"), ensure_ascii=False, indent=1) + "\n")
        console.print(f"report written to {report_path}")
    if report.imported_nothing_because_of_errors or (report.rejected and not report.valid):
        raise typer.Exit(1)
    if follow and report.ids and not dry_run:
        follow_pipeline(engine, report.ids)
