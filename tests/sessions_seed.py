"""Seeds a database with participants and proposals for session and console tests (no pipeline)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.models import Mandate, Match, Need, Pitch


def seed_participants(
    engine: Engine, *, funds: int = 8, governments: int = 5, pitches: int = 3
) -> dict[str, list[str]]:
    """Pitches (one enterprise each), fund mandates and government needs, and a match from every
    pitch to every mandate and need with distinct scores. Returns ids by kind."""
    ids: dict[str, list[str]] = {"pitch": [], "mandate": [], "need": [], "match": []}
    with Session(engine) as session:
        for i in range(pitches):
            pitch = Pitch(
                owner=f"enterprise-{i}",
                company=f"企业{i}",
                title=f"项目{i} 石墨负极",
                summary="依托鹤岗晶质石墨资源建设负极材料生产线。",
                stage="series_a",
                funding_ask=8e7,
                region="黑龙江省鹤岗市",
                sectors=["新材料"],
                sector_codes=["new_materials"],
                status="matched",
            )
            session.add(pitch)
            ids["pitch"].append(pitch.id)
        for i in range(funds):
            mandate = Mandate(
                owner=f"fund-{i}",
                fund_name=f"基金{i}",
                fund_type="government_guidance",
                thesis="重点投资新材料项目，推动产业补链强链。",
                ticket_min=1e7,
                ticket_max=1e8,
                sectors=["新材料"],
                sector_codes=["new_materials"],
                stages=["series_a"],
                regions=["黑龙江省"],
                status="matched",
            )
            session.add(mandate)
            ids["mandate"].append(mandate.id)
        for i in range(governments):
            need = Need(
                owner=f"gov-{i}",
                issuer=f"政府{i}",
                region="黑龙江省鹤岗市",
                chain_action="fill",
                description="鹤岗石墨资源丰富但深加工环节薄弱，急需引进项目。",
                target_sectors=["新材料"],
                sector_codes=["new_materials"],
                status="matched",
            )
            session.add(need)
            ids["need"].append(need.id)
        session.flush()
        for p, pitch_id in enumerate(ids["pitch"]):
            for kind, others in (("mandate", ids["mandate"]), ("need", ids["need"])):
                for o, other_id in enumerate(others):
                    owner = f"fund-{o}" if kind == "mandate" else f"gov-{o}"
                    match = Match(
                        pair_kind=f"pitch-{kind}",
                        a_kind="pitch",
                        a_id=pitch_id,
                        a_owner=f"enterprise-{p}",
                        b_kind=kind,
                        b_id=other_id,
                        b_owner=owner,
                        score=round(0.9 - 0.05 * o - 0.01 * p, 4),
                        reasons=[{"rule": "sector_overlap", "passed": True, "contribution": 0.2, "detail": "sectors"}],
                    )
                    session.add(match)
                    ids["match"].append(match.id)
        session.commit()
    return ids
