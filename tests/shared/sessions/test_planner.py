"""Property tests: the planner never breaks a rule, is optimal, and reports infeasibility exactly.

Small random instances are checked against brute force over every possible invite list.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.sessions.planner import PlanningProblem, SessionSpec, pair, plan, violations

ROLES = (
    {"e0": "enterprise", "e1": "enterprise"}
    | {f"f{i}": "fund" for i in range(5)}
    | {f"g{i}": "government" for i in range(3)}
)
INVITABLE = [p for p, role in ROLES.items() if role != "enterprise"]
PEOPLE = sorted(ROLES)


@st.composite
def problems(draw: st.DrawFn) -> PlanningProblem:
    session_count = draw(st.integers(1, 2))
    sessions = []
    for s in range(session_count):
        required = frozenset(draw(st.sets(st.sampled_from(["e0", "e1"]), max_size=2)))
        pool = draw(st.sets(st.sampled_from(INVITABLE), min_size=1))
        quality = {p: draw(st.floats(0, 1, allow_nan=False)) for p in sorted(pool)}
        sessions.append(
            SessionSpec(
                key=f"s{s}",
                seats=draw(st.integers(1, 6)),
                required=required,
                quality=quality,
                min_roles={"fund": draw(st.integers(0, 3)), "government": draw(st.integers(0, 2))},
                allow_rematch=draw(st.booleans()),
            )
        )
    pairs = st.tuples(st.sampled_from(PEOPLE), st.sampled_from(PEOPLE)).filter(lambda ab: ab[0] != ab[1])
    return PlanningProblem(
        roles=ROLES,
        sessions=tuple(sessions),
        conflicts=frozenset(pair(a, b) for a, b in draw(st.lists(pairs, max_size=4))),
        already_met=frozenset(pair(a, b) for a, b in draw(st.lists(pairs, max_size=4))),
        cap=draw(st.integers(1, 2)),
        prior_invitations={p: draw(st.integers(0, 2)) for p in draw(st.sets(st.sampled_from(PEOPLE), max_size=3))},
        time_limit_s=5,
        workers=1,
    )


def brute_force_best(problem: PlanningProblem) -> float | None:
    """The best total quality over every combination of lists, or None when none keeps every rule."""
    options = []
    for spec in problem.sessions:
        candidates = sorted(spec.candidates())
        options.append(
            [set(c) for c in itertools.combinations(candidates, spec.seats)] if spec.seats <= len(candidates) else []
        )
    best = None
    for lists in itertools.product(*options):
        invited = {spec.key: chosen for spec, chosen in zip(problem.sessions, lists, strict=True)}
        if violations(problem, invited):
            continue
        total = sum(round(spec.quality.get(p, 0.0) * 1000) for spec in problem.sessions for p in invited[spec.key])
        best = total if best is None else max(best, total)
    return None if best is None else best / 1000


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_the_planner_never_breaks_a_rule_and_reports_infeasibility_exactly(problem: PlanningProblem) -> None:
    result = plan(problem)
    expected = brute_force_best(problem)
    if expected is None:
        assert result.status == "infeasible"
        assert result.problems and all(p.message and p.message_zh and p.suggestion for p in result.problems)
    else:
        assert result.status == "optimal", result.problems
        invited = {s.key: s.invited for s in result.sessions}
        assert violations(problem, invited) == []
        assert abs(result.objective - expected) < 1e-6
        assert result.gap == 0 and result.bound >= result.objective - 1e-9
        for session_plan in result.sessions:
            assert not set(session_plan.alternates) & set(session_plan.invited)


def test_a_role_shortfall_names_the_excluding_conflicts_and_the_fix() -> None:
    quality = {f"f{i}": 0.5 for i in range(5)} | {f"g{i}": 0.4 for i in range(3)}
    spec = SessionSpec(
        key="s", seats=10, required=frozenset({"e0"}), quality=quality, min_roles={"fund": 3, "government": 1}
    )
    roles = dict(ROLES)
    problem = PlanningProblem(roles=roles, sessions=(spec,), conflicts=frozenset(pair("e0", f"f{i}") for i in range(3)))
    result = plan(problem)
    assert result.status == "infeasible"
    messages = [p.message for p in result.problems]
    assert "10 seats but only 6 eligible participants" in messages[0]
    assert any(
        "needs 3 funds, only 2 eligible (3 funds excluded by conflicts with e0: f0, f1, f2)" in m for m in messages
    )
    assert any("relax the minimum to 2" in p.suggestion for p in result.problems)


def test_conflicts_among_candidates_are_explained_by_the_solver_core() -> None:
    roles = {"f0": "fund", "f1": "fund", "g0": "government"}
    spec = SessionSpec(key="s", seats=2, quality={"f0": 1.0, "f1": 1.0, "g0": 1.0}, min_roles={"fund": 2})
    problem = PlanningProblem(roles=roles, sessions=(spec,), conflicts=frozenset({pair("f0", "f1")}))
    result = plan(problem)
    assert result.status == "infeasible"
    assert "declared conflicts of interest" in result.problems[0].message
    assert "at least 2 fund" in result.problems[0].message
