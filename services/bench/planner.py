"""`salon bench planner`: plan 10 sessions jointly from 500 synthetic candidates (CP-SAT).

Candidates are funds and government bodies with random match quality per session (a few
strong fits, many weak ones), declared conflicts of interest, earlier invitations and pairs
that already met. Prints the solve time, the objective against CP-SAT's proven upper bound
(and the gap), and an independent check of every constraint on the returned lists.
"""

from __future__ import annotations

import json
import random
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.bench import bench_app
from shared.sessions.planner import PlanningProblem, SessionSpec, pair, plan, violations


def synthetic_problem(
    *, candidates: int = 500, sessions: int = 10, seed: int = 7, time_limit_s: float = 30.0
) -> PlanningProblem:
    rng = random.Random(seed)
    funds = int(candidates * 0.6)
    roles = {f"fund-{i:03d}": "fund" for i in range(funds)}
    roles |= {f"gov-{i:03d}": "government" for i in range(candidates - funds)}
    invitable = sorted(roles)
    reps = [f"enterprise-{i:02d}" for i in range(sessions * 3)]
    roles |= {rep: "enterprise" for rep in reps}
    specs = []
    for s in range(sessions):
        featured = reps[s * 3 : s * 3 + rng.choice((2, 3))]
        # Most candidates fit a session's projects weakly; about 10% fit well.
        quality = {p: round(rng.betavariate(1.2, 6) + (0.5 if rng.random() < 0.1 else 0.0), 4) for p in invitable}
        specs.append(
            SessionSpec(
                key=f"session-{s:02d}",
                seats=rng.randint(10, 20),
                required=frozenset(featured),
                quality=quality,
                min_roles={"fund": 3, "government": 1},
            )
        )
    everyone = sorted(roles)
    conflicts = frozenset(pair(*rng.sample(everyone, 2)) for _ in range(candidates))
    met = frozenset(pair(rng.choice(reps), rng.choice(invitable)) for _ in range(candidates // 2))
    prior = {p: rng.choice((0, 0, 0, 1, 2)) for p in invitable}
    return PlanningProblem(
        roles=roles,
        sessions=tuple(specs),
        conflicts=conflicts,
        already_met=met,
        cap=2,
        prior_invitations=prior,
        time_limit_s=time_limit_s,
    )


@bench_app.command("planner")
def bench_planner(
    candidates: Annotated[int, typer.Option(help="Funds and government bodies to choose from.")] = 500,
    sessions: Annotated[int, typer.Option(help="Sessions planned jointly (the cap spans them).")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic instance.")] = 7,
    time_limit: Annotated[float, typer.Option(help="Solver time limit in seconds.")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Solve time, objective vs upper bound, and a constraint check (target ≤ 5 s)."""
    problem = synthetic_problem(candidates=candidates, sessions=sessions, seed=seed, time_limit_s=time_limit)
    result = plan(problem)
    broken = violations(problem, {s.key: s.invited for s in result.sessions}) if result.feasible else []
    figures: dict[str, object] = {
        "candidates": candidates,
        "sessions": sessions,
        "seats": sum(spec.seats for spec in problem.sessions),
        "conflicts": len(problem.conflicts),
        "already_met": len(problem.already_met),
        "status": result.status,
        "solve_seconds": round(result.solve_seconds, 3),
        "objective": round(result.objective, 3),
        "upper_bound": round(result.bound, 3),
        "gap": round(result.gap, 6),
        "constraints_violated": len(broken),
        "problems": [p.message for p in result.problems],
    }
    if as_json:
        typer.echo(json.dumps(figures, ensure_ascii=False))
        return
    table = Table(title="salon bench planner (OR-Tools CP-SAT, joint 0/1 model)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        if name != "problems":
            table.add_row(name, str(value))
    console = Console()
    console.print(table)
    for message in (p.message for p in result.problems):
        console.print(f"[red]{message}[/]")
    if broken:
        raise typer.Exit(1)
