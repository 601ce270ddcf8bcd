"""Times as the API writes them (ISO 8601 in UTC with milliseconds and a Z), and as people
read them: the event's wall clock, with its time zone named.

The API and the websocket carry UTC only; everything a person reads — pages, receipts,
refusals' messages, the command line, the workbook, the plots — is in the event's `timezone`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def wall_clock(moment: datetime, timezone: str, *, day_of: datetime | None = None) -> str:
    """`14:05:09 Europe/Paris`: the time in the event's zone, named. The date is added when it
    is not the day of `day_of` (by default, the moment's own day: never)."""
    local = moment.astimezone(ZoneInfo(timezone))
    reference = (day_of or moment).astimezone(ZoneInfo(timezone))
    when = local.strftime("%H:%M:%S")
    if local.date() != reference.date():
        when = local.strftime("%Y-%m-%d ") + when
    return f"{when} {timezone}"
