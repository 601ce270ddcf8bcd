"""Browser sessions as stored: the SHA-256 of each session id, the credential it was opened
with, its expiry by the database's clock, and the operator's name for the log."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import asyncpg

from server.access import Principal
from server.queries import PRINCIPAL_IN_EVENT, PRINCIPAL_JOINS, PRINCIPAL_SELECT, principal_row

SESSION_LIFETIME = timedelta(days=7)


def hash_session_id(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8")).digest()


async def open_session(conn: asyncpg.Connection, token_hash: bytes) -> str:
    """A new session for the credential with this token hash; returns the id for the cookie."""
    session_id = secrets.token_urlsafe(32)
    await conn.execute(
        """INSERT INTO browser_session (id_hash, token_hash, expires_at)
           VALUES ($1, $2, podium_now() + $3::interval)""",
        hash_session_id(session_id), token_hash, SESSION_LIFETIME)
    return session_id


async def principal_for_session(conn: asyncpg.Connection, session_id: str
                                ) -> Principal | None:
    row = await conn.fetchrow(
        f"""SELECT {PRINCIPAL_SELECT}
            FROM browser_session s
            JOIN credential cr ON cr.token_hash = s.token_hash
            {PRINCIPAL_JOINS}
            WHERE s.id_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > podium_now()
              AND {PRINCIPAL_IN_EVENT}""",  # noqa: S608
        hash_session_id(session_id))
    return principal_row(row) if row is not None else None


async def revoke_session(conn: asyncpg.Connection, session_id: str) -> None:
    await conn.execute(
        """UPDATE browser_session SET revoked_at = podium_now()
           WHERE id_hash = $1 AND revoked_at IS NULL""",
        hash_session_id(session_id))


async def set_operator(conn: asyncpg.Connection, session_id: str, name: str | None) -> None:
    """Who is at the keyboard of this session (an organizer's name, for the log)."""
    await conn.execute(
        "UPDATE browser_session SET operator = $2 WHERE id_hash = $1 AND revoked_at IS NULL",
        hash_session_id(session_id), name)


async def operator_of(conn: asyncpg.Connection, session_id: str | None) -> str | None:
    """The name given for this session at login (or since), from whichever browser."""
    if session_id is None:
        return None
    value = await conn.fetchval(
        """SELECT operator FROM browser_session
           WHERE id_hash = $1 AND revoked_at IS NULL AND expires_at > podium_now()""",
        hash_session_id(session_id))
    return str(value) if value is not None else None
