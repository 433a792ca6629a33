"""`salon bench …`: benchmark commands that print figures (never timed tests).

Each benchmark lives in its own module and registers a command on `bench_app`.
"""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks: print figures and ratios measured in the same run.", no_args_is_help=True)


def register_all() -> None:
    """Import the benchmark modules so their commands attach to `bench_app`."""
    from services.bench import (  # noqa: F401
        imports,
        latency,
        matching,
        planner,
        recovery,
        search,
        throughput,
        webhooks,
    )
