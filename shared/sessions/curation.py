"""The organizer's decisions on proposals: an audit trail that can be undone.

A decision remembers the proposal's status and score before it, and the feedback rows it
wrote (which lower similar pairs in later rankings); undo restores the first and deletes the
second, and is itself a decision in the trail (with who and when) and a `match.decided` event.
"""

from __future__ import annotations

from sqlmodel import Session, col, delete, select

from shared.events import Envelope, MatchDecidedData, Topic
from shared.models import Match, MatchFeedback, utcnow
from shared.outbox import enqueue
from shared.sessions.models import MatchDecision
from shared.sessions.service import SessionRuleError
from shared.settings import Settings

UNDO = "undo"


def record_decision(
    db: Session,
    match: Match,
    *,
    action: str,
    reason: str,
    previous_status: str,
    previous_score: float,
    feedback: list[MatchFeedback],
    actor: str,
    actor_role: str,
) -> MatchDecision:
    """Call after the decision changed `match` and added its `feedback` rows (same transaction)."""
    db.flush()  # gives the feedback rows their ids
    decision = MatchDecision(
        match_id=match.id,
        action=action,
        reason=reason,
        previous_status=previous_status,
        previous_score=previous_score,
        status=match.status,
        score=match.score,
        feedback_ids=[row.id for row in feedback if row.id is not None],
        actor=actor,
        actor_role=actor_role,
    )
    db.add(decision)
    return decision


def undo_last(db: Session, match: Match, *, actor: str, actor_role: str, settings: Settings) -> MatchDecision:
    last = db.exec(
        select(MatchDecision)
        .where(MatchDecision.match_id == match.id, MatchDecision.action != UNDO, col(MatchDecision.undone).is_(False))
        .order_by(col(MatchDecision.id).desc())
    ).first()
    if last is None:
        raise SessionRuleError("nothing to undo on this proposal / 该提案没有可撤销的决定")
    before_status, before_score = match.status, match.score
    match.status, match.score, match.updated_at = last.previous_status, last.previous_score, utcnow()
    db.add(match)
    if last.feedback_ids:
        db.exec(delete(MatchFeedback).where(col(MatchFeedback.id).in_(last.feedback_ids)))  # type: ignore[call-overload]
    last.undone = True
    db.add(last)
    undo = MatchDecision(
        match_id=match.id,
        action=UNDO,
        reason=f"undo {last.action}",
        previous_status=before_status,
        previous_score=before_score,
        status=match.status,
        score=match.score,
        undoes=last.id,
        actor=actor,
        actor_role=actor_role,
    )
    db.add(undo)
    db.flush()
    assert undo.id is not None
    enqueue(
        db,
        settings.topic(Topic.FEEDBACK),
        Envelope.wrap(
            "match.decided",
            match.id,
            MatchDecidedData(
                match_id=match.id,
                decision_id=undo.id,
                action=UNDO,
                previous_status=before_status,
                status=match.status,
                previous_score=before_score,
                score=match.score,
                reason=undo.reason,
                actor=actor,
                actor_role=actor_role,
            ),
        ),
    )
    return undo


def audit_trail(db: Session, match_ids: list[str] | None = None, limit: int = 200) -> list[MatchDecision]:
    query = select(MatchDecision)
    if match_ids is not None:
        query = query.where(col(MatchDecision.match_id).in_(match_ids))
    return list(db.exec(query.order_by(col(MatchDecision.id).desc()).limit(limit)).all())
