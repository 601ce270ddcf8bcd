"""The websocket channels (docs/api.md; docs/architecture.md, "Live updates"): what each shows,
to whom, and which announcements refresh it. The app registers them with the hub and the
listener (`register`); the hub and the listener know nothing of challenges or boards.

- `clock`: every challenge as GET /challenges shows it to the viewer, on every state change;
- `leaderboard:SLUG`: the board as the viewer may see it, on every change of its version;
- `submissions`: the viewer's team's submissions (all of them for the jury and organizers),
  then one `submission` message per status change.
"""

from __future__ import annotations

from collections.abc import Hashable

import asyncpg

from server.access import Principal, Role
from server.challenge import challenges_for
from server.errors import BoardHidden, BoardNeedsToken, UnknownChallenge
from server.hub import Channel, ForbiddenChannel, Hub, Message, UnknownChannel
from server.isotime import iso
from server.leaderboard import board
from server.listener import Event, Listener
from server.queries import database_now
from server.store import submissions as submission_store
from server.submission import submission_json


def by_role(principal: Principal | None) -> Hashable:
    # A board depends on the viewer's role only (who may see it, who sees it live): a room of
    # team phones costs one snapshot, not one per team.
    return principal.role if principal else None


def by_team(principal: Principal | None) -> Hashable:
    # A team's own extensions and submissions are its own.
    return (principal.role, principal.team_id) if principal else None


async def clock_snapshot(conn: asyncpg.Connection, principal: Principal | None,
                         channel: str) -> Message:
    now, challenges = await challenges_for(conn, principal)
    timezone = await conn.fetchval("SELECT timezone FROM event")
    return {"type": "clock", "challenges": challenges, "server_time": iso(now),
            "timezone": timezone}


async def leaderboard_snapshot(conn: asyncpg.Connection, principal: Principal | None,
                               channel: str) -> Message:
    slug = channel.split(":", 1)[1]
    try:
        found = await board(conn, slug, principal)
    except (BoardHidden, BoardNeedsToken):
        raise ForbiddenChannel(channel) from None
    except UnknownChallenge:
        raise UnknownChannel(channel, f"no challenge for {channel!r}") from None
    return {"type": "leaderboard", **found}


async def submissions_snapshot(conn: asyncpg.Connection, principal: Principal | None,
                               channel: str) -> Message:
    if principal is None:
        raise ForbiddenChannel(channel)
    team_id = principal.team_id if principal.role is Role.TEAM else None
    rows = await submission_store.submissions(conn, team_id=team_id, limit=200)
    now = await database_now(conn)
    return {"type": "submissions", "submissions": [submission_json(r, principal) for r in rows],
            "server_time": iso(now)}


CLOCK = Channel("clock", clock_snapshot, by_team)
SUBMISSIONS = Channel("submissions", submissions_snapshot, by_team)
LEADERBOARD = Channel("leaderboard", leaderboard_snapshot, by_role, parameter="SLUG")


async def on_submission(hub: Hub, event: Event) -> None:
    """A status change, to the submitting team and to the jury and organizers."""
    async with hub.pool.acquire() as conn:
        row = await submission_store.submission(conn, int(event["id"]))
    if row is None:
        return
    team_id = event.get("team_id")

    def message_for(principal: Principal | None) -> Message | None:
        if principal is None or (principal.role is Role.TEAM and principal.team_id != team_id):
            return None
        return {"type": "submission", **submission_json(row, principal)}

    hub.publish(SUBMISSIONS.name, message_for)


def register(hub: Hub, listener: Listener) -> None:
    for channel in (CLOCK, SUBMISSIONS, LEADERBOARD):
        hub.register(channel)
    listener.on("clock", lambda _event: hub.broadcast(CLOCK.name))
    listener.on("leaderboard",
                lambda event: hub.broadcast(f"{LEADERBOARD.name}:{event['challenge']}"))
    listener.on("submission", lambda event: on_submission(hub, event))
    # Announcements made while LISTEN was down are lost: every viewer gets fresh snapshots.
    listener.on_connect(hub.refresh)
