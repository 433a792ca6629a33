"""Ranked counterparts of an entity, with score and reasons."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlmodel import Session, col, or_, select

from services.api.deps import CallerDep, SessionDep, SettingsDep, is_staff
from services.api.errors import requested_language
from services.matcher.scoring import explain_reasons, is_chinese
from shared import audit
from shared.confidential.service import DisclosureState, disclosure_state, states_of
from shared.events import ENTITY_KINDS, EntityKind, Envelope, FeedbackData, ReasonData, Topic
from shared.models import (
    VERDICT_PENALTY,
    ApiKey,
    Entity,
    Mandate,
    Match,
    MatchFeedback,
    MatchStatus,
    Pitch,
    Verdict,
    entity_sectors,
    entity_text,
    entity_title,
    get_entity,
    utcnow,
)
from shared.outbox import enqueue
from shared.sessions.curation import record_decision
from shared.settings import Settings

router = APIRouter(prefix="/v1", tags=["matches"])


class Counterpart(BaseModel):
    kind: str
    id: str
    title: str
    owner: str | None = Field(description="Who it is; for a pitch, shown to its counterpart only once disclosed.")
    region: str
    sectors: list[str]
    sector_codes: list[str]
    stage: str | None = Field(None, description="A pitch's stage.")


class MatchPublic(BaseModel):
    match_id: str
    pair_kind: str
    rank: int
    score: float
    status: str
    components: dict[str, float]
    reasons: list[dict[str, Any]]
    explanation: str
    counterpart: Counterpart
    disclosure: DisclosureState | None = Field(
        None, description="For a match with a pitch: may its counterpart see the pitch's confidential part?"
    )


def _find_subject(session: Any, subject: str) -> Entity | None:
    for kind in ENTITY_KINDS:
        entity = get_entity(session, kind, subject)
        if entity is not None:
            return entity  # type: ignore[no-any-return]
    return None


def counterpart_of(entity: Entity) -> Counterpart:
    region = ", ".join(entity.regions) if isinstance(entity, Mandate) else entity.region
    return Counterpart(
        kind=entity.kind,
        id=entity.id,
        title=entity_title(entity),
        owner=entity.owner,
        region=region,
        sectors=list(entity_sectors(entity)),
        sector_codes=list(entity.sector_codes),
        stage=entity.stage if isinstance(entity, Pitch) else None,
    )


def reveals_owner(caller: ApiKey, other: Entity, disclosure: DisclosureState | None) -> bool:
    """A pitch's owner is part of what staged disclosure withholds from its counterpart."""
    if is_staff(caller) or not isinstance(other, Pitch) or other.owner == caller.owner:
        return True
    return disclosure is not None and disclosure.visible


def reader_language(request: Request, reader: Entity) -> bool:
    """Chinese or not: `Accept-Language` decides, else the language the reader wrote in."""
    language = requested_language(request)
    return language == "zh" if language else is_chinese(entity_text(reader))


def public_match(
    match: Match,
    subject: Entity,
    other: Entity,
    rank: int,
    *,
    chinese: bool,
    caller: ApiKey,
    disclosure: DisclosureState | None,
) -> MatchPublic:
    reasons = [ReasonData.model_validate(reason) for reason in match.reasons]
    counterpart = counterpart_of(other)
    if not reveals_owner(caller, other, disclosure):
        counterpart.owner = None
    return MatchPublic(
        match_id=match.id,
        pair_kind=match.pair_kind,
        rank=rank,
        score=match.score,
        status=match.status,
        components=match.components,
        reasons=match.reasons,
        explanation=explain_reasons(match.score, reasons, match.terms, entity_title(other), chinese=chinese),
        counterpart=counterpart,
        disclosure=disclosure,
    )


@router.get("/matches", response_model=list[MatchPublic], summary="Ranked counterparts of an entity")
def list_matches(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    subject: Annotated[str, Query(description="id of a pitch, mandate or need")],
    kind: Annotated[EntityKind | None, Query(description="only counterparts of this kind")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[MatchPublic]:
    entity = _find_subject(session, subject)
    if entity is None or not (is_staff(caller) or entity.owner == caller.owner):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{subject} not found / 未找到")
    query = select(Match).where(or_(Match.a_id == subject, Match.b_id == subject))
    if kind is not None:
        query = query.where(or_(Match.a_kind == kind, Match.b_kind == kind))
    rows = session.exec(query.order_by(col(Match.score).desc()).limit(limit)).all()
    chinese = reader_language(request, entity)
    disclosures = states_of(session, rows)
    results: list[MatchPublic] = []
    for match in rows:
        other_kind, other_id = (match.b_kind, match.b_id) if match.a_id == subject else (match.a_kind, match.a_id)
        other = get_entity(session, other_kind, other_id)
        if other is not None:
            results.append(
                public_match(
                    match,
                    entity,
                    other,
                    len(results) + 1,
                    chinese=chinese,
                    caller=caller,
                    disclosure=disclosures[match.id],
                )
            )
    return results


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Verdict = Field(description="organizers: shortlist | reject | not_relevant; participants: decline")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = ""


ORGANIZER_VERDICTS = {Verdict.SHORTLIST, Verdict.REJECT, Verdict.NOT_RELEVANT}
STATUS_AFTER = {
    Verdict.SHORTLIST: MatchStatus.SHORTLISTED,
    Verdict.REJECT: MatchStatus.REJECTED,
    Verdict.NOT_RELEVANT: MatchStatus.REJECTED,
    Verdict.DECLINE: MatchStatus.DECLINED,
}


def apply_verdict(
    session: Session,
    settings: Settings,
    match: Match,
    verdict: Verdict,
    reason: str,
    caller: ApiKey,
    affected: list[str],
) -> None:
    """Store a verdict (feedback rows, new status and score, event, audit entry); caller commits."""
    previous_status, previous_score = match.status, match.score
    feedback: list[MatchFeedback] = []
    for subject_id in affected:
        counterpart_id = match.b_id if subject_id == match.a_id else match.a_id
        feedback.append(
            MatchFeedback(
                match_id=match.id,
                subject_id=subject_id,
                counterpart_id=counterpart_id,
                verdict=verdict,
                reason=reason,
                actor=caller.owner,
                actor_role=caller.role,
            )
        )
    session.add_all(feedback)
    match.status = STATUS_AFTER[verdict]
    match.score = round(match.score * (1 - VERDICT_PENALTY.get(verdict, 0.0)), 4)
    match.updated_at = utcnow()
    session.add(match)
    enqueue(
        session,
        settings.topic(Topic.FEEDBACK),
        Envelope.wrap(
            "match.feedback",
            match.id,
            FeedbackData(
                match_id=match.id,
                verdict=verdict.value,
                reason=reason,
                actor=caller.owner,
                actor_role=caller.role,
                affected_subjects=affected,
            ),
        ),
    )
    # The curation trail (organizer console) remembers what undo restores; the audit log records who did it.
    decision = record_decision(
        session,
        match,
        action=verdict.value,
        reason=reason,
        previous_status=previous_status,
        previous_score=previous_score,
        feedback=feedback,
        actor=caller.owner,
        actor_role=caller.role,
    )
    session.flush()
    audit.record(
        session,
        audit.Actor.of(caller),
        audit.AuditAction(f"match.{verdict.value}"),
        "match",
        match.id,
        decision_id=decision.id,
        reason=reason,
        status=[previous_status, match.status],
        score=[previous_score, match.score],
    )


@router.post("/matches/{match_id}/feedback", response_model=MatchPublic, summary="Decide on a proposal")
def give_feedback(
    match_id: str, body: FeedbackIn, request: Request, session: SessionDep, settings: SettingsDep, caller: CallerDep
) -> MatchPublic:
    """Organizers shortlist, reject or mark "not relevant"; a participant declines a proposal
    involving it. Negative verdicts lower this pair and similar ones in future rankings."""
    match = session.get(Match, match_id)
    own_sides = (
        []
        if match is None
        else [i for i, o in ((match.a_id, match.a_owner), (match.b_id, match.b_owner)) if o == caller.owner]
    )
    if match is None or not (is_staff(caller) or own_sides):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"match {match_id} not found / 未找到")
    if is_staff(caller) != (body.verdict in ORGANIZER_VERDICTS):
        allowed = "shortlist, reject, not_relevant" if is_staff(caller) else "decline"
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role may give: {allowed} / 无权作出该决定")
    affected = [match.a_id, match.b_id] if is_staff(caller) else own_sides
    apply_verdict(session, settings, match, body.verdict, body.reason, caller, affected)
    session.commit()
    reader_id = own_sides[0] if own_sides else match.a_id
    reader = get_entity(session, match.a_kind if reader_id == match.a_id else match.b_kind, reader_id)
    other_id, other_kind = (match.b_id, match.b_kind) if reader_id == match.a_id else (match.a_id, match.a_kind)
    other = get_entity(session, other_kind, other_id)
    assert reader is not None and other is not None
    return public_match(
        match,
        reader,
        other,
        1,
        chinese=reader_language(request, reader),
        caller=caller,
        disclosure=disclosure_state(session, match),
    )
