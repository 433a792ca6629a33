"""Readiness/liveness probe for a worker process (embedder, matcher, notifier).

    python -m services.probe matcher            # exit 0: this replica is ready and beating
    python -m services.probe topics             # exit 0: every salon topic exists (init containers)

A worker serves no HTTP of its own, but writes a heartbeat row (`ServiceStatus`, named by
`SALON_INSTANCE_ID`) every 2 s while its loop runs. The probe reads that row with the same
settings as the worker (Kubernetes `exec` probes and compose healthchecks run it inside the
worker's container), so it checks what matters: the worker reached `ready` and still beats.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from sqlmodel import Session

from services.runtime import all_topics
from shared.bus import DLQ_SUFFIX, broker_topics
from shared.db import make_engine
from shared.errors import BusError, SalonError
from shared.models import ServiceStatus
from shared.settings import get_settings

WORKERS = ("embedder", "matcher", "notifier")
TOPICS = "topics"
HEARTBEAT_STALE_S = 15.0  # the API's /v1/healthz uses the same threshold


class ProbeFailed(SalonError):
    """The worker is not ready, or its heartbeat stopped."""


def check(service: str, *, max_age_s: float = HEARTBEAT_STALE_S) -> str:
    """A one-line description of a healthy worker; raises ProbeFailed otherwise."""
    settings = get_settings()
    name = settings.instance_name(service)
    engine = make_engine(settings.resolved_database_url)
    try:
        with Session(engine) as session:
            row = session.get(ServiceStatus, name)
    except Exception as exc:
        raise ProbeFailed(f"{name}: database unreachable: {exc}") from exc
    finally:
        engine.dispose()
    if row is None:
        raise ProbeFailed(f"{name}: no heartbeat yet")
    updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    age = (datetime.now(UTC) - updated).total_seconds()
    if row.state != "ready":
        raise ProbeFailed(f"{name}: state {row.state} ({age:.0f}s ago)")
    if age > max_age_s:
        raise ProbeFailed(f"{name}: last heartbeat {age:.0f}s ago (limit {max_age_s:.0f}s)")
    return f"{name}: ready, heartbeat {age:.1f}s ago"


def check_topics() -> str:
    """All of salon's topics (and their dead-letter topics) exist on the broker. Pods wait for
    this before starting, so topics are created only by the deploy's topic job, with its
    partition and replication counts, never by a service with its own defaults."""
    settings = get_settings()
    wanted = {name for topic in all_topics(settings) for name in (topic, topic + DLQ_SUFFIX)}
    try:
        missing = wanted - broker_topics(settings.bootstrap)
    except BusError as exc:
        raise ProbeFailed(str(exc)) from exc
    if missing:
        raise ProbeFailed(f"topics missing on {settings.bootstrap}: {', '.join(sorted(missing))}")
    return f"all {len(wanted)} topics present on {settings.bootstrap}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.probe", description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=[*WORKERS, TOPICS])
    parser.add_argument("--max-age", type=float, default=HEARTBEAT_STALE_S, help="seconds a heartbeat stays fresh")
    args = parser.parse_args(argv)
    try:
        print(check_topics() if args.service == TOPICS else check(args.service, max_age_s=args.max_age))
    except ProbeFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
