"""Closed sessions: create, plan (CP-SAT), edit, publish, answer, attendance, follow-up, exports.

Organizers and admins run sessions; a participant sees and answers only its own invitations.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlmodel import Session, col, select

from services.api.deps import CallerDep, SessionDep, SettingsDep, require_roles
from services.api.errors import Problem as ProblemBody
from shared import audit
from shared.audit import AuditAction
from shared.errors import NotFoundError
from shared.json_types import JsonBool
from shared.models import ApiKey, Role
from shared.sessions import exports, service
from shared.sessions.models import (
    ConflictCreate,
    ConflictOfInterest,
    FollowUp,
    FollowUpCreate,
    Invitation,
    SalonSession,
    SalonSessionCreate,
    SalonSessionUpdate,
    public,
)
from shared.sessions.planner import PlanResult, Problem
from shared.sessions.service import SessionRuleError

router = APIRouter(
    prefix="/v1",
    tags=["sessions"],
    responses={409: {"model": ProblemBody, "description": "A session rule forbids this now (e.g. not a draft)"}},
)


def _file_response(media_type: str) -> dict[int | str, dict[str, Any]]:
    # Documented as an extra 200 content type: a `response_class` would also relabel the JSON
    # error answers (404, 403, …) as CSV in the OpenAPI.
    return {200: {"content": {media_type: {"schema": {"type": "string"}}}, "description": "The file"}}


StaffDep = Annotated[ApiKey, Depends(require_roles(Role.ORGANIZER, Role.ADMIN))]


def _audit(db: Session, caller: ApiKey, action: AuditAction, object_type: str, object_id: str, **detail: Any) -> None:
    """Every organizer decision on a session is in the audit log (same transaction)."""
    audit.record(db, audit.Actor.of(caller), action, object_type, object_id, **detail)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Session rules broken → 409 with the reason; unknown ids → 404."""
    try:
        yield
    except SessionRuleError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


def _problem(problem: Problem) -> dict[str, str]:
    return {
        "constraint": problem.constraint,
        "session": problem.session,
        "message": problem.message,
        "message_zh": problem.message_zh,
        "suggestion": problem.suggestion,
        "suggestion_zh": problem.suggestion_zh,
    }


def session_view(db: Session, salon: SalonSession) -> dict[str, Any]:
    featured = service.featured_pitches(db, salon)
    return public(salon) | {
        "featured": [
            {"pitch_id": p.id, "title": p.title, "company": p.company, "owner": p.owner, "sectors": p.sectors}
            for p in featured
        ],
        "invitations": [public(row) for row in service.invitations(db, salon)],
    }


def _salon(db: Session, session_id: str) -> SalonSession:
    with domain_errors():
        return service.get_session(db, session_id)


@router.post("/sessions", status_code=201, summary="Create a closed session (draft)")
def create_session(body: SalonSessionCreate, *, db: SessionDep, caller: StaffDep) -> dict[str, Any]:
    with domain_errors():
        salon = service.create_session(db, body, actor=caller.owner)
    _audit(db, caller, AuditAction.SESSION_CREATE, "session", salon.id, theme=salon.theme)
    db.commit()
    return session_view(db, salon)


@router.get("/sessions", summary="Every session, newest first")
def list_sessions(*, db: SessionDep, caller: StaffDep) -> list[dict[str, Any]]:
    rows = db.exec(select(SalonSession).order_by(col(SalonSession.starts_at).desc())).all()
    return [session_view(db, salon) for salon in rows]


@router.get("/sessions/{session_id}", summary="A session with its featured projects and list")
def get_session(session_id: str, *, db: SessionDep, caller: StaffDep) -> dict[str, Any]:
    return session_view(db, _salon(db, session_id))


@router.patch("/sessions/{session_id}", summary="Change a session (invitees hear of it once published)")
def update_session(
    session_id: str, body: SalonSessionUpdate, *, db: SessionDep, settings: SettingsDep, caller: StaffDep
) -> dict[str, Any]:
    salon = _salon(db, session_id)
    with domain_errors():
        service.update_session(db, salon, body, settings)
    _audit(db, caller, AuditAction.SESSION_UPDATE, "session", salon.id, fields=sorted(body.model_fields_set))
    db.commit()
    return session_view(db, salon)


@router.post("/sessions/{session_id}/cancel", summary="Cancel a session (invitees hear of it)")
def cancel_session(session_id: str, *, db: SessionDep, settings: SettingsDep, caller: StaffDep) -> dict[str, Any]:
    salon = _salon(db, session_id)
    service.cancel_session(db, salon, settings)
    _audit(db, caller, AuditAction.SESSION_CANCEL, "session", salon.id)
    db.commit()
    return session_view(db, salon)


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow_rematch: JsonBool = Field(False, description="Allow participants who already met to sit together again.")


def plan_view(result: PlanResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "objective": round(result.objective, 4),
        "bound": round(result.bound, 4),
        "gap": round(result.gap, 4),
        "solve_seconds": round(result.solve_seconds, 3),
        "problems": [_problem(problem) for problem in result.problems],
    }


@router.post("/sessions/{session_id}/plan", summary="Propose the invite list (CP-SAT) and store it as the draft")
def plan_session(
    session_id: str, *, db: SessionDep, settings: SettingsDep, caller: StaffDep, body: PlanIn | None = None
) -> Any:
    """409 with `problems` (which rule, why, what to change) when no list keeps every rule."""
    salon = _salon(db, session_id)
    salon.allow_rematch = bool(body and body.allow_rematch)
    db.add(salon)
    with domain_errors():
        result = service.run_planner(db, salon, settings)
    _audit(db, caller, AuditAction.SESSION_PLAN, "session", salon.id, status=result.status, feasible=result.feasible)
    db.commit()
    if not result.feasible:
        first = result.problems[0].message if result.problems else "no list keeps every rule"
        return JSONResponse(status_code=409, content={"detail": first} | plan_view(result))
    return plan_view(result) | {"session": session_view(db, salon)}


class ListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invited: list[str]
    alternates: list[str] = []


@router.put("/sessions/{session_id}/invitations", summary="The organizer's edited list (every rule still checked)")
def edit_list(
    session_id: str, body: ListIn, *, db: SessionDep, settings: SettingsDep, caller: StaffDep
) -> dict[str, Any]:
    salon = _salon(db, session_id)
    with domain_errors():
        service.edit_list(db, salon, settings, body.invited, body.alternates)
    _audit(
        db, caller, AuditAction.SESSION_EDIT_LIST, "session", salon.id, invited=body.invited, alternates=body.alternates
    )
    db.commit()
    return session_view(db, salon)


@router.post("/sessions/{session_id}/publish", summary="Publish: one `session.invited` event per invitee")
def publish(session_id: str, *, db: SessionDep, settings: SettingsDep, caller: StaffDep) -> dict[str, Any]:
    salon = _salon(db, session_id)
    with domain_errors():
        service.publish(db, salon, settings)
    _audit(db, caller, AuditAction.SESSION_PUBLISH, "session", salon.id)
    db.commit()
    return session_view(db, salon)


class AttendanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attended: dict[str, JsonBool] = Field(description="participant → attended (true) or no-show (false)")


@router.post("/sessions/{session_id}/attendance", summary="Record who attended")
def attendance(session_id: str, body: AttendanceIn, *, db: SessionDep, caller: StaffDep) -> dict[str, Any]:
    salon = _salon(db, session_id)
    with domain_errors():
        service.record_attendance(db, salon, body.attended)
    _audit(db, caller, AuditAction.SESSION_ATTENDANCE, "session", salon.id, attended=body.attended)
    db.commit()
    return session_view(db, salon)


EXPORTS = {
    "roster.csv": "text/csv; charset=utf-8",
    "agenda.csv": "text/csv; charset=utf-8",
    "calendar.ics": "text/calendar; charset=utf-8",
}


def _export(export: str, session_id: str, request: Request, db: Session) -> Response:
    salon = _salon(db, session_id)
    featured = service.featured_pitches(db, salon)
    seated = service.invitations(db, salon, service.SEATED)
    if export == "roster.csv":
        body = "\ufeff" + exports.roster_csv(service.invitations(db, salon))  # BOM: Excel reads UTF-8 Chinese
    elif export == "agenda.csv":
        body = "\ufeff" + exports.agenda_csv(salon, featured)
    else:
        body = exports.session_ics(salon, featured, seated, host=request.url.hostname or "salon")
    filename = f"session-{salon.id[:8]}-{export}"
    return Response(
        body, media_type=EXPORTS[export], headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


# One route per export (not `/{export}`): a catch-all segment would swallow `/attendance`,
# `/plan`, … and answer a GET there with a 422 instead of 405 Method Not Allowed.
@router.get(
    "/sessions/{session_id}/roster.csv", responses=_file_response("text/csv"), summary="The session's roster as CSV"
)
def export_roster(session_id: str, request: Request, *, db: SessionDep, caller: StaffDep) -> Response:
    return _export("roster.csv", session_id, request, db)


@router.get(
    "/sessions/{session_id}/agenda.csv", responses=_file_response("text/csv"), summary="The session's agenda as CSV"
)
def export_agenda(session_id: str, request: Request, *, db: SessionDep, caller: StaffDep) -> Response:
    return _export("agenda.csv", session_id, request, db)


@router.get(
    "/sessions/{session_id}/calendar.ics",
    responses=_file_response("text/calendar"),
    summary="The session as an iCalendar event",
)
def export_calendar(session_id: str, request: Request, *, db: SessionDep, caller: StaffDep) -> Response:
    return _export("calendar.ics", session_id, request, db)


# --- participants' side -----------------------------------------------------------------------
@router.get("/invitations", summary="The caller's own invitations")
def my_invitations(*, db: SessionDep, caller: CallerDep) -> list[dict[str, Any]]:
    rows = db.exec(
        select(Invitation, SalonSession)
        .join(SalonSession, col(SalonSession.id) == col(Invitation.session_id))
        .where(Invitation.participant == caller.owner, col(Invitation.invited_at).is_not(None))
        .order_by(col(SalonSession.starts_at))
    ).all()
    return [
        public(invitation)
        | {"session": {k: v for k, v in public(salon).items() if k not in ("min_funds", "min_governments")}}
        for invitation, salon in rows
    ]


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: Literal["accept", "decline"]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = ""


@router.post("/invitations/{invitation_id}/answer", summary="Accept or decline (a decline is filled from alternates)")
def answer(
    invitation_id: str, body: AnswerIn, *, db: SessionDep, settings: SettingsDep, caller: CallerDep
) -> dict[str, Any]:
    invitation = db.get(Invitation, invitation_id)
    if invitation is None or invitation.participant != caller.owner or invitation.invited_at is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"invitation {invitation_id} not found / 未找到")
    with domain_errors():
        filled = service.answer(db, invitation, accept=body.answer == "accept", reason=body.reason, settings=settings)
    db.commit()
    return public(invitation) | {"filled_by": filled.participant if filled else None}


# --- conflicts, follow-ups, participants --------------------------------------------------------
@router.post("/conflicts", status_code=201, summary="Declare a conflict of interest between two participants")
def declare_conflict(body: ConflictCreate, *, db: SessionDep, caller: StaffDep) -> dict[str, Any]:
    row = service.declare_conflict(db, body.participant_a, body.participant_b, body.reason, actor=caller.owner)
    db.flush()
    pair = [row.participant_a, row.participant_b]
    _audit(db, caller, AuditAction.CONFLICT_DECLARE, "conflict", str(row.id), participants=pair)
    db.commit()
    return public(row)


@router.get("/conflicts", summary="Declared conflicts of interest")
def list_conflicts(*, db: SessionDep, caller: StaffDep) -> list[dict[str, Any]]:
    return [public(row) for row in db.exec(select(ConflictOfInterest)).all()]


@router.post("/followups", status_code=201, summary="Record a follow-up outcome for a project")
def record_followup(body: FollowUpCreate, *, db: SessionDep, settings: SettingsDep, caller: StaffDep) -> dict[str, Any]:
    with domain_errors():
        row = service.record_followup(db, body, actor=caller.owner, settings=settings)
    _audit(db, caller, AuditAction.FOLLOWUP_RECORD, "followup", row.id, pitch_id=row.pitch_id, outcome=row.outcome)
    db.commit()
    return public(row)


@router.get("/followups", summary="Follow-up outcomes, per project")
def list_followups(
    *, db: SessionDep, caller: StaffDep, pitch: Annotated[str | None, Query()] = None
) -> list[dict[str, Any]]:
    query = select(FollowUp)
    if pitch is not None:
        query = query.where(FollowUp.pitch_id == pitch)
    return [public(row) for row in db.exec(query.order_by(col(FollowUp.occurred_on))).all()]


@router.get("/participants", summary="Participants (owners) with their role")
def participants(*, db: SessionDep, caller: StaffDep) -> list[dict[str, str]]:
    return [{"participant": owner, "role": role} for owner, role in sorted(service.participant_roles(db).items())]
