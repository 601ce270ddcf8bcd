"""The countdown in PostgreSQL: each organizer action is one transaction that locks the challenge
row, reads the database's clock, applies the pure transition, writes the new state, appends to
the log and notifies every server process."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from server.countdown.schedule import (
    NO_EXTENSION,
    Countdown,
    close_keeping_extensions,
    extend_team,
    freeze_start,
    phase_at,
    transition,
)
from server.errors import TeamNotRegistered, UnknownChallenge, UnknownTeam
from server.leaderboard import bump_board
from server.notify import notify
from server.queries import challenge_slugs, database_now, is_registered, team_id_by_name
from server.store import challenges as challenge_store
from server.store.challenges import Challenge
from server.store.extensions import extensions, latest


async def _save(conn: asyncpg.Connection, challenge_id: int, c: Countdown,
                closed_by: str | None) -> None:
    await conn.execute(
        """UPDATE challenge SET state = $2, started_at = $3, deadline = $4, remaining = $5,
                  closed_at = $6, closed_by = $7 WHERE id = $1""",
        challenge_id, c.state, c.started_at, c.deadline, c.remaining, c.closed_at, closed_by)


async def _log(conn: asyncpg.Connection, challenge_id: int, action: str, seconds: float | None,
               team_id: int | None, actor: str, state_after: str,
               deadline_after: datetime | None) -> None:
    await conn.execute(
        """INSERT INTO countdown_log (challenge_id, action, seconds, team_id, actor, state_after,
                                      deadline_after)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        challenge_id, action, seconds, team_id, actor, state_after, deadline_after)


async def act(conn: asyncpg.Connection, slug: str, action: str, *, actor: str,
              seconds: float | None = None, team: str | None = None,
              keep_extensions: bool = False) -> None:
    """Applies an organizer action, or raises its refusal (server/errors.py): UnknownTeam,
    UnknownChallenge, TeamNotRegistered, and the clock's own InvalidTransition, BadSeconds.
    `team` (extend only): that team's deadline only. `keep_extensions` (close only): the
    teams still on extra time keep it."""
    team_id = None
    if team is not None:
        team_id = await team_id_by_name(conn, team)
        if team_id is None:
            raise UnknownTeam(team)
    async with conn.transaction():
        challenge = await challenge_store.challenge(conn, slug, lock="FOR UPDATE")
        if challenge is None:
            raise UnknownChallenge(slug, await challenge_slugs(conn))
        now = await database_now(conn)
        ext = (await extensions(conn, challenge.id)).get(challenge.id, [])
        before = challenge.countdown
        if action == "extend" and team is not None and team_id is not None:
            if not await is_registered(conn, team_id, challenge.id):
                raise TeamNotRegistered(team, slug)
            current = next((e.extra for e in ext if e.team_id == team_id), NO_EXTENSION)
            extra = extend_team(before, current, now, seconds, latest_extension=latest(ext))
            await conn.execute(
                """INSERT INTO team_extension (challenge_id, team_id, extra) VALUES ($1, $2, $3)
                   ON CONFLICT (challenge_id, team_id) DO UPDATE SET extra = EXCLUDED.extra""",
                challenge.id, team_id, extra)
            after = before
            team_phase = phase_at(after, now, extra)
            await _log(conn, challenge.id, action, seconds, team_id, actor, team_phase.state,
                       team_phase.deadline)
        elif action == "close" and keep_extensions:
            after, kept = close_keeping_extensions(before, now,
                                                   {e.team_id: e.extra for e in ext})
            await _save(conn, challenge.id, after, "organizer" if after.state == "closed" else None)
            await conn.execute("DELETE FROM team_extension WHERE challenge_id = $1", challenge.id)
            await conn.executemany(
                "INSERT INTO team_extension (challenge_id, team_id, extra) VALUES ($1, $2, $3)",
                [(challenge.id, team, extra) for team, extra in kept.items()])
            await _freeze_if_due(conn, challenge, before, now, closing=True)
            names = ", ".join(e.team for e in ext if e.team_id in kept)
            await _log(conn, challenge.id, action, None, None, actor,
                       f"closed except {names}" if kept else "closed",
                       phase_at(after, now).deadline)
        else:
            after = transition(before, action, now, seconds=seconds,
                               latest_extension=latest(ext))
            await _save(conn, challenge.id, after,
                        "organizer" if action == "close" else None)
            await _freeze_if_due(conn, challenge, before, now, closing=action == "close")
            phase = phase_at(after, now)
            await _log(conn, challenge.id, action, seconds, None, actor, after.state,
                       phase.deadline)
        await notify(conn, {"type": "clock", "challenge": slug})


async def _freeze_if_due(conn: asyncpg.Connection, challenge: Challenge, before: Countdown,
                         now: datetime, *, closing: bool) -> None:
    """Records the start of the board's freeze when an action happens inside the freeze
    window, or when a challenge with a freeze closes before reaching it."""
    if challenge.frozen_at is not None or challenge.freeze_window <= timedelta(0):
        return
    started = freeze_start(before, now, challenge.freeze_window, None)
    if started is None and closing:
        started = now
    if started is not None:
        await conn.execute("UPDATE challenge SET frozen_at = $2 WHERE id = $1", challenge.id,
                           started)
        await bump_board(conn, challenge.id)


async def start_freezes(conn: asyncpg.Connection) -> list[str]:
    """Records the freeze of every running board that has reached its freeze window."""
    async with conn.transaction():
        rows = await conn.fetch(
            """UPDATE challenge SET frozen_at = deadline - freeze_window
               WHERE state = 'running' AND in_event AND freeze_window > interval '0'
                 AND frozen_at IS NULL AND podium_now() >= deadline - freeze_window
               RETURNING id, slug""")
        for row in rows:
            await bump_board(conn, row["id"])
    return [r["slug"] for r in rows]


async def close_expired(conn: asyncpg.Connection) -> list[str]:
    """Records the closing of every running challenge whose last deadline (extensions
    included) has passed; returns their slugs. Safe to run from several processes at once."""
    closed = []
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT id, slug, state, duration, started_at, deadline, remaining, closed_at,
                      frozen_at, freeze_window
               FROM challenge WHERE state = 'running' AND in_event
               FOR UPDATE SKIP LOCKED""")
        if not rows:
            return []
        now = await database_now(conn)
        all_ext = await extensions(conn)
        for row in rows:
            countdown = Countdown.of(row)
            last = latest(all_ext.get(row["id"], []))
            if phase_at(countdown, now, last).state != "closed":
                continue
            assert countdown.deadline is not None
            at = countdown.deadline + last
            await conn.execute(
                """UPDATE challenge SET state = 'closed', closed_at = $2, closed_by = 'deadline',
                          frozen_at = CASE WHEN freeze_window > interval '0'
                                           THEN coalesce(frozen_at, deadline - freeze_window)
                                      END
                   WHERE id = $1""", row["id"], at)
            if row["frozen_at"] is None and row["freeze_window"] > timedelta(0):
                await bump_board(conn, row["id"])  # the freeze is recorded with the closing
            await _log(conn, row["id"], "auto-close", None, None, "server", "closed", at)
            await notify(conn, {"type": "clock", "challenge": row["slug"]})
            closed.append(row["slug"])
    return closed


async def next_deadline(conn: asyncpg.Connection) -> float | None:
    """Seconds until the next running challenge's last deadline or freeze, by the database's
    clock."""
    value = await conn.fetchval(
        """SELECT extract(epoch FROM min(least(
                      c.deadline + coalesce(e.extra, interval '0'),
                      CASE WHEN c.freeze_window > interval '0' AND c.frozen_at IS NULL
                           THEN c.deadline - c.freeze_window END)) - podium_now())
           FROM challenge c
           LEFT JOIN (SELECT challenge_id, max(extra) AS extra FROM team_extension
                      GROUP BY challenge_id) e ON e.challenge_id = c.id
           WHERE c.state = 'running' AND c.in_event""")
    return float(value) if value is not None else None


async def fetch_log(conn: asyncpg.Connection, limit: int = 200) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT l.id, c.slug, l.action, l.seconds, t.name AS team, l.actor, l.state_after,
                  l.deadline_after, l.at
           FROM countdown_log l JOIN challenge c ON c.id = l.challenge_id
           LEFT JOIN team t ON t.id = l.team_id
           ORDER BY l.id DESC LIMIT $1""", limit)


__all__ = ["act", "close_expired",
           "fetch_log", "next_deadline", "start_freezes"]
