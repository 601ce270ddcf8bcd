"""Times for the API (UTC) and for people (the event's wall clock, named)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from server.isotime import iso, wall_clock


def test_the_api_writes_utc_with_milliseconds() -> None:
    moment = datetime(2019, 10, 14, 10, 5, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert iso(moment) == "2019-10-14T08:05:09.123Z"
    assert iso(None) is None


def test_people_read_the_events_zone_named() -> None:
    moment = datetime(2019, 10, 14, 8, 5, 9, tzinfo=UTC)
    assert wall_clock(moment, "Europe/Paris") == "10:05:09 Europe/Paris"
    assert wall_clock(moment, "America/New_York") == "04:05:09 America/New_York"
    # Winter time: the zone's rules, not a fixed offset.
    assert wall_clock(moment + timedelta(days=60), "Europe/Paris") == "09:05:09 Europe/Paris"
    # A moment on another day than the one it is compared with carries its date.
    late = datetime(2019, 10, 14, 22, 30, tzinfo=UTC)  # 00:30 the next day in Paris
    assert wall_clock(late, "Europe/Paris", day_of=moment) == "2019-10-15 00:30:00 Europe/Paris"
