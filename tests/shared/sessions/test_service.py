"""The session service on SQLite and PostgreSQL: history feeds the cap and the "already met" rule."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from shared.sessions import service
from shared.sessions.models import InvitationStatus, SalonSessionCreate
from shared.settings import Settings
from tests.sessions_seed import seed_participants


def new_session(db: Session, pitch_ids: list[str], theme: str) -> object:
    body = SalonSessionCreate(
        theme=theme, starts_at=datetime(2030, 5, 20, 6, tzinfo=UTC), venue="会客厅", capacity=10,
        featured_pitch_ids=pitch_ids,
    )  # fmt: skip
    return service.create_session(db, body, actor="organizer")


def test_earlier_sessions_count_against_the_cap_and_keep_met_pairs_apart(any_engine):
    ids = seed_participants(any_engine, funds=10, governments=6, pitches=3)
    settings = Settings(session_invite_cap=1, api_key_pepper="x" * 20)
    with Session(any_engine, expire_on_commit=False) as db:
        first = new_session(db, ids["pitch"][:2], "第一场")
        assert service.run_planner(db, first, settings).status == "optimal"
        service.publish(db, first, settings)
        seated = service.invitations(db, first, (InvitationStatus.INVITED,))
        for invitation in seated:
            invitation.status = InvitationStatus.ATTENDED
            db.add(invitation)
        db.commit()
        first_list = {i.participant for i in seated}

        second = new_session(db, [ids["pitch"][0], ids["pitch"][2]], "第二场")
        db.commit()
        problem = service.planning_problem(db, second, settings)
        assert all(problem.prior_invitations[p] == 1 for p in first_list)
        assert frozenset({"enterprise-0", "fund-0"}) in problem.already_met
        result = service.run_planner(db, second, settings)
        # enterprise-0 already used its one invitation: the planner says so instead of "infeasible".
        assert result.status == "infeasible"
        assert any(p.constraint == "cap" and "enterprise-0" in p.message for p in result.problems)
