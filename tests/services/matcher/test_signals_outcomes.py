"""Follow-up outcomes feed the activity prior, weighted above shortlists."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session

from services.matcher.signals import OUTCOME_WEIGHT, activity_from_db
from shared.models import Match, MatchStatus, utcnow
from shared.sessions.models import FollowUp
from tests.sessions_seed import seed_participants


def test_recorded_outcomes_count_above_shortlists(sqlite_engine):
    ids = seed_participants(sqlite_engine, funds=2, governments=1, pitches=1)
    with Session(sqlite_engine) as session:
        shortlisted = session.get(Match, ids["match"][1])  # pitch-0 ↔ fund-1
        shortlisted.status = MatchStatus.SHORTLISTED
        session.add(shortlisted)
        session.add(
            FollowUp(
                pitch_id=ids["pitch"][0],
                outcome="term_sheet",
                occurred_on=utcnow().date(),
                participant="fund-0",
                recorded_by="o",
            )
        )
        session.add(
            FollowUp(
                pitch_id=ids["pitch"][0],
                outcome="project_landed",
                occurred_on=date(2020, 1, 1),
                participant="gov-0",
                recorded_by="o",
            )
        )
        session.commit()
        from shared.models import Mandate, Need

        entities = [
            session.get(Mandate, ids["mandate"][0]),
            session.get(Mandate, ids["mandate"][1]),
            session.get(Need, ids["need"][0]),
        ]
        activity = activity_from_db(session, entities)
    fund_with_outcome, fund_with_shortlist, government = (activity[e.id] for e in entities)
    assert fund_with_outcome.deals == OUTCOME_WEIGHT and fund_with_shortlist.deals == 1
    assert fund_with_outcome.prior() > fund_with_shortlist.prior() > 0
    assert government.deals == OUTCOME_WEIGHT and government.last_deal_days_ago > 365
