"""Per-team extensions (extra time given to one team after an incident at its table): read
here, whoever needs them; the countdown's `extend` writes them (server/countdown/store.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from server.countdown.schedule import NO_EXTENSION


@dataclass(frozen=True)
class Extension:
    team_id: int
    team: str
    extra: timedelta


async def extensions(conn: asyncpg.Connection, challenge_id: int | None = None
                     ) -> dict[int, list[Extension]]:
    """Per-team extensions by challenge id (of one challenge, or all)."""
    rows = await conn.fetch(
        """SELECT e.challenge_id, e.team_id, t.name, e.extra FROM team_extension e
           JOIN team t ON t.id = e.team_id
           WHERE $1::int IS NULL OR e.challenge_id = $1 ORDER BY lower(t.name)""",
        challenge_id)
    found: dict[int, list[Extension]] = {}
    for r in rows:
        found.setdefault(r["challenge_id"], []).append(Extension(r["team_id"], r["name"],
                                                                 r["extra"]))
    return found


async def team_extension(conn: asyncpg.Connection, challenge_id: int, team_id: int
                         ) -> timedelta:
    """One team's extra time on one challenge (none: zero)."""
    extra = await conn.fetchval(
        "SELECT extra FROM team_extension WHERE challenge_id = $1 AND team_id = $2",
        challenge_id, team_id)
    return extra or NO_EXTENSION


def latest(extensions: list[Extension]) -> timedelta:
    """The longest extension given on a challenge: until when any team may still upload."""
    return max((e.extra for e in extensions), default=NO_EXTENSION)
