"""How a challenge is shown to clients (the fields of docs/api.md), from its row and the
database's now."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from server import kinds, queries
from server.access import Principal, Role
from server.countdown import Countdown, phase_at
from server.countdown.schedule import NO_EXTENSION, allowed_actions
from server.countdown.store import Extension, extensions, latest
from server.errors import Forbidden, NotFound
from server.isotime import iso
from server.release.store import release_views


def challenge_json(row: asyncpg.Record, now: datetime, *, detail: bool = False,
                   extension: timedelta = NO_EXTENSION,
                   extensions: list[Extension] | None = None,
                   actions: bool = False) -> dict[str, Any]:
    """A challenge as one viewer sees it: a team through its own extension, the jury and
    organizers with the list of teams given extra time, anyone else with neither; with
    `actions`, for an organizer, what the state allows now."""
    countdown = Countdown.of(row)
    phase = phase_at(countdown, now, extension)
    body: dict[str, Any] = {
        "slug": row["slug"],
        "title": row["title"],
        "kind": row["kind"],
        "duration_s": row["duration"].total_seconds(),
        "state": phase.state,
        "started_at": iso(phase.started_at),
        "deadline": iso(phase.deadline),
        "remaining_s": phase.remaining_s,
        "server_time": iso(now),
    }
    if actions:
        # The organizer's buttons, from the rules `transition` enforces.
        body["actions"] = list(allowed_actions(countdown, now, latest(extensions or [])))
    if extension:
        body["extension_s"] = extension.total_seconds()
    if extensions:
        body["extensions"] = []
        for e in extensions:
            team_phase = phase_at(countdown, now, e.extra)
            body["extensions"].append({
                "team": e.team, "extension_s": e.extra.total_seconds(),
                "state": team_phase.state, "deadline": iso(team_phase.deadline),
                "remaining_s": team_phase.remaining_s})
    if detail:
        hu = [row["hu_low"], row["hu_high"]] if row["hu_low"] is not None else None
        body.update({
            "format": kinds.get(row["kind"]).format_json(),
            "counts": row["counts"],
            "max_submissions": row["max_submissions"],
            "team_feedback": row["team_feedback"],
            "leaderboard": row["leaderboard"],
            "freeze_minutes": row["freeze_window"].total_seconds() / 60,
            "upload_grace_seconds": row["upload_grace"].total_seconds(),
            "hu_window": hu,
        })
    return body


async def challenges_for(conn: asyncpg.Connection, principal: Principal | None, *,
                         slug: str | None = None, detail: bool = False
                         ) -> tuple[datetime, list[dict[str, Any]]]:
    """The database's now and the challenges (all, or the one named) as `principal` sees them."""
    now = await queries.database_now(conn)
    if slug is None:
        rows = await queries.fetch_challenges(conn)
    else:
        one = await queries.fetch_challenge(conn, slug)
        rows = [one] if one else []
    all_ext = await extensions(conn)
    team_id = principal.team_id if principal and principal.role is Role.TEAM else None
    # Who was given extra time is the team's own business, the jury's and the organizers':
    # an anonymous viewer (the public clock) sees the challenge's own deadline only.
    sees_all = principal is not None and principal.role in (Role.JURY, Role.ORGANIZER)
    shown = []
    for row in rows:
        ext = all_ext.get(row["id"], [])
        if team_id is not None:
            own = next((e.extra for e in ext if e.team_id == team_id), NO_EXTENSION)
            shown.append(challenge_json(row, now, detail=detail, extension=own))
        else:
            shown.append(challenge_json(row, now, detail=detail,
                                        extensions=ext if sees_all else None,
                                        actions=principal is not None
                                        and principal.role is Role.ORGANIZER))
    releases = await release_views(conn, principal, {c["slug"]: c["state"] for c in shown})
    for c in shown:
        if c["slug"] in releases:
            c["release"] = releases[c["slug"]]
    return now, shown


async def unknown_challenge(conn: asyncpg.Connection, slug: str) -> NotFound:
    known = [r["slug"] for r in await queries.fetch_challenges(conn)]
    return NotFound(f"no challenge {slug!r}; challenges: {', '.join(known)}",
                    code="unknown_challenge")


async def team_challenge(conn: asyncpg.Connection, slug: str, team_id: int
                         ) -> asyncpg.Record:
    """The challenge a team acts on (upload, download): 404 if there is none, 403 if the
    team is not registered for it."""
    row = await queries.fetch_challenge(conn, slug)
    if row is None:
        raise await unknown_challenge(conn, slug)
    if not await queries.is_registered(conn, team_id, row["id"]):
        raise Forbidden(f"your team is not registered for {slug!r}", code="not_registered")
    return row
