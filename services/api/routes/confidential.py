"""A pitch's confidential part and its staged disclosure to a match's counterpart.

- `GET /v1/pitches/{id}/confidential`: the owner; organizers and admins (their read is
  audit-logged). `PUT` replaces it: the owner only (no re-embedding, nothing is matched on it).
- `GET /v1/matches/{id}/counterpart`: the other side of a match as the caller may see it; a
  pitch's confidential part is in it only once the match is disclosed (each read audit-logged).
- `POST/DELETE /v1/matches/{id}/disclosure`: the pitch's owner opts in (which parts) or out.

Anyone who is neither on the match nor staff gets a 404, as everywhere.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from services.api.deps import CallerDep, SessionDep, is_staff
from services.api.routes.matches import Counterpart, counterpart_of, reader_language, reveals_owner
from services.api.routes.submissions import visible_entity
from services.matcher.scoring import explain_reasons
from shared import audit
from shared.confidential import service as confidential
from shared.confidential.fields import CONFIDENTIAL_PARTS, ConfidentialIn, ConfidentialPart, parts_json
from shared.confidential.service import DisclosureState
from shared.events import ReasonData
from shared.models import ApiKey, Entity, Match, Pitch, entity_title, get_entity

router = APIRouter(prefix="/v1", tags=["confidentiality"])


class ConfidentialPublic(BaseModel):
    """A pitch's confidential part, or the parts of it disclosed to the reader."""

    pitch_id: str
    financials: dict[str, Any] | None = None
    contact: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] | None = None


class CounterpartView(BaseModel):
    """One match seen from one side: before disclosure a pitch shows only its title, sectors,
    stage and region, and the match's reasons; `confidential` appears once it is disclosed."""

    match_id: str
    pair_kind: str
    status: str
    score: float
    reasons: list[dict[str, Any]]
    explanation: str
    counterpart: Counterpart
    disclosure: DisclosureState | None = None
    confidential: ConfidentialPublic | None = None


class DisclosureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parts: Annotated[list[ConfidentialPart], Field(min_length=1, max_length=len(CONFIDENTIAL_PARTS))] = Field(
        default_factory=lambda: list(CONFIDENTIAL_PARTS),
        description="What to show the counterpart once the organizer approves: financials, contact, attachments.",
    )


def _confidential_public(pitch_id: str, parts: dict[str, Any]) -> ConfidentialPublic:
    return ConfidentialPublic(pitch_id=pitch_id, **parts)


def _pitch(session: Session, caller: ApiKey, pitch_id: str) -> Pitch:
    pitch = visible_entity(session, caller, "pitch", pitch_id)
    assert isinstance(pitch, Pitch)
    return pitch


@router.get(
    "/pitches/{entity_id}/confidential",
    response_model=ConfidentialPublic,
    response_model_exclude_none=True,
    summary="A pitch's confidential part (its owner; organizers, audit-logged)",
)
def read_confidential(entity_id: str, session: SessionDep, caller: CallerDep) -> ConfidentialPublic:
    pitch = _pitch(session, caller, entity_id)
    parts = confidential.read(
        session, pitch.id, reader=audit.Actor.of(caller), pitch_owner=pitch.owner, parts=CONFIDENTIAL_PARTS, via="pitch"
    )
    session.commit()  # the audit entry is stored before anything is shown
    return _confidential_public(pitch.id, parts)


@router.put(
    "/pitches/{entity_id}/confidential",
    response_model=ConfidentialPublic,
    response_model_exclude_none=True,
    summary="Replace a pitch's confidential part (its owner only; a part left out is cleared)",
)
def replace_confidential(
    entity_id: str, body: ConfidentialIn, session: SessionDep, caller: CallerDep
) -> ConfidentialPublic:
    pitch = _pitch(session, caller, entity_id)
    if pitch.owner != caller.owner:  # only staff get here, and they already know it exists
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "only the pitch's owner may change its confidential part / 仅项目方可修改保密信息",
        )
    confidential.store(session, pitch.id, parts_json(body, CONFIDENTIAL_PARTS), by=caller.owner)
    session.commit()
    return _confidential_public(pitch.id, confidential.stored_parts(session, pitch.id))


def _match_for(session: Session, caller: ApiKey, match_id: str) -> Match:
    match = session.get(Match, match_id)
    if match is None or not (is_staff(caller) or caller.owner in (match.a_owner, match.b_owner)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"match {match_id} not found / 未找到")
    return match


def _sides(session: Session, caller: ApiKey, match: Match) -> tuple[Entity, Entity]:
    """(reader's side, other side); staff read side `a` (the pitch, if any) as side `b` sees it."""
    a, b = get_entity(session, match.a_kind, match.a_id), get_entity(session, match.b_kind, match.b_id)
    if a is None or b is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"match {match.id} not found / 未找到")
    return (a, b) if caller.owner == match.a_owner else (b, a)


@router.get(
    "/matches/{match_id}/counterpart",
    response_model=CounterpartView,
    response_model_exclude_none=True,
    summary="The other side of a match, as far as staged disclosure lets the caller see it",
)
def read_counterpart(match_id: str, request: Request, session: SessionDep, caller: CallerDep) -> CounterpartView:
    match = _match_for(session, caller, match_id)
    reader, other = _sides(session, caller, match)
    disclosure = confidential.disclosure_state(session, match)
    counterpart = counterpart_of(other)
    if not reveals_owner(caller, other, disclosure):
        counterpart.owner = None
    shown = None
    if isinstance(other, Pitch) and not is_staff(caller) and disclosure is not None and disclosure.visible:
        parts = confidential.read(
            session,
            other.id,
            reader=audit.Actor.of(caller),
            pitch_owner=other.owner,
            parts=disclosure.parts,
            via="match",
            match_id=match.id,
        )
        session.commit()  # the audit entry is stored before anything is shown
        shown = _confidential_public(other.id, parts)
    reasons = [ReasonData.model_validate(reason) for reason in match.reasons]
    chinese = reader_language(request, other if is_staff(caller) else reader)
    return CounterpartView(
        match_id=match.id,
        pair_kind=match.pair_kind,
        status=match.status,
        score=match.score,
        reasons=match.reasons,
        explanation=explain_reasons(match.score, reasons, match.terms, entity_title(other), chinese=chinese),
        counterpart=counterpart,
        disclosure=disclosure,
        confidential=shown,
    )


def _pitch_owners_match(session: Session, caller: ApiKey, match_id: str) -> Match:
    """The match, if the caller owns its pitch: 404 off the match, 403 on it but not the pitch's owner."""
    match = _match_for(session, caller, match_id)
    side = confidential.pitch_side(match)
    if side is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "this match has no pitch: nothing to disclose / 该匹配不含项目，无可披露内容"
        )
    if side[1] != caller.owner:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "only the pitch's owner decides on its disclosure / 仅项目方可决定是否披露"
        )
    return match


@router.post(
    "/matches/{match_id}/disclosure",
    response_model=DisclosureState,
    summary="The pitch's owner opts in: the counterpart sees these parts once an organizer approves the match",
)
def opt_in(match_id: str, session: SessionDep, caller: CallerDep, body: DisclosureIn | None = None) -> DisclosureState:
    match = _pitch_owners_match(session, caller, match_id)
    parts = (body or DisclosureIn()).parts
    state = confidential.opt_in(session, match, parts, actor=audit.Actor.of(caller))
    session.commit()
    return state


@router.delete(
    "/matches/{match_id}/disclosure",
    response_model=DisclosureState,
    summary="The pitch's owner opts out again: the counterpart no longer sees the confidential part",
)
def opt_out(match_id: str, session: SessionDep, caller: CallerDep) -> DisclosureState:
    match = _pitch_owners_match(session, caller, match_id)
    state = confidential.opt_out(session, match, actor=audit.Actor.of(caller))
    session.commit()
    return state
