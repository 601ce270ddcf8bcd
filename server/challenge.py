"""How a challenge is shown to clients (the fields of docs/api.md), from the stored challenge
and the database's now."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from server import kinds, queries
from server.access import Principal, Role
from server.countdown import phase_at
from server.countdown.schedule import NO_EXTENSION, allowed_actions
from server.errors import NotRegistered, UnknownChallenge
from server.isotime import iso
from server.release.arming import release_views
from server.store import challenges as challenge_store
from server.store.challenges import Challenge
from server.store.extensions import Extension, extensions, latest


def challenge_json(challenge: Challenge, now: datetime, *, detail: bool = False,
                   extension: timedelta = NO_EXTENSION,
                   extensions: list[Extension] | None = None,
                   actions: bool = False) -> dict[str, Any]:
    """A challenge as one viewer sees it: a team through its own extension, the jury and
    organizers with the list of teams given extra time, anyone else with neither; with
    `actions`, for an organizer, what the state allows now."""
    countdown = challenge.countdown
    phase = phase_at(countdown, now, extension)
    body: dict[str, Any] = {
        "slug": challenge.slug,
        "title": challenge.title,
        "kind": challenge.kind,
        "duration_s": challenge.duration.total_seconds(),
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
        body.update({
            "format": kinds.of(challenge).format_json(),
            "counts": challenge.counts.value,
            "max_submissions": challenge.max_submissions,
            "team_feedback": challenge.team_feedback.value,
            "leaderboard": challenge.leaderboard.value,
            "freeze_minutes": challenge.freeze_window.total_seconds() / 60,
            "upload_grace_seconds": challenge.upload_grace.total_seconds(),
            "hu_window": list(challenge.hu_window) if challenge.hu_window else None,
        })
    return body


async def challenges_for(conn: asyncpg.Connection, principal: Principal | None, *,
                         slug: str | None = None, detail: bool = False
                         ) -> tuple[datetime, list[dict[str, Any]]]:
    """The database's now and the challenges (all, or the one named) as `principal` sees them."""
    now = await queries.database_now(conn)
    if slug is None:
        rows = await challenge_store.challenges(conn)
    else:
        one = await challenge_store.challenge(conn, slug)
        rows = [one] if one else []
    all_ext = await extensions(conn)
    team_id = principal.team_id if principal and principal.role is Role.TEAM else None
    # Who was given extra time is the team's own business, the jury's and the organizers':
    # an anonymous viewer (the public clock) sees the challenge's own deadline only.
    sees_all = principal is not None and principal.role in (Role.JURY, Role.ORGANIZER)
    shown = []
    for row in rows:
        ext = all_ext.get(row.id, [])
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


async def unknown_challenge(conn: asyncpg.Connection, slug: str) -> UnknownChallenge:
    return UnknownChallenge(slug, await queries.challenge_slugs(conn))


async def team_challenge(conn: asyncpg.Connection, slug: str, team_id: int
                         ) -> Challenge:
    """The challenge a team acts on (upload, download): 404 if there is none, 403 if the
    team is not registered for it."""
    challenge = await challenge_store.challenge(conn, slug)
    if challenge is None:
        raise await unknown_challenge(conn, slug)
    if not await queries.is_registered(conn, team_id, challenge.id):
        raise NotRegistered(slug)
    return challenge
