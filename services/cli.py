"""The `salon` command: `salon up` runs the platform; `salon keys` manages API keys."""

from __future__ import annotations

import logging
import signal
import time
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlmodel import Session, select

from services.bench import bench_app
from services.bench import register_all as register_benchmarks
from services.demo import load_demo, processing_counts
from services.import_cli import import_command
from services.launcher import SERVICES, LaunchError, Platform
from shared.db import init_db, make_engine
from shared.errors import SalonError
from shared.models import ApiKey, Role
from shared.security import create_key, revoke_key
from shared.settings import get_settings

app = typer.Typer(help="salon: matchmaking for innovation salons (新质生产力会客厅).", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
register_benchmarks()
app.add_typer(bench_app, name="bench")
app.command("import")(import_command)
console = Console(soft_wrap=True)

DEMO_ORGANIZER = "demo organizer"


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Load the demo data after start.")] = True,
) -> None:
    """Start the broker (unless SALON_KAFKA_BOOTSTRAP is set), the four services and the demo data."""
    logging.basicConfig(level=logging.WARNING)
    settings = get_settings()
    platform = Platform(settings)
    started = time.monotonic()
    interrupted = False

    def _interrupt(_signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        broker = "embedded Tansu broker" if platform.embedded_broker else f"Kafka at {settings.bootstrap}"
        console.print(f"[bold]salon[/] starting: {broker}, database {settings.resolved_database_url}")
        with console.status("starting services…") as status:
            platform.start(on_progress=lambda text: status.update(f"starting services… {text}"))
        console.print(f"services up in {time.monotonic() - started:.1f}s: {', '.join(SERVICES)}")
        with Session(platform.engine) as session:
            _, organizer_key = create_key(
                session, role=Role.ORGANIZER, name=DEMO_ORGANIZER, owner=DEMO_ORGANIZER, pepper=settings.api_key_pepper
            )
            session.commit()
        if demo:
            _load_demo_with_progress(platform, settings.api_key_pepper, started)
        console.print(f"\n[bold green]salon is running[/] at {platform.api_url}  (API docs: {platform.api_url}/docs)")
        console.print(f"demo organizer key (shown once): [bold]{organizer_key}[/]")
        console.print(f"try: curl -H 'Authorization: Bearer {organizer_key}' {platform.api_url}/v1/pitches")
        console.print("press Ctrl-C to stop")
        while not interrupted:
            dead = platform.check_alive()
            if dead:
                console.print(f"[red]process(es) exited: {', '.join(dead)}[/]; logs in {settings.data_dir / 'logs'}")
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except SalonError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        console.print("stopping…")
        platform.stop()
        console.print("stopped.")


def _load_demo_with_progress(platform: Platform, pepper: str, started: float) -> None:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        submitting = progress.add_task("submitting demo data", total=None)
        loaded = load_demo(
            platform.engine, platform.api_url, pepper=pepper, on_item=lambda _kind, _ref: progress.advance(submitting)
        )
        progress.update(submitting, total=loaded.created + loaded.skipped, completed=loaded.created + loaded.skipped)
        ids = list(loaded.ids.values())
        embedding = progress.add_task("embedding and matching", total=len(ids))
        first_match_at: float | None = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            counts = processing_counts(platform.engine, ids)
            progress.update(embedding, completed=counts["matched"])
            if counts["matched"] and first_match_at is None:
                first_match_at = time.monotonic() - started
            if counts["matched"] >= len(ids):
                break
            if platform.check_alive():
                raise LaunchError(f"a process exited while loading demo data: {platform.check_alive()}")
            time.sleep(0.5)
    console.print(
        f"demo data: {loaded.created} submitted, {loaded.skipped} already present; "
        f"first match {first_match_at or 0:.1f}s after start"
    )


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="enterprise | fund | government | organizer | admin")],
    name: Annotated[str, typer.Option(help="Who the key is for (shown in audit logs).")],
    owner: Annotated[str | None, typer.Option(help="Participant the key acts for; default: the name.")] = None,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    with Session(engine) as session:
        key, raw = create_key(session, role=role, name=name, owner=owner, pepper=settings.api_key_pepper)
        session.commit()
        console.print(f"key id {key.id} role {key.role} owner {key.owner}")
    print(raw)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    with Session(engine) as session:
        for key in session.exec(select(ApiKey)).all():
            state = "revoked" if key.revoked_at else "active"
            console.print(f"{key.id}  {key.prefix}…  {key.role:<10} {key.owner}  {state}")


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id."""
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        if not revoke_key(session, key_id):
            console.print(f"[red]no key {key_id}[/]")
            raise typer.Exit(1)
        session.commit()
    console.print(f"revoked {key_id}")


@app.command()
def health(url: Annotated[str, typer.Option(help="API base URL")] = "") -> None:
    """Print /v1/healthz of a running platform."""
    settings = get_settings()
    base = url or f"http://{settings.api_host}:{settings.api_port}"
    console.print_json(httpx.get(f"{base}/v1/healthz", timeout=10).text)


if __name__ == "__main__":
    app()
