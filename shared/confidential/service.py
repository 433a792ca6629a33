"""Who sees a pitch's confidential part, and when (staged disclosure).

Before disclosure a counterpart (the owner of a mandate or need with a match to the pitch)
sees the pitch's title, sectors, stage, region and the match's reasons. It sees the parts the
pitch owner chose (financials, contact, attachments) once both hold for that one match:
the organizer approved it (the `shortlist` verdict: status `shortlisted`; an undo or a later
decline withdraws it) and the pitch owner opted in (revocable). The owner and organizers
always see the confidential part; every read by anyone but the owner is audit-logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from shared import audit
from shared.confidential.fields import CONFIDENTIAL_PARTS, ConfidentialPart
from shared.confidential.models import MatchDisclosure, PitchConfidential
from shared.models import Match, MatchStatus, utcnow


class DisclosureState(BaseModel):
    """Where a match stands on showing the pitch's confidential part to the counterpart."""

    pitch_id: str
    organizer_approved: bool = Field(description="An organizer shortlisted this match.")
    owner_opted_in: bool = Field(description="The pitch's owner opted in for this match.")
    visible: bool = Field(description="Both: the counterpart sees the parts below.")
    parts: list[ConfidentialPart] = Field(description="What the owner opted in to show.")


def pitch_side(match: Match) -> tuple[str, str] | None:
    """(pitch id, owner) when the match has a pitch; pairs are stored pitch first."""
    return (match.a_id, match.a_owner) if match.a_kind == "pitch" else None


def state_of(match: Match, opt: MatchDisclosure | None) -> DisclosureState | None:
    side = pitch_side(match)
    if side is None:
        return None
    approved = match.status == MatchStatus.SHORTLISTED
    opted = opt is not None and opt.opted_in
    parts: list[ConfidentialPart] = [p for p in CONFIDENTIAL_PARTS if opt is not None and p in opt.parts]
    return DisclosureState(
        pitch_id=side[0],
        organizer_approved=approved,
        owner_opted_in=opted,
        visible=approved and opted,
        parts=parts if opted else [],
    )


def states_of(db: Session, matches: Iterable[Match]) -> dict[str, DisclosureState | None]:
    """The state of each match, with one query for all the opt-ins."""
    matches = list(matches)
    ids = [match.id for match in matches if pitch_side(match) is not None]
    opts = {row.match_id: row for row in db.exec(select(MatchDisclosure).where(col(MatchDisclosure.match_id).in_(ids)))}
    return {match.id: state_of(match, opts.get(match.id)) for match in matches}


def disclosure_state(db: Session, match: Match) -> DisclosureState | None:
    return state_of(match, db.get(MatchDisclosure, match.id))


# --- the confidential part ---------------------------------------------------------------------
def stored_parts(db: Session, pitch_id: str) -> dict[str, Any]:
    """The parts the pitch has (financials, contact, attachments); absent ones left out."""
    row = db.get(PitchConfidential, pitch_id)
    if row is None:
        return {}
    values = {"financials": row.financials, "contact": row.contact, "attachments": row.attachments}
    return {part: value for part, value in values.items() if value}


def store(db: Session, pitch_id: str, parts: dict[str, Any], *, by: str) -> list[str]:
    """Set the given parts (None or [] clears one; parts not given are kept); returns what changed."""
    row = db.get(PitchConfidential, pitch_id) or PitchConfidential(pitch_id=pitch_id, updated_by=by)
    changed: list[str] = []
    for part in CONFIDENTIAL_PARTS:
        if part in parts:
            value = parts[part] if parts[part] is not None else ([] if part == "attachments" else None)
            if getattr(row, part) != value:
                changed.append(part)
            setattr(row, part, value)
    if changed:
        row.updated_at, row.updated_by = utcnow(), by
        db.add(row)
    return changed


def read(
    db: Session, pitch_id: str, *, reader: audit.Actor, pitch_owner: str, parts: Iterable[str], via: str, **detail: Any
) -> dict[str, Any]:
    """The requested parts; a reader other than the owner leaves an audit entry (caller commits)."""
    wanted = set(parts)
    shown = {part: value for part, value in stored_parts(db, pitch_id).items() if part in wanted}
    if reader.owner != pitch_owner:
        audit.record(
            db, reader, audit.AuditAction.CONFIDENTIAL_READ, "pitch", pitch_id, via=via, parts=sorted(shown), **detail
        )
    return shown


# --- the owner's opt-in --------------------------------------------------------------------------
def opt_in(db: Session, match: Match, parts: list[ConfidentialPart], *, actor: audit.Actor) -> DisclosureState:
    side = pitch_side(match)
    assert side is not None
    row = db.get(MatchDisclosure, match.id) or MatchDisclosure(match_id=match.id, pitch_id=side[0], updated_by="")
    row.parts = [part for part in CONFIDENTIAL_PARTS if part in parts]
    row.opted_in, row.opted_in_at, row.revoked_at, row.updated_by = True, utcnow(), None, actor.owner
    db.add(row)
    audit.record(db, actor, audit.AuditAction.DISCLOSURE_OPT_IN, "match", match.id, pitch_id=side[0], parts=row.parts)
    state = state_of(match, row)
    assert state is not None
    return state


def opt_out(db: Session, match: Match, *, actor: audit.Actor) -> DisclosureState:
    side = pitch_side(match)
    assert side is not None
    row = db.get(MatchDisclosure, match.id)
    if row is not None and row.opted_in:
        row.opted_in, row.revoked_at, row.updated_by = False, utcnow(), actor.owner
        db.add(row)
        audit.record(db, actor, audit.AuditAction.DISCLOSURE_OPT_OUT, "match", match.id, pitch_id=side[0])
    state = state_of(match, row)
    assert state is not None
    return state
