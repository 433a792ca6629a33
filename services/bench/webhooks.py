"""`salon bench webhooks`: webhook deliveries/s and delay, beside the receiver's raw request rate.

Everything runs in this process, on loopback, in one run:
  raw      a plain httpx client POSTs to the local receiver with the same concurrency:
           the ceiling, what the receiver itself takes;
  backlog  N match events go through the notifier's handler (inbox row + webhook message in
           one database transaction) while the worker is stopped; then the real delivery
           worker drains them (claim with a lease, SSRF check, sign, POST, record): deliveries/s;
  paced    events at a steady rate with the worker running: p50/p99 delay from handing the
           event to the handler to its arrival at the receiver.
No Kafka: the broker only carries events to the handler, where the clock starts.
The receiver verifies every signature; refusals are reported.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.bench import bench_app
from services.notifier.delivery import DeliveryWorker
from services.notifier.handlers import handle_match_event
from shared.db import init_db, make_engine
from shared.events import Envelope, MatchData, ReasonData
from shared.models import utcnow
from shared.settings import get_settings
from shared.webhooks.endpoints import new_endpoint
from shared.webhooks.models import message_id_for
from shared.webhooks.signing import WebhookVerificationError, verify

BENCH_PEPPER = "bench-webhooks-pepper-0123456789"
# Unique per run, so a reused database (--database-url) never delivers to an earlier run's endpoints.
OWNER = f"bench fund {uuid.uuid4().hex[:8]}"


class LocalReceiver:
    """A threaded HTTP/1.1 server on 127.0.0.1 noting when each webhook-id first arrives."""

    def __init__(self, secret_holder: dict[str, str]) -> None:
        self.arrivals: dict[str, float] = {}
        self.requests = 0
        self.bad_signatures = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                arrived = time.perf_counter()
                webhook_id = self.headers.get("webhook-id")
                valid = True
                if webhook_id and "secret" in secret_holder:
                    try:
                        verify(secret_holder["secret"], dict(self.headers.items()), body)
                    except WebhookVerificationError:
                        valid = False
                with receiver._lock:
                    receiver.requests += 1
                    if not valid:
                        receiver.bad_signatures += 1
                    elif webhook_id:
                        receiver.arrivals.setdefault(webhook_id, arrived)
                self.send_response(204 if valid else 400)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 256
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/bench"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _match_event(n: int) -> Envelope:
    return Envelope.wrap(
        "match.proposed",
        "bench-mandate",
        MatchData(
            match_id=f"bench-match-{n}",
            pair_kind="pitch-mandate",
            subject_kind="mandate",
            subject_id="bench-mandate",
            subject_owner=OWNER,
            counterpart_kind="pitch",
            counterpart_id=f"bench-pitch-{n}",
            counterpart_owner="bench enterprise",
            counterpart_title=f"高纯石墨负极材料深加工 #{n}",
            score=0.71,
            components={"dense": 0.42, "lexical": 0.77, "structured": 0.9},
            reasons=[
                ReasonData(rule="sector_overlap", passed=True, contribution=0.2, detail="shared sectors: 新材料"),
                ReasonData(rule="ticket_fit", passed=True, contribution=0.1, detail="ask within ticket"),
            ],
            explanation="与「高纯石墨负极材料深加工」匹配度 0.71：同属新材料，融资额在基金单笔范围内。",
        ),
    )


def measure_raw(url: str, count: int, concurrency: int, body: bytes) -> float:
    """Requests per second a plain client gets from the receiver."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(limits=limits, trust_env=False, timeout=15) as client:
        client.post(url, content=body)  # warm-up connection

        def one(_n: int) -> None:
            client.post(url, content=body, headers={"content-type": "application/json"})

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, range(count)))
        return count / (time.perf_counter() - started)


def _percentiles(delays_s: list[float]) -> dict[str, float]:
    if not delays_s:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    ordered = sorted(delays_s)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p99_ms": round(p99 * 1000, 2)}


def _push(engine: Engine, wake: Callable[[], None], events: list[Envelope], rate: float | None) -> dict[str, float]:
    """Hand each event to the notifier's handler (at `rate` per second, or at once); event id → when."""
    started: dict[str, float] = {}
    begin = time.perf_counter()
    for n, event in enumerate(events):
        if rate:
            pause = begin + n / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        started[event.id] = time.perf_counter()
        handle_match_event(event, engine=engine, wake=wake)
    return started


def _collect(receiver: LocalReceiver, started: dict[str, float], endpoint_id: str, deadline: float) -> dict[str, float]:
    """Arrival time of each event's message delivered before `deadline` (event id → when)."""
    wanted = {message_id_for(event_id, endpoint_id): event_id for event_id in started}
    while time.perf_counter() < deadline and not all(mid in receiver.arrivals for mid in wanted):
        time.sleep(0.005)
    return {event_id: receiver.arrivals[mid] for mid, event_id in wanted.items() if mid in receiver.arrivals}


def run(
    *, count: int, paced_count: int, rate: float, concurrency: int, timeout_s: float, database_url: str | None
) -> dict[str, Any]:
    holder: dict[str, str] = {}
    receiver = LocalReceiver(holder)
    with tempfile.TemporaryDirectory(prefix="salon-bench-webhooks-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        init_db(engine)
        endpoint, secret = new_endpoint(
            owner=OWNER,
            url=receiver.url,
            event_types=["match.proposed"],
            description="bench",
            pepper=BENCH_PEPPER,
            now=utcnow(),
        )
        endpoint_id = endpoint.id
        with Session(engine) as session:
            session.add(endpoint)
            session.commit()
        holder["secret"] = secret
        sample_body = b'{"type":"match.proposed","data":' + json.dumps(_match_event(0).data).encode() + b"}"
        raw_rate = measure_raw(receiver.url, min(count, 3000), concurrency, sample_body)

        deadline = time.perf_counter() + timeout_s
        backlog_started = _push(engine, lambda: None, [_match_event(n) for n in range(count)], rate=None)
        queued_rate = count / (time.perf_counter() - min(backlog_started.values()))

        stop = threading.Event()
        worker = DeliveryWorker(
            engine, pepper=BENCH_PEPPER, allow_loopback=True, concurrency=concurrency, name="bench-webhooks"
        )
        drain_from = time.perf_counter()
        thread = worker.start(stop)
        try:
            backlog = _collect(receiver, backlog_started, endpoint_id, deadline)
            drain_rate = len(backlog) / (max(backlog.values()) - drain_from) if backlog else 0.0
            paced_events = [_match_event(count + n) for n in range(paced_count)]
            paced_started = _push(engine, worker.wake, paced_events, rate=rate)
            paced = _collect(receiver, paced_started, endpoint_id, deadline)
        finally:
            stop.set()
            worker.wake()
            thread.join(timeout=30)
            worker.close()
            receiver.close()
            engine.dispose()
    database = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    return {
        "path": f"notifier handler → {database} → delivery worker → HTTP on loopback (no Kafka)",
        "concurrency": concurrency,
        "raw_requests_per_s": round(raw_rate, 1),
        "backlog": {
            "events": count,
            "delivered": len(backlog),
            "deliveries_per_s": round(drain_rate, 1),
            "events_queued_per_s": round(queued_rate, 1),
        },
        "paced": {
            "events": paced_count,
            "rate_per_s": rate,
            "delivered": len(paced),
            **_percentiles([paced[event_id] - paced_started[event_id] for event_id in paced]),
        },
        "deliveries_vs_raw_ratio": round(drain_rate / raw_rate, 3) if raw_rate else None,
        "bad_signatures": receiver.bad_signatures,
    }


def print_report(report: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]salon bench webhooks[/]: {report['path']}, concurrency {report['concurrency']}")
    backlog, paced = report["backlog"], report["paced"]
    table = Table("measure", "events", "delivered", "per second", "p50 delay", "p99 delay")
    table.add_row("receiver, raw (plain client)", "", "", f"{report['raw_requests_per_s']:.0f}", "", "")
    table.add_row(
        "webhooks, backlog drained",
        str(backlog["events"]),
        str(backlog["delivered"]),
        f"{backlog['deliveries_per_s']:.0f}",
        "",
        "",
    )
    table.add_row(
        f"webhooks, paced at {paced['rate_per_s']:g}/s",
        str(paced["events"]),
        str(paced["delivered"]),
        "",
        f"{paced['p50_ms']:.1f} ms",
        f"{paced['p99_ms']:.1f} ms",
    )
    console.print(table)
    console.print(
        f"deliveries/s ÷ raw requests/s = [bold]{report['deliveries_vs_raw_ratio']}[/]; "
        f"the handler queued events at {backlog['events_queued_per_s']:.0f}/s; "
        f"signatures the receiver refused: {report['bad_signatures']}"
    )


@bench_app.command("webhooks")
def bench_webhooks(
    count: Annotated[int, typer.Option(min=10, max=20000, help="Events in the burst.")] = 2000,
    rate: Annotated[float, typer.Option(min=1, max=2000, help="Events per second in the paced phase.")] = 100,
    paced_seconds: Annotated[float, typer.Option(min=0.5, max=30, help="Length of the paced phase.")] = 3,
    concurrency: Annotated[int | None, typer.Option(min=1, max=256, help="Default: SALON_WEBHOOK_CONCURRENCY.")] = None,
    timeout_s: Annotated[float, typer.Option(min=5, max=600, help="Give up waiting for deliveries after this.")] = 120,
    database_url: Annotated[
        str | None, typer.Option(help="Default: a temporary SQLite file. Rows are added to this database.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Webhook deliveries/s and p50/p99 event-to-delivery delay, beside the receiver's raw request rate."""
    console = Console(soft_wrap=True, stderr=as_json)
    with console.status("measuring on loopback…"):
        report = run(
            count=count,
            paced_count=max(1, round(rate * paced_seconds)),
            rate=rate,
            concurrency=concurrency or get_settings().webhook_concurrency,
            timeout_s=timeout_s,
            database_url=database_url,
        )
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    print_report(report, console)
