"""Times in the webhook tables are compared in UTC, whatever zone a caller wrote them in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from shared.webhooks.models import as_utc


def test_an_offset_time_is_converted_to_the_same_instant_in_utc() -> None:
    beijing = datetime(2026, 11, 22, 16, 0, tzinfo=timezone(timedelta(hours=8)))
    assert as_utc(beijing) == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    assert as_utc(beijing).utcoffset() == timedelta(0)


def test_a_naive_time_is_taken_as_utc() -> None:
    assert as_utc(datetime(2026, 11, 22, 8, 0)) == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
