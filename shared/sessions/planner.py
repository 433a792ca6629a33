"""The invite-list planner: a 0/1 optimisation solved with OR-Tools CP-SAT (no HTTP, no DB).

One boolean x[p, s] per (participant, session): p is on session s's invite list. Hard rules:
seats filled exactly, role minimums, the featured projects' representatives invited,
declared conflicts of interest never seated together, a cap on invitations per participant
across sessions (counting earlier ones), and pairs that already met not seated together
unless the session allows it. Objective: total match quality for the featured projects.

When no list satisfies every rule, `plan` does not answer "infeasible": it checks the rules
one by one (counting what each excludes) and, for what counting cannot explain, asks CP-SAT
for a set of rule groups that cannot hold together (solving under assumptions).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ortools.sat.python import cp_model

from shared.errors import SalonError

MIN_SEATS = 10  # a closed session seats 10–20 people
QUALITY_SCALE = 1000  # CP-SAT works on integers: quality 0.8432 counts as 843
INVITABLE_ROLES = ("fund", "government")  # enterprises attend only as featured representatives
PlanStatus = Literal["optimal", "feasible", "infeasible", "unknown"]


class PlannerError(SalonError):
    """The planning problem itself is malformed (unknown participant, negative seats)."""


def pair(a: str, b: str) -> frozenset[str]:
    return frozenset((a, b))


@dataclass(frozen=True)
class SessionSpec:
    """One session to plan. `quality` holds every invitable candidate (quality ≥ 0)."""

    key: str
    seats: int
    required: frozenset[str] = frozenset()
    quality: Mapping[str, float] = field(default_factory=dict)
    min_roles: Mapping[str, int] = field(default_factory=dict)
    allow_rematch: bool = False
    alternates: int = 4

    def candidates(self) -> set[str]:
        return set(self.quality) | set(self.required)


@dataclass(frozen=True)
class PlanningProblem:
    roles: Mapping[str, str]  # participant → enterprise | fund | government
    sessions: tuple[SessionSpec, ...]
    conflicts: frozenset[frozenset[str]] = frozenset()
    already_met: frozenset[frozenset[str]] = frozenset()
    cap: int = 3  # invitations per participant across sessions, earlier ones included
    prior_invitations: Mapping[str, int] = field(default_factory=dict)
    time_limit_s: float = 10.0
    workers: int = 2

    def remaining(self, participant: str) -> int:
        return self.cap - self.prior_invitations.get(participant, 0)


@dataclass(frozen=True)
class Problem:
    """Why a constraint cannot be met, and what to change; in English and Chinese."""

    constraint: str
    session: str
    message: str
    message_zh: str
    suggestion: str
    suggestion_zh: str


@dataclass
class SessionPlan:
    key: str
    invited: list[str]
    alternates: list[str]
    quality: float


@dataclass
class PlanResult:
    status: PlanStatus
    sessions: list[SessionPlan]
    objective: float
    bound: float
    solve_seconds: float
    problems: list[Problem]

    @property
    def gap(self) -> float:
        """Relative distance to the solver's proven upper bound (0 means proven optimal)."""
        if self.status == "optimal" or self.bound <= 0:
            return 0.0
        return max(0.0, (self.bound - self.objective) / self.bound)

    @property
    def feasible(self) -> bool:
        return self.status in ("optimal", "feasible")


def _quality(spec: SessionSpec, participant: str) -> int:
    return round(max(0.0, spec.quality.get(participant, 0.0)) * QUALITY_SCALE)


def _validate(problem: PlanningProblem) -> None:
    for spec in problem.sessions:
        if spec.seats < 0:
            raise PlannerError(f"session {spec.key}: seats must not be negative")
        unknown = [p for p in spec.candidates() if p not in problem.roles]
        if unknown:
            raise PlannerError(f"session {spec.key}: no role known for {sorted(unknown)[:3]}")
        uninvitable = [p for p in spec.quality if p not in spec.required and problem.roles[p] not in INVITABLE_ROLES]
        if uninvitable:
            raise PlannerError(
                f"session {spec.key}: only funds and governments are invited on quality: {uninvitable[:3]}"
            )


def plan(problem: PlanningProblem) -> PlanResult:
    """Optimal (or best within the time limit) invite lists, or the reasons there are none."""
    _validate(problem)
    started = time.perf_counter()
    problems = [p for spec in problem.sessions for p in diagnose_session(problem, spec)]
    if problems:
        return PlanResult("infeasible", [], 0.0, 0.0, time.perf_counter() - started, problems)
    model, x, _groups = _build(problem)
    solver = _solver(problem)
    model.maximize(
        sum(_quality(spec, p) * var for spec in problem.sessions for (p, key), var in x.items() if key == spec.key)
    )
    code = solver.solve(model)
    elapsed = time.perf_counter() - started
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        chosen = {(p, key) for (p, key), var in x.items() if solver.value(var)}
        sessions = _session_plans(problem, chosen)
        status: PlanStatus = "optimal" if code == cp_model.OPTIMAL else "feasible"
        objective = solver.objective_value / QUALITY_SCALE
        bound = solver.best_objective_bound / QUALITY_SCALE
        return PlanResult(status, sessions, objective, max(bound, objective), elapsed, [])
    if code == cp_model.INFEASIBLE:
        problems = _core_problems(problem)
        return PlanResult("infeasible", [], 0.0, 0.0, time.perf_counter() - started, problems)
    return PlanResult(
        "unknown",
        [],
        0.0,
        0.0,
        elapsed,
        [
            Problem(
                "time_limit",
                "",
                f"no invite list found within {problem.time_limit_s:g}s",
                f"{problem.time_limit_s:g} 秒内未找到邀请名单",
                "raise the planner time limit or plan fewer sessions at once",
                "延长求解时限，或每次规划更少的场次",
            )
        ],
    )


def _solver(problem: PlanningProblem) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = problem.time_limit_s
    solver.parameters.num_workers = problem.workers
    solver.parameters.random_seed = 7  # reproducible plans
    return solver


Groups = dict[str, tuple[cp_model.IntVar, str, str]]  # name → (enforcement literal, session, description)


def _build(
    problem: PlanningProblem, *, with_assumptions: bool = False
) -> tuple[cp_model.CpModel, dict[tuple[str, str], cp_model.IntVar], Groups]:
    model = cp_model.CpModel()
    x: dict[tuple[str, str], cp_model.IntVar] = {}
    groups: Groups = {}

    def group(name: str, session: str, description: str) -> list[cp_model.IntVar]:
        """The enforcement literal of a constraint group (none without assumptions)."""
        if not with_assumptions:
            return []
        if name not in groups:
            groups[name] = (model.new_bool_var(name), session, description)
        return [groups[name][0]]

    for spec in problem.sessions:
        for participant in sorted(spec.candidates()):
            x[participant, spec.key] = model.new_bool_var(f"x[{participant},{spec.key}]")
    for spec in problem.sessions:
        members = {p: var for (p, key), var in x.items() if key == spec.key}
        model.add(sum(members.values()) == spec.seats).only_enforce_if(
            group(f"seats:{spec.key}", spec.key, f"{spec.seats} seats")
        )
        for role, minimum in spec.min_roles.items():
            if minimum > 0:
                in_role = [var for p, var in members.items() if problem.roles[p] == role]
                model.add(sum(in_role) >= minimum).only_enforce_if(
                    group(f"min:{role}:{spec.key}", spec.key, f"at least {minimum} {role}")
                )
        for participant in sorted(spec.required):
            model.add(members[participant] == 1).only_enforce_if(
                group(f"required:{spec.key}", spec.key, "the featured projects' representatives")
            )
        forbidden = [(conflict, "conflicts", "declared conflicts of interest") for conflict in problem.conflicts]
        if not spec.allow_rematch:
            forbidden += [(met, "met", "pairs that already met") for met in problem.already_met]
        for both, kind, description in forbidden:
            a, b = sorted(both) if len(both) == 2 else (next(iter(both)), None)
            if b is not None and a in members and b in members:
                model.add(members[a] + members[b] <= 1).only_enforce_if(
                    group(f"{kind}:{spec.key}", spec.key, description)
                )
    by_participant: dict[str, list[cp_model.IntVar]] = {}
    for (participant, _key), var in x.items():
        by_participant.setdefault(participant, []).append(var)
    for participant, variables in by_participant.items():
        model.add(sum(variables) <= max(0, problem.remaining(participant))).only_enforce_if(
            group("cap", "", f"at most {problem.cap} invitations per participant")
        )
    return model, x, groups


def _session_plans(problem: PlanningProblem, chosen: set[tuple[str, str]]) -> list[SessionPlan]:
    used = {p: sum(1 for q, _ in chosen if q == p) for p, _ in chosen}
    plans = []
    for spec in problem.sessions:
        invited = sorted((p for p, key in chosen if key == spec.key), key=lambda p: (-_quality(spec, p), p))
        blocked = _forbidden_pairs(problem, spec)
        alternates = [
            p
            for p in sorted(spec.quality, key=lambda p: (-_quality(spec, p), p))
            if p not in invited
            and used.get(p, 0) < problem.remaining(p)
            and problem.roles[p] in INVITABLE_ROLES
            and not any(pair(p, q) in blocked for q in invited)
        ][: spec.alternates]
        quality = sum(_quality(spec, p) for p in invited) / QUALITY_SCALE
        plans.append(SessionPlan(spec.key, invited, alternates, quality))
    return plans


def _forbidden_pairs(problem: PlanningProblem, spec: SessionSpec) -> frozenset[frozenset[str]]:
    return problem.conflicts if spec.allow_rematch else problem.conflicts | problem.already_met


# --- checking ---------------------------------------------------------------------------
def violations(problem: PlanningProblem, invited: Mapping[str, Iterable[str]]) -> list[str]:
    """Every rule an invite list (session key → participants) breaks; [] means all hold.

    Independent of the solver: the property tests and the API's list editing use it.
    """
    broken: list[str] = []
    totals: dict[str, int] = {}
    for spec in problem.sessions:
        members = list(invited.get(spec.key, []))
        unique = set(members)
        if len(unique) != len(members):
            broken.append(f"{spec.key}: someone is listed twice")
        if len(unique) != spec.seats:
            broken.append(f"{spec.key}: {len(unique)} invited for {spec.seats} seats")
        outsiders = unique - spec.candidates()
        if outsiders:
            broken.append(f"{spec.key}: not candidates for this session: {sorted(outsiders)}")
        for role, minimum in spec.min_roles.items():
            count = sum(1 for p in unique if problem.roles.get(p) == role)
            if count < minimum:
                broken.append(f"{spec.key}: {count} {role} invited, at least {minimum} needed")
        missing = spec.required - unique
        if missing:
            broken.append(f"{spec.key}: featured representatives not invited: {sorted(missing)}")
        blocked = _forbidden_pairs(problem, spec)
        for a, b in itertools.combinations(sorted(unique), 2):
            if pair(a, b) in problem.conflicts:
                broken.append(f"{spec.key}: {a} and {b} declared a conflict of interest")
            elif pair(a, b) in blocked:
                broken.append(f"{spec.key}: {a} and {b} already met")
        for p in unique:
            totals[p] = totals.get(p, 0) + 1
    for p, count in totals.items():
        if count > problem.remaining(p):
            broken.append(f"{p}: {count + problem.prior_invitations.get(p, 0)} invitations, cap is {problem.cap}")
    return broken


# --- diagnosis ----------------------------------------------------------------------------
def diagnose_session(problem: PlanningProblem, spec: SessionSpec) -> list[Problem]:
    """The rules this one session cannot meet, found by counting what each rule excludes."""
    found: list[Problem] = []
    blocked = _forbidden_pairs(problem, spec)

    def add(constraint: str, message: str, zh: str, suggestion: str, suggestion_zh: str) -> None:
        found.append(Problem(constraint, spec.key, message, zh, suggestion, suggestion_zh))

    required = sorted(spec.required)
    for a, b in itertools.combinations(required, 2):
        if pair(a, b) in blocked:
            why = "declared a conflict of interest" if pair(a, b) in problem.conflicts else "already met"
            add(
                "required",
                f"featured representatives {a} and {b} {why}",
                f"重点项目代表 {a} 与 {b} " + ("申报了利益冲突" if why.startswith("declared") else "已见过面"),
                "feature another project, or allow re-meeting",
                "更换一个重点项目，或允许再次见面",
            )
    for p in required:
        if problem.remaining(p) <= 0:
            add(
                "cap",
                f"featured representative {p} has already had {problem.prior_invitations.get(p, 0)} invitations "
                f"(cap {problem.cap})",
                f"重点项目代表 {p} 已受邀 {problem.prior_invitations.get(p, 0)} 次（上限 {problem.cap}）",
                "raise the invitation cap or feature another project",
                "提高邀请上限，或更换重点项目",
            )
    if len(required) > spec.seats:
        add(
            "seats",
            f"{len(required)} featured representatives do not fit in {spec.seats} seats",
            f"{len(required)} 位重点项目代表超出 {spec.seats} 个席位",
            "add seats or feature fewer projects",
            "增加席位或减少重点项目",
        )
    excluded: dict[str, dict[str, list[str]]] = {"conflict": {}, "met": {}, "cap": {}}
    eligible: list[str] = []
    for p in sorted(set(spec.quality) - spec.required):
        if problem.roles[p] not in INVITABLE_ROLES:
            continue
        if problem.remaining(p) <= 0:
            excluded["cap"].setdefault(p, []).append("cap")
            continue
        conflicting = [q for q in required if pair(p, q) in problem.conflicts]
        met = [q for q in required if pair(p, q) in blocked and pair(p, q) not in problem.conflicts]
        if conflicting:
            excluded["conflict"][p] = conflicting
        elif met:
            excluded["met"][p] = met
        else:
            eligible.append(p)
    pool = len(required) + len(eligible)
    if pool < spec.seats:
        add(
            "seats",
            f"{spec.seats} seats but only {pool} eligible participants ({_exclusions_en(excluded, None, problem)})",
            f"{spec.seats} 个席位但仅有 {pool} 位合格参与方（{_exclusions_zh(excluded, None, problem)}）",
            (f"lower capacity to {pool}" if pool >= MIN_SEATS else f"capacity cannot go below {MIN_SEATS}")
            + ", register more funds/governments"
            + ("" if spec.allow_rematch else ", or allow re-meeting"),
            (f"将席位降至 {pool}" if pool >= MIN_SEATS else f"席位不能少于 {MIN_SEATS}")
            + "，或邀请更多基金/政府入驻"
            + ("" if spec.allow_rematch else "，或允许再次见面"),
        )
    demand = 0
    for role, minimum in sorted(spec.min_roles.items()):
        if minimum <= 0:
            continue
        have = sum(1 for p in eligible + required if problem.roles[p] == role)
        demand += minimum
        if have < minimum:
            add(
                f"min_{role}",
                f"needs {minimum} {_ROLE_EN.get(role, role)}, only {have} eligible"
                f" ({_exclusions_en(excluded, role, problem)})",
                f"至少需要 {minimum} 位{_ROLE_ZH.get(role, role)}，仅 {have} 位合格"
                f"（{_exclusions_zh(excluded, role, problem)}）",
                f"relax the minimum to {have}, resolve the exclusions listed,"
                f" or register more {_ROLE_EN.get(role, role)}",
                f"将下限降至 {have}，解除上述排除，或邀请更多{_ROLE_ZH.get(role, role)}",
            )
    if demand > spec.seats:
        add(
            "seats",
            f"role minimums need {demand} seats, capacity is {spec.seats}",
            f"角色下限共需 {demand} 个席位，容量仅 {spec.seats}",
            "raise capacity or lower a role minimum",
            "增加容量或降低某一角色下限",
        )
    return found


_ROLE_EN = {"fund": "funds", "government": "government bodies", "enterprise": "enterprises"}
_ROLE_ZH = {"fund": "基金", "government": "政府", "enterprise": "企业"}


def _exclusions_en(excluded: dict[str, dict[str, list[str]]], role: str | None, problem: PlanningProblem) -> str:
    parts = []
    for kind, label in (("conflict", "by conflicts with"), ("met", "already met"), ("cap", "reached the cap")):
        who = {p: by for p, by in excluded[kind].items() if role is None or problem.roles[p] == role}
        if not who:
            continue
        noun = {"fund": "funds", "government": "government bodies"}.get(role or "", "participants")
        if kind == "cap":
            parts.append(f"{len(who)} {noun} {label} of {problem.cap} invitations: {_names(who)}")
        else:
            targets = sorted({q for by in who.values() for q in by})
            parts.append(f"{len(who)} {noun} excluded {label} {', '.join(targets)}: {_names(who)}")
    return "; ".join(parts) or "no exclusions: too few registered"


def _exclusions_zh(excluded: dict[str, dict[str, list[str]]], role: str | None, problem: PlanningProblem) -> str:
    parts = []
    for kind, label in (
        ("conflict", "因与重点项目代表存在利益冲突被排除"),
        ("met", "因已见过面被排除"),
        ("cap", "已达邀请上限"),
    ):
        who = [p for p in excluded[kind] if role is None or problem.roles[p] == role]
        if who:
            parts.append(f"{len(who)} 位{label}：{', '.join(sorted(who)[:5])}")
    return "；".join(parts) or "无排除：已登记的数量不足"


def _names(who: Mapping[str, object], limit: int = 5) -> str:
    names = sorted(who)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _core_problems(problem: PlanningProblem) -> list[Problem]:
    """Rule groups that cannot all hold, from CP-SAT's infeasible core under assumptions."""
    model, _x, groups = _build(problem, with_assumptions=True)
    literals = {name: literal for name, (literal, _session, _description) in groups.items()}
    model.add_assumptions(list(literals.values()))
    solver = _solver(problem)
    solver.solve(model)
    core_indices = set(solver.sufficient_assumptions_for_infeasibility())
    core = [name for name, literal in literals.items() if literal.index in core_indices] or sorted(literals)
    described = "; ".join(f"{groups[name][2]}" + (f" ({groups[name][1]})" if groups[name][1] else "") for name in core)
    return [
        Problem(
            "combination",
            ",".join(sorted({groups[name][1] for name in core if groups[name][1]})),
            f"these rules cannot all hold together: {described}",
            f"以下规则无法同时满足：{described}",
            "relax one of them: fewer seats or a lower role minimum, allow re-meeting, or raise the invitation cap",
            "放宽其中一项：减少席位或降低角色下限、允许再次见面，或提高邀请上限",
        )
    ]
