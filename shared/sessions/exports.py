"""A session's roster and agenda as CSV, and the session as an iCalendar (.ics) file."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from shared.models import Pitch
from shared.sessions.models import Invitation, SalonSession

OPENING_MIN, PITCH_MIN, DISCUSSION_MIN = 10, 20, 30  # the default running order of a 闭门会


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def agenda(salon: SalonSession, featured: list[Pitch]) -> list[tuple[datetime, datetime, str]]:
    """Opening, one slot per featured project, open discussion, then networking to the end."""
    start = _utc(salon.starts_at)
    end = start + timedelta(minutes=salon.duration_minutes)
    items: list[tuple[datetime, datetime, str]] = []
    cursor = start

    def slot(minutes: int, title: str) -> None:
        nonlocal cursor
        stop = min(end, cursor + timedelta(minutes=minutes))
        if stop > cursor:
            items.append((cursor, stop, title))
        cursor = stop

    slot(OPENING_MIN, f"Opening / 开场: {salon.theme}")
    for pitch in featured:
        slot(PITCH_MIN, f"Featured project / 重点推介: {pitch.title} ({pitch.company})")
    slot(DISCUSSION_MIN, "Discussion / 交流研讨")
    slot(int((end - cursor).total_seconds() // 60), "Networking and follow-up / 对接洽谈")
    return items


def roster_csv(invitations: list[Invitation]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["participant", "role", "status", "featured", "quality", "rank", "invited_at", "answered_at"])
    for row in invitations:
        writer.writerow(
            [
                _cell(row.participant),
                row.role,
                row.status,
                "yes" if row.featured else "",
                f"{row.quality:.3f}",
                row.rank,
                row.invited_at.isoformat() if row.invited_at else "",
                row.answered_at.isoformat() if row.answered_at else "",
            ]
        )
    return out.getvalue()


def agenda_csv(salon: SalonSession, featured: list[Pitch]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["start", "end", "item"])
    for start, stop, title in agenda(salon, featured):
        writer.writerow([start.isoformat(), stop.isoformat(), _cell(title)])
    if salon.agenda:
        writer.writerow(["", "", _cell(salon.agenda)])
    return out.getvalue()


def _cell(value: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas; quote them (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def session_ics(salon: SalonSession, featured: list[Pitch], invitations: list[Invitation], *, host: str) -> str:
    start = _utc(salon.starts_at)
    end = start + timedelta(minutes=salon.duration_minutes)
    stamp = datetime.now(UTC)
    description = "\n".join(f"{a:%H:%M}–{b:%H:%M} UTC {title}" for a, b, title in agenda(salon, featured))
    if salon.agenda:
        description += "\n" + salon.agenda
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//salon//organizer console//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{salon.id}@{host}",
        f"DTSTAMP:{stamp:%Y%m%dT%H%M%SZ}",
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
        f"DTEND:{end:%Y%m%dT%H%M%SZ}",
        f"SUMMARY:{_escape(salon.theme)}",
        f"LOCATION:{_escape(salon.venue or salon.online_link or '')}",
        f"DESCRIPTION:{_escape(description)}",
        f"STATUS:{'CANCELLED' if salon.status == 'cancelled' else 'CONFIRMED'}",
    ]
    if salon.online_link:
        lines.append(f"URL:{salon.online_link}")
    for invitation in invitations:
        lines.append(f"ATTENDEE;CN={_param(invitation.participant)};ROLE=REQ-PARTICIPANT:urn:salon:{invitation.id}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "".join(_fold(line) + "\r\n" for line in lines)


def _escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\r\n", "\\n").replace("\n", "\\n")
    )


def _param(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def _fold(line: str) -> str:
    """RFC 5545: lines longer than 75 octets continue on the next line after a space."""
    encoded = line.encode()
    if len(encoded) <= 75:
        return line
    parts: list[str] = []
    current = b""
    for char in line:
        piece = char.encode()
        if len(current) + len(piece) > (75 if not parts else 74):
            parts.append(current.decode())
            current = b""
        current += piece
    parts.append(current.decode())
    return "\r\n ".join(parts)
