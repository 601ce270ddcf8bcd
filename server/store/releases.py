"""Releases as stored: what was prepared for each challenge (the archive, its hash, whether it
is sealed and armed) and who downloaded what. Preparing them is server/release/arming.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import asyncpg


@dataclass(frozen=True)
class Release:
    """A challenge's prepared release. `armed`: served to teams (no identifying attribute
    left, or the guard overridden); `key`: a sealed archive's key."""

    challenge_id: int
    challenge: str                   # its slug
    path: Path
    file_name: str
    size: int
    sha256: str
    sealed: bool
    key: str | None
    armed: bool

    @classmethod
    def of(cls, row: asyncpg.Record) -> Release:
        return cls(challenge_id=row["challenge_id"], challenge=row["slug"],
                   path=Path(row["path"]), file_name=row["file_name"], size=row["size"],
                   sha256=row["sha256"], sealed=row["sealed"], key=row["key"],
                   armed=row["armed"])


_SELECT = """SELECT r.challenge_id, c.slug, r.path, r.file_name, r.size, r.sha256, r.sealed,
                    r.key, r.armed
             FROM release r JOIN challenge c ON c.id = r.challenge_id"""


async def release(conn: asyncpg.Connection, challenge_id: int) -> Release | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE r.challenge_id = $1", challenge_id)  # noqa: S608
    return Release.of(row) if row is not None else None


async def releases(conn: asyncpg.Connection) -> list[Release]:
    """The releases of the event's challenges."""
    rows = await conn.fetch(f"{_SELECT} WHERE c.in_event ORDER BY c.position")  # noqa: S608
    return [Release.of(r) for r in rows]


async def save(conn: asyncpg.Connection, slug: str, path: Path, size: int, sha256: str,
               sealed: bool, key: str | None, armed: bool, findings: list[dict[str, str]],
               allowed_reason: str | None) -> None:
    """Records a challenge's prepared release (unchanged: nothing written)."""
    await conn.execute(
        """INSERT INTO release (challenge_id, path, file_name, size, sha256, sealed, key,
                                armed, findings, allowed_reason)
           SELECT c.id, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10
           FROM challenge c WHERE c.slug = $1
           ON CONFLICT (challenge_id) DO UPDATE SET
               path = EXCLUDED.path, file_name = EXCLUDED.file_name,
               size = EXCLUDED.size, sha256 = EXCLUDED.sha256, sealed = EXCLUDED.sealed,
               key = EXCLUDED.key, armed = EXCLUDED.armed, findings = EXCLUDED.findings,
               allowed_reason = EXCLUDED.allowed_reason,
               prepared_at = podium_now()
           WHERE (release.path, release.sha256, release.key, release.armed,
                  release.findings, release.allowed_reason)
                 IS DISTINCT FROM (EXCLUDED.path, EXCLUDED.sha256, EXCLUDED.key,
                                   EXCLUDED.armed, EXCLUDED.findings,
                                   EXCLUDED.allowed_reason)""",
        slug, str(path), path.name, size, sha256, sealed, key, armed, json.dumps(findings),
        allowed_reason)


async def forget_others(conn: asyncpg.Connection, kept: list[str]) -> None:
    """Drops the releases of challenges no longer in the event file."""
    await conn.execute(
        """DELETE FROM release WHERE challenge_id IN (
               SELECT id FROM challenge WHERE NOT (slug = ANY($1::text[])))""", kept)
