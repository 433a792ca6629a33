"""What the platform records that ranking learns from: activity and feedback (from the DB)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import func
from sqlmodel import Session, col, select

from services.matcher.ranking import Candidate
from services.matcher.scoring import Activity
from services.matcher.state import MatcherState
from shared.models import VERDICT_PENALTY, Entity, EntityVector, Match, MatchFeedback, MatchStatus, Verdict, utcnow
from shared.sessions.models import FollowUp

SIMILAR_PAIR_COSINE = 0.8  # feedback on a pair also lowers pairs this similar to it


def activity_from_db(session: Session, entities: list[Entity]) -> dict[str, Activity]:
    """Shortlisted proposals per fund/region and how recent the last one is.

    Follow-up outcomes recorded after sessions (introductions … projects landed) count too,
    each as OUTCOME_WEIGHT shortlists: they are the strongest positive signal there is.
    """
    ids = [entity.id for entity in entities if entity.kind in ("mandate", "need")]
    if not ids:
        return {}
    activity: dict[str, Activity] = {}
    now = utcnow()
    for side_id in (Match.a_id, Match.b_id):
        rows = session.exec(
            select(side_id, func.count(), func.max(Match.updated_at))
            .where(col(side_id).in_(ids), Match.status == MatchStatus.SHORTLISTED)
            .group_by(side_id)
        ).all()
        for entity_id, count, last in rows:
            last_utc = last.replace(tzinfo=last.tzinfo or now.tzinfo)
            previous = activity.get(entity_id, Activity())
            activity[entity_id] = Activity(
                deals=previous.deals + count,
                last_deal_days_ago=max(0, (now - last_utc).days),
            )
    return _with_outcomes(session, entities, ids, activity)


OUTCOME_WEIGHT = 3  # one recorded outcome counts as this many shortlists


def _with_outcomes(
    session: Session, entities: list[Entity], ids: list[str], activity: dict[str, Activity]
) -> dict[str, Activity]:
    owners = {entity.id: entity.owner for entity in entities if entity.id in ids}
    rows = session.exec(
        select(FollowUp.participant, func.count(), func.max(FollowUp.occurred_on))
        .where(col(FollowUp.participant).in_(set(owners.values())))
        .group_by(FollowUp.participant)
    ).all()
    outcomes = {owner: (count, last) for owner, count, last in rows}
    today = utcnow().date()
    for entity_id, owner in owners.items():
        if owner not in outcomes:
            continue
        count, last = outcomes[owner]
        previous = activity.get(entity_id, Activity())
        days = max(0, (today - last).days)
        if previous.last_deal_days_ago is not None:
            days = min(days, previous.last_deal_days_ago)
        activity[entity_id] = Activity(deals=previous.deals + OUTCOME_WEIGHT * count, last_deal_days_ago=days)
    return activity


def feedback_penalties(
    session: Session, state: MatcherState, subject: Entity, candidates: list[Candidate]
) -> dict[str, float]:
    """Penalty per candidate entity: a negative verdict on (subject, c') lowers (subject, c)
    by the verdict's weight, scaled by how similar c is to c' (1 for c itself)."""
    rows = session.exec(
        select(MatchFeedback).where(
            MatchFeedback.subject_id == subject.id, col(MatchFeedback.verdict) != Verdict.SHORTLIST
        )
    ).all()
    if not rows or not candidates:
        return {}
    judged = {row.counterpart_id: VERDICT_PENALTY.get(Verdict(row.verdict), 0.5) for row in rows}
    vectors = {
        row.entity_id: (row.kind, np.frombuffer(row.vector, dtype=np.float32))
        for row in session.exec(select(EntityVector).where(col(EntityVector.entity_id).in_(list(judged)))).all()
    }
    penalties: dict[str, float] = {}
    for candidate in candidates:
        penalty = judged.get(candidate.entity.id, 0.0)
        vector = state.kinds[candidate.entity.kind].vectors.reconstruct(candidate.vector_id)
        for judged_id, (kind, judged_vector) in vectors.items():
            if judged_id == candidate.entity.id or kind != candidate.entity.kind:
                continue
            similarity = float(np.dot(vector, judged_vector))
            if similarity >= SIMILAR_PAIR_COSINE:
                penalty = max(penalty, judged[judged_id] * similarity)
        if penalty:
            penalties[candidate.entity.id] = penalty
    return penalties
