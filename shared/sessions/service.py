"""Database operations on sessions: plan, edit, publish, answer, attend, follow up.

Every state change that others must hear about writes its event to the outbox in the same
transaction (topic `salon.sessions`). Callers own the transaction and commit.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from sqlmodel import Session, col, delete, select

from shared.errors import NotFoundError, SalonError
from shared.events import Envelope, FollowUpData, InvitationAnsweredData, SessionData, Topic
from shared.models import Mandate, Match, MatchStatus, Need, Pitch, utcnow
from shared.outbox import enqueue
from shared.sessions.models import (
    MET,
    SEATED,
    ConflictOfInterest,
    FeaturedProject,
    FollowUp,
    FollowUpCreate,
    Invitation,
    InvitationStatus,
    SalonSession,
    SalonSessionCreate,
    SalonSessionUpdate,
    SessionStatus,
)
from shared.sessions.planner import PlanningProblem, PlanResult, Problem, SessionSpec, pair, plan, violations
from shared.settings import Settings


class SessionRuleError(SalonError):
    """A request breaks a session rule; `problems` says which and what to change."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


# --- participants -------------------------------------------------------------------------
def participant_roles(db: Session) -> dict[str, str]:
    """Owner → role, from what each owner submitted (a fund registers mandates, …)."""
    roles: dict[str, str] = {}
    for table, role in ((Pitch, "enterprise"), (Mandate, "fund"), (Need, "government")):
        for owner in db.exec(select(table.owner).distinct()):
            roles[owner] = role
    return roles


def featured_pitches(db: Session, salon: SalonSession) -> list[Pitch]:
    rows = db.exec(
        select(FeaturedProject).where(FeaturedProject.session_id == salon.id).order_by(col(FeaturedProject.position))
    ).all()
    pitches = {p.id: p for p in db.exec(select(Pitch).where(col(Pitch.id).in_([r.pitch_id for r in rows])))}
    return [pitches[r.pitch_id] for r in rows if r.pitch_id in pitches]


def invitations(db: Session, salon: SalonSession, statuses: Iterable[str] | None = None) -> list[Invitation]:
    query = select(Invitation).where(Invitation.session_id == salon.id)
    if statuses is not None:
        query = query.where(col(Invitation.status).in_(list(statuses)))
    return list(db.exec(query.order_by(col(Invitation.rank), col(Invitation.participant))).all())


def get_session(db: Session, session_id: str) -> SalonSession:
    salon = db.get(SalonSession, session_id)
    if salon is None:
        raise NotFoundError(f"session {session_id} not found / 未找到该场次")
    return salon


# --- create / update ------------------------------------------------------------------------
def create_session(db: Session, body: SalonSessionCreate, *, actor: str) -> SalonSession:
    found = {p.id for p in db.exec(select(Pitch).where(col(Pitch.id).in_(body.featured_pitch_ids)))}
    missing = [pid for pid in body.featured_pitch_ids if pid not in found]
    if missing:
        raise SessionRuleError(f"featured projects not found: {', '.join(missing)} / 未找到重点项目")
    salon = SalonSession.model_validate(body.model_dump(exclude={"featured_pitch_ids"}) | {"created_by": actor})
    db.add(salon)
    db.flush()
    for position, pitch_id in enumerate(body.featured_pitch_ids):
        db.add(FeaturedProject(session_id=salon.id, pitch_id=pitch_id, position=position))
    return salon


def update_session(db: Session, salon: SalonSession, body: SalonSessionUpdate, settings: Settings) -> list[str]:
    if salon.status == SessionStatus.CANCELLED:
        raise SessionRuleError("the session was cancelled / 该场次已取消")
    changes = [name for name, value in body.model_dump(exclude_unset=True).items() if getattr(salon, name) != value]
    if salon.status == SessionStatus.PUBLISHED and {"capacity", "min_funds", "min_governments"} & set(changes):
        raise SessionRuleError("seats and role minimums are fixed once published / 发布后不可修改席位与角色下限")
    for name in changes:
        setattr(salon, name, getattr(body, name))
    if not (salon.venue or salon.online_link):
        raise SessionRuleError("give a venue or an online link / 请填写地点或线上链接")
    salon.updated_at = utcnow()
    db.add(salon)
    if salon.status == SessionStatus.PUBLISHED and changes:
        for invitation in invitations(db, salon, (InvitationStatus.INVITED, InvitationStatus.ACCEPTED)):
            _announce(db, settings, "session.updated", salon, invitation, changes=changes)
    return changes


def cancel_session(db: Session, salon: SalonSession, settings: Settings) -> None:
    was_published = salon.status == SessionStatus.PUBLISHED
    salon.status = SessionStatus.CANCELLED
    salon.updated_at = utcnow()
    db.add(salon)
    if was_published:
        for invitation in invitations(db, salon, (InvitationStatus.INVITED, InvitationStatus.ACCEPTED)):
            _announce(db, settings, "session.cancelled", salon, invitation)


def _announce(
    db: Session,
    settings: Settings,
    type_: str,
    salon: SalonSession,
    invitation: Invitation,
    changes: Sequence[str] = (),
) -> None:
    data = SessionData(
        session_id=salon.id,
        participant=invitation.participant,
        invitation_id=invitation.id,
        theme=salon.theme,
        starts_at=salon.starts_at,
        duration_minutes=salon.duration_minutes,
        venue=salon.venue,
        online_link=salon.online_link,
        featured=[pitch.title for pitch in featured_pitches(db, salon)],
        changes=list(changes),
    )
    enqueue(db, settings.topic(Topic.SESSIONS), Envelope.wrap(type_, salon.id, data))


# --- planning -------------------------------------------------------------------------------
def planning_problem(db: Session, salon: SalonSession, settings: Settings) -> PlanningProblem:
    """The session as a planner problem, with history (caps, who met) from the database."""
    roles = participant_roles(db)
    featured = featured_pitches(db, salon)
    required = frozenset(p.owner for p in featured)
    quality: dict[str, float] = {p: 0.0 for p, role in roles.items() if role in ("fund", "government")}
    quality = {p: q for p, q in quality.items() if p not in required}
    best: dict[tuple[str, str], float] = {}
    rows = db.exec(
        select(Match).where(
            col(Match.a_id).in_([p.id for p in featured]),
            col(Match.status).not_in([MatchStatus.REJECTED, MatchStatus.DECLINED]),
        )
    ).all()
    for match in rows:
        key = (match.a_id, match.b_owner)  # per featured project: the participant's best entity
        best[key] = max(best.get(key, 0.0), match.score)
    for (_pitch, owner), score in best.items():
        if owner in quality:
            quality[owner] = round(quality[owner] + score, 4)
    conflicts = frozenset(pair(c.participant_a, c.participant_b) for c in db.exec(select(ConflictOfInterest)).all())
    history = db.exec(
        select(Invitation, SalonSession)
        .join(SalonSession, col(SalonSession.id) == col(Invitation.session_id))
        .where(SalonSession.id != salon.id, SalonSession.status == SessionStatus.PUBLISHED)
    ).all()
    prior: dict[str, int] = {}
    met_by_session: dict[str, list[str]] = {}
    for invitation, _other in history:
        if invitation.status in SEATED:
            prior[invitation.participant] = prior.get(invitation.participant, 0) + 1
        if invitation.status in MET:
            met_by_session.setdefault(invitation.session_id, []).append(invitation.participant)
    already_met = frozenset(
        pair(a, b) for members in met_by_session.values() for a, b in itertools.combinations(sorted(members), 2)
    )
    spec = SessionSpec(
        key=salon.id,
        seats=salon.capacity,
        required=required,
        quality=quality,
        min_roles={"fund": salon.min_funds, "government": salon.min_governments},
        allow_rematch=salon.allow_rematch,
        alternates=max(4, salon.capacity // 3),
    )
    return PlanningProblem(
        roles=roles,
        sessions=(spec,),
        conflicts=conflicts,
        already_met=already_met,
        cap=settings.session_invite_cap,
        prior_invitations=prior,
        time_limit_s=settings.planner_time_limit_s,
    )


def run_planner(db: Session, salon: SalonSession, settings: Settings) -> PlanResult:
    """Plan the invite list and store it as the draft list (invited + ranked alternates)."""
    _require_draft(salon)
    problem = planning_problem(db, salon, settings)
    result = plan(problem)
    if result.feasible:
        session_plan = result.sessions[0]
        _store_list(db, salon, problem, session_plan.invited, session_plan.alternates)
    return result


def edit_list(
    db: Session, salon: SalonSession, settings: Settings, invited: list[str], alternates: list[str]
) -> PlanningProblem:
    """The organizer's own list: refused, with every broken rule, unless all rules hold."""
    _require_draft(salon)
    problem = planning_problem(db, salon, settings)
    broken = violations(problem, {salon.id: invited})
    if broken:
        raise SessionRuleError("; ".join(broken))
    if set(alternates) & set(invited):
        raise SessionRuleError("a participant is both invited and an alternate / 同一参与方不能既受邀又候补")
    _store_list(db, salon, problem, invited, alternates)
    return problem


def _require_draft(salon: SalonSession) -> None:
    if salon.status != SessionStatus.DRAFT:
        raise SessionRuleError(f"the session is {salon.status}; only drafts are planned / 仅草稿场次可规划")


def _store_list(
    db: Session, salon: SalonSession, problem: PlanningProblem, invited: list[str], alternates: list[str]
) -> None:
    db.exec(delete(Invitation).where(col(Invitation.session_id) == salon.id))  # type: ignore[call-overload]
    spec = problem.sessions[0]
    for rank, participant in enumerate([*invited, *alternates]):
        db.add(
            Invitation(
                session_id=salon.id,
                participant=participant,
                role=problem.roles.get(participant, "enterprise"),
                status=InvitationStatus.INVITED if rank < len(invited) else InvitationStatus.ALTERNATE,
                quality=spec.quality.get(participant, 0.0),
                rank=rank,
                featured=participant in spec.required,
            )
        )


def publish(db: Session, salon: SalonSession, settings: Settings) -> list[Invitation]:
    _require_draft(salon)
    seated = invitations(db, salon, (InvitationStatus.INVITED,))
    problem = planning_problem(db, salon, settings)
    broken = violations(problem, {salon.id: [i.participant for i in seated]})
    if broken:
        raise SessionRuleError("the list breaks a rule; run the planner or edit it: " + "; ".join(broken))
    now = utcnow()
    salon.status = SessionStatus.PUBLISHED
    salon.published_at = salon.updated_at = now
    db.add(salon)
    for invitation in seated:
        invitation.invited_at = invitation.updated_at = now
        db.add(invitation)
        _announce(db, settings, "session.invited", salon, invitation)
    return seated


# --- answers, attendance ----------------------------------------------------------------------
def answer(db: Session, invitation: Invitation, *, accept: bool, reason: str, settings: Settings) -> Invitation | None:
    """Accept or decline; a decline is filled from the alternates. Returns who filled it."""
    salon = get_session(db, invitation.session_id)
    if salon.status != SessionStatus.PUBLISHED:
        raise SessionRuleError("the session is not open for answers / 该场次不接受回复")
    if invitation.status not in (InvitationStatus.INVITED, InvitationStatus.ACCEPTED):
        raise SessionRuleError(f"the invitation is {invitation.status} / 邀请状态为 {invitation.status}")
    now = utcnow()
    invitation.status = InvitationStatus.ACCEPTED if accept else InvitationStatus.DECLINED
    invitation.answered_at = invitation.updated_at = now
    invitation.note = reason
    db.add(invitation)
    filled = None if accept else fill_from_alternates(db, salon, invitation, settings)
    enqueue(
        db,
        settings.topic(Topic.SESSIONS),
        Envelope.wrap(
            "invitation.answered",
            salon.id,
            InvitationAnsweredData(
                session_id=salon.id,
                invitation_id=invitation.id,
                participant=invitation.participant,
                answer="accepted" if accept else "declined",
                reason=reason,
                filled_by=filled.participant if filled else None,
            ),
        ),
    )
    return filled


def fill_from_alternates(
    db: Session, salon: SalonSession, declined: Invitation, settings: Settings
) -> Invitation | None:
    """The best-ranked alternate who keeps every rule: role minimum, conflicts, met, cap."""
    db.flush()
    problem = planning_problem(db, salon, settings)
    seated = [i.participant for i in invitations(db, salon, SEATED)]
    for alternate in invitations(db, salon, (InvitationStatus.ALTERNATE,)):
        candidate_list = [*seated, alternate.participant]
        # The full list must hold every rule but the seat count when others declined before.
        broken = [
            rule for rule in violations(problem, {salon.id: candidate_list}) if "seats" not in rule.split(": ", 1)[-1]
        ]
        if not broken:
            alternate.status = InvitationStatus.INVITED
            alternate.replaces = declined.id
            alternate.invited_at = alternate.updated_at = utcnow()
            db.add(alternate)
            _announce(db, settings, "session.invited", salon, alternate)
            return alternate
    return None


def record_attendance(db: Session, salon: SalonSession, attendance: dict[str, bool]) -> list[Invitation]:
    if salon.status != SessionStatus.PUBLISHED:
        raise SessionRuleError("attendance is recorded for published sessions / 仅已发布场次可登记出席")
    rows = {i.participant: i for i in invitations(db, salon, SEATED)}
    unknown = [p for p in attendance if p not in rows]
    if unknown:
        raise SessionRuleError(f"not on the list: {', '.join(unknown)} / 不在名单中")
    for participant, attended in attendance.items():
        row = rows[participant]
        row.status = InvitationStatus.ATTENDED if attended else InvitationStatus.NO_SHOW
        row.updated_at = utcnow()
        db.add(row)
    return [rows[p] for p in attendance]


# --- follow-up --------------------------------------------------------------------------------
def record_followup(db: Session, body: FollowUpCreate, *, actor: str, settings: Settings) -> FollowUp:
    pitch = db.get(Pitch, body.pitch_id)
    if pitch is None:
        raise NotFoundError(f"pitch {body.pitch_id} not found / 未找到该项目")
    if body.session_id is not None:
        get_session(db, body.session_id)
    row = FollowUp.model_validate(body.model_dump() | {"outcome": body.outcome.value, "recorded_by": actor})
    db.add(row)
    db.flush()
    recipients = sorted({pitch.owner, *([body.participant] if body.participant else [])})
    enqueue(
        db,
        settings.topic(Topic.SESSIONS),
        Envelope.wrap(
            "followup.recorded",
            body.pitch_id,
            FollowUpData(
                followup_id=row.id,
                pitch_id=row.pitch_id,
                outcome=row.outcome,
                occurred_on=row.occurred_on.isoformat(),
                participant=row.participant,
                session_id=row.session_id,
                recipients=recipients,
                recorded_by=actor,
            ),
        ),
    )
    return row


def declare_conflict(db: Session, a: str, b: str, reason: str, *, actor: str) -> ConflictOfInterest:
    first, second = sorted((a, b))
    existing = db.exec(
        select(ConflictOfInterest).where(
            ConflictOfInterest.participant_a == first, ConflictOfInterest.participant_b == second
        )
    ).first()
    if existing is not None:
        return existing
    row = ConflictOfInterest(participant_a=first, participant_b=second, reason=reason, declared_by=actor)
    db.add(row)
    return row
