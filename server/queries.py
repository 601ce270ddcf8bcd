"""Read queries on the event, its teams and credentials (challenges: server/store/). The
caller owns the connection (and the transaction, where one is needed)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from server.access import Principal, Role


async def database_now(conn: asyncpg.Connection) -> datetime:
    """The one clock every deadline is judged by: the database's."""
    now = await conn.fetchval("SELECT podium_now()")
    assert isinstance(now, datetime)
    return now


async def fetch_event(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT name, timezone, source_path, loaded_at FROM event")


async def challenge_slugs(conn: asyncpg.Connection) -> list[str]:
    """The event's challenges in order: what a refusal of an unknown one lists."""
    return [r["slug"] for r in await conn.fetch(
        "SELECT slug FROM challenge WHERE in_event ORDER BY position")]


# Who a credential is: the columns and joins principal_row reads (tokens and sessions alike).
PRINCIPAL_SELECT = """cr.role, t.id AS team_id, t.name AS team_name,
       coalesce(ce.id, rv.id) AS member_id, coalesce(ce.name, rv.name) AS member_name"""
PRINCIPAL_JOINS = """LEFT JOIN team t ON t.id = cr.team_id
       LEFT JOIN center ce ON ce.id = cr.center_id
       LEFT JOIN reviewer rv ON rv.id = cr.reviewer_id"""
# A team, center or reviewer no longer in the event signs in no more.
PRINCIPAL_IN_EVENT = """(t.id IS NULL OR t.in_event) AND (ce.id IS NULL OR ce.in_event)
       AND (rv.id IS NULL OR rv.in_event)"""


def principal_row(row: asyncpg.Record) -> Principal:
    return Principal(Role(row["role"]), row["team_id"], row["team_name"], row["member_id"],
                     row["member_name"])


async def principal_for_token(conn: asyncpg.Connection, token_hash: bytes) -> Principal | None:
    row = await conn.fetchrow(
        f"""SELECT {PRINCIPAL_SELECT} FROM credential cr {PRINCIPAL_JOINS}
            WHERE cr.token_hash = $1 AND {PRINCIPAL_IN_EVENT}""",  # noqa: S608
        token_hash)
    return principal_row(row) if row is not None else None


async def fetch_teams(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT t.id, t.name,
                  coalesce(array_agg(c.slug ORDER BY c.position)
                           FILTER (WHERE c.slug IS NOT NULL), '{}') AS challenges
           FROM team t
           LEFT JOIN registration r ON r.team_id = t.id
           LEFT JOIN challenge c ON c.id = r.challenge_id AND c.in_event
           WHERE t.in_event
           GROUP BY t.id ORDER BY lower(t.name)""")


async def team_challenges(conn: asyncpg.Connection, team_id: int) -> list[str]:
    rows = await conn.fetch(
        """SELECT c.slug FROM registration r JOIN challenge c ON c.id = r.challenge_id
           WHERE r.team_id = $1 AND c.in_event ORDER BY c.position""", team_id)
    return [r["slug"] for r in rows]


async def team_id_by_name(conn: asyncpg.Connection, name: str) -> int | None:
    return await conn.fetchval("SELECT id FROM team WHERE lower(name) = lower($1) AND in_event",
                               name.strip())


async def challenge_counts(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    """Per challenge: teams registered, teams that downloaded the release, teams that
    submitted."""
    rows = await conn.fetch(
        """SELECT c.slug,
                  (SELECT count(*) FROM registration r WHERE r.challenge_id = c.id) AS teams,
                  (SELECT count(DISTINCT d.team_id) FROM dataset_download d
                    WHERE d.challenge_id = c.id) AS downloaded,
                  (SELECT count(DISTINCT s.team_id) FROM submission s
                    WHERE s.challenge_id = c.id) AS submitted
           FROM challenge c WHERE c.in_event ORDER BY c.position""")
    return {r["slug"]: {"teams": r["teams"], "downloaded": r["downloaded"],
                        "submitted": r["submitted"]} for r in rows}


async def scoring_queue(conn: asyncpg.Connection) -> dict[str, int]:
    """Submissions waiting for a scorer and being scored, every challenge together."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
                  count(*) FILTER (WHERE status = 'scoring') AS scoring
           FROM submission WHERE status IN ('queued', 'scoring')""")
    assert row is not None
    return {"queued": row["queued"], "scoring": row["scoring"]}


async def registered_teams(conn: asyncpg.Connection) -> dict[str, list[str]]:
    rows = await conn.fetch(
        """SELECT c.slug, t.name FROM registration r JOIN challenge c ON c.id = r.challenge_id
           JOIN team t ON t.id = r.team_id WHERE t.in_event AND c.in_event
           ORDER BY c.position, lower(t.name)""")
    found: dict[str, list[str]] = {}
    for r in rows:
        found.setdefault(r["slug"], []).append(r["name"])
    return found


async def is_registered(conn: asyncpg.Connection, team_id: int, challenge_id: int) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM registration WHERE team_id = $1 AND challenge_id = $2",
        team_id, challenge_id))


def decode_json(value: Any) -> Any:
    """A jsonb column's value: asyncpg hands jsonb over as text."""
    return json.loads(value) if isinstance(value, str) else value
