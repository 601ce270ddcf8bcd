"""Team applications as stored (migration 0016): the form as checked, the charter as accepted,
the seats that keep one person in one team per question, and the organizers' decision. The
caller owns the connection; each write here runs in its own transaction."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import asyncpg

from server.access import Role, generate_token, hash_token
from server.errors import (
    AlreadyInTeam,
    RegistrationDecided,
    TeamNameTaken,
    UnknownRegistration,
)
from server.queries import decode_json

if TYPE_CHECKING:
    from server.registration import Application

COLUMNS = """a.id, a.team_name, a.members, a.challenges, a.charter_version,
             a.charter_accepted_at, a.state, a.decided_at, a.decided_by, a.reason, a.team_id,
             (SELECT count(*) FROM credential cr WHERE cr.team_id = a.team_id) AS tokens"""


async def waiting_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM team_application WHERE state = 'waiting'"))


async def insert_application(conn: asyncpg.Connection, application: Application,
                             charter_text: str) -> int:
    """Stores a checked application; refuses a name already taken (by a team or a standing
    application) or a person already seated for one of its questions. Nothing is stored then."""
    emails = [m.email.lower() for m in application.members]
    async with conn.transaction():
        if await conn.fetchval("SELECT 1 FROM team WHERE lower(name) = lower($1)",
                               application.team):
            raise TeamNameTaken(application.team)
        seated = await conn.fetchrow(
            """SELECT s.email, c.slug FROM team_application_seat s
               JOIN challenge c ON c.id = s.challenge_id
               WHERE s.email = ANY($1::text[]) AND c.slug = ANY($2::text[])
               ORDER BY array_position($1::text[], s.email), c.position LIMIT 1""",
            emails, list(application.challenges))
        if seated is not None:
            raise AlreadyInTeam(_member_field(emails, seated["email"]), seated["email"],
                                seated["slug"])
        try:
            ident = await conn.fetchval(
                """INSERT INTO team_application (team_name, members, challenges,
                       charter_version, charter_text, charter_accepted_at)
                   VALUES ($1, $2::jsonb, $3, $4, $5, podium_now()) RETURNING id""",
                application.team, json.dumps([asdict(m) for m in application.members]),
                list(application.challenges), application.charter_version, charter_text)
        except asyncpg.UniqueViolationError:
            raise TeamNameTaken(application.team) from None
        try:
            await conn.execute(
                """INSERT INTO team_application_seat (application_id, email, challenge_id)
                   SELECT $1, e.email, c.id FROM unnest($2::text[]) AS e (email)
                   CROSS JOIN challenge c WHERE c.slug = ANY($3::text[])""",
                ident, emails, list(application.challenges))
        except asyncpg.UniqueViolationError:
            # Two applications naming one person at the same moment: the second is refused.
            raise AlreadyInTeam("members", "a member", ", ".join(application.challenges)
                                ) from None
    return int(ident)


def _member_field(emails: list[str], email: str) -> str:
    return f"members[{emails.index(email)}].email"


def application_json(row: asyncpg.Record) -> dict[str, Any]:
    from server.isotime import iso

    return {"id": row["id"], "team": row["team_name"], "members": decode_json(row["members"]),
            "challenges": list(row["challenges"]), "charter_version": row["charter_version"],
            "charter_accepted_at": iso(row["charter_accepted_at"]), "state": row["state"],
            "decided_at": iso(row["decided_at"]), "decided_by": row["decided_by"],
            "reason": row["reason"], "token_active": row["tokens"] > 0}


async def applications(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every application, the waiting ones first, each group oldest first."""
    return await conn.fetch(
        f"""SELECT {COLUMNS} FROM team_application a
            ORDER BY a.state <> 'waiting', a.state, a.id""")  # noqa: S608 - our columns


async def _locked(conn: asyncpg.Connection, ident: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT id, team_name, challenges, state, team_id FROM team_application "
        "WHERE id = $1 FOR UPDATE", ident)
    if row is None:
        raise UnknownRegistration(str(ident))
    return row


async def _issue(conn: asyncpg.Connection, team_id: int) -> str:
    """A new token for the team; any earlier one (and its browser sessions) stops working."""
    await conn.execute("DELETE FROM credential WHERE team_id = $1", team_id)
    token = generate_token()
    await conn.execute(
        "INSERT INTO credential (token_hash, role, team_id) VALUES ($1, $2, $3)",
        hash_token(token), str(Role.TEAM), team_id)
    return token


async def approve(conn: asyncpg.Connection, ident: int, operator: str
                  ) -> tuple[asyncpg.Record, str]:
    """Creates the team with its questions and its token (returned: shown once)."""
    async with conn.transaction():
        row = await _locked(conn, ident)
        if row["state"] != "waiting":
            raise RegistrationDecided(ident, row["state"], "waiting")
        try:
            team_id = await conn.fetchval(
                "INSERT INTO team (name, registered) VALUES ($1, true) RETURNING id",
                row["team_name"])
        except asyncpg.UniqueViolationError:
            raise TeamNameTaken(row["team_name"]) from None
        await conn.execute(
            """INSERT INTO registration (team_id, challenge_id)
               SELECT $1, id FROM challenge WHERE slug = ANY($2::text[])""",
            team_id, list(row["challenges"]))
        await conn.execute(
            """UPDATE team_application SET state = 'approved', team_id = $2,
                   decided_at = podium_now(), decided_by = $3 WHERE id = $1""",
            ident, team_id, operator)
        token = await _issue(conn, team_id)
        return await _one(conn, ident), token


async def reject(conn: asyncpg.Connection, ident: int, operator: str, reason: str
                 ) -> asyncpg.Record:
    """Frees the name and the members' seats: they may apply again, in this team or another."""
    async with conn.transaction():
        row = await _locked(conn, ident)
        if row["state"] != "waiting":
            raise RegistrationDecided(ident, row["state"], "waiting")
        await conn.execute("DELETE FROM team_application_seat WHERE application_id = $1", ident)
        await conn.execute(
            """UPDATE team_application SET state = 'rejected', decided_at = podium_now(),
                   decided_by = $2, reason = $3 WHERE id = $1""", ident, operator, reason)
        return await _one(conn, ident)


async def reissue(conn: asyncpg.Connection, ident: int) -> tuple[asyncpg.Record, str]:
    async with conn.transaction():
        row = await _locked(conn, ident)
        if row["state"] != "approved":
            raise RegistrationDecided(ident, row["state"], "approved")
        token = await _issue(conn, row["team_id"])
        return await _one(conn, ident), token


async def revoke(conn: asyncpg.Connection, ident: int) -> asyncpg.Record:
    async with conn.transaction():
        row = await _locked(conn, ident)
        if row["state"] != "approved":
            raise RegistrationDecided(ident, row["state"], "approved")
        await conn.execute("DELETE FROM credential WHERE team_id = $1", row["team_id"])
        return await _one(conn, ident)


async def _one(conn: asyncpg.Connection, ident: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM team_application a WHERE a.id = $1", ident)  # noqa: S608
    assert row is not None
    return row
