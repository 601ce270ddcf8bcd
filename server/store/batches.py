"""Batches as stored (docs/datasets.md, "Batches"): each packed batch's archive, when an
organizer opened it, and every download of it. Declaring them is the event file's; packing
is server/dataset/batch.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg


@dataclass(frozen=True)
class PackedBatch:
    challenge_id: int
    name: str
    set_name: str
    exams: tuple[int, ...]
    path: Path
    file_name: str
    size: int
    sha256: str
    sealed: bool
    key: str | None
    packed_at: datetime
    opened_at: datetime | None
    opened_by: str | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> PackedBatch:
        return cls(challenge_id=row["challenge_id"], name=row["name"],
                   set_name=row["set_name"], exams=tuple(row["exams"]), path=Path(row["path"]),
                   file_name=row["file_name"], size=row["size"], sha256=row["sha256"],
                   sealed=row["sealed"], key=row["key"], packed_at=row["packed_at"],
                   opened_at=row["opened_at"], opened_by=row["opened_by"])


_SELECT = """SELECT b.* FROM batch b JOIN challenge c ON c.id = b.challenge_id"""


async def now(conn: asyncpg.Connection) -> datetime:
    """The server's one clock (migration 0006): what gates a batch to the second."""
    moment: datetime = await conn.fetchval("SELECT podium_now()")
    return moment


async def packed(conn: asyncpg.Connection, slug: str) -> dict[str, PackedBatch]:
    rows = await conn.fetch(f"{_SELECT} WHERE c.slug = $1", slug)
    return {r["name"]: PackedBatch.of(r) for r in rows}


async def packed_one(conn: asyncpg.Connection, slug: str, name: str) -> PackedBatch | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE c.slug = $1 AND b.name = $2", slug, name)
    return None if row is None else PackedBatch.of(row)


async def record_packed(conn: asyncpg.Connection, slug: str, name: str, set_name: str,
                        exams: list[int], path: Path, size: int, sha256: str, sealed: bool,
                        key: str | None) -> None:
    """Records the archive (once: a batch packed stays as packed, its set being released)."""
    await conn.execute(
        """INSERT INTO batch (challenge_id, name, set_name, exams, path, file_name, size,
                              sha256, sealed, key)
           SELECT id, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM challenge WHERE slug = $1
           ON CONFLICT (challenge_id, name) DO NOTHING""",
        slug, name, set_name, exams, str(path), path.name, size, sha256, sealed, key)


async def mark_opened(conn: asyncpg.Connection, slug: str, name: str, by: str) -> None:
    """An organizer opened the batch; the first opening's time and name are kept."""
    await conn.execute(
        """UPDATE batch b SET opened_at = coalesce(b.opened_at, podium_now()),
                              opened_by = coalesce(b.opened_by, $3)
           FROM challenge c WHERE c.id = b.challenge_id AND c.slug = $1 AND b.name = $2""",
        slug, name, by)


async def log_download(conn: asyncpg.Connection, challenge_id: int, name: str, team_id: int,
                       range_start: int, sent: int, complete: bool) -> None:
    await conn.execute(
        """INSERT INTO batch_download (challenge_id, batch, team_id, range_start, bytes,
                                       complete)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        challenge_id, name, team_id, range_start, sent, complete)


@dataclass(frozen=True)
class TeamDownloads:
    team: str
    downloads: int          # requests served, whole or ranges
    complete: int           # of which reached the archive's end
    bytes: int


async def downloads(conn: asyncpg.Connection, slug: str) -> dict[str, list[TeamDownloads]]:
    """Per batch, per team that downloaded it: its counts, teams by name."""
    rows = await conn.fetch(
        """SELECT d.batch, t.name, count(*) AS downloads,
                  count(*) FILTER (WHERE d.complete) AS complete, sum(d.bytes) AS bytes
           FROM batch_download d JOIN challenge c ON c.id = d.challenge_id
           JOIN team t ON t.id = d.team_id
           WHERE c.slug = $1 GROUP BY d.batch, t.name ORDER BY d.batch, t.name""", slug)
    found: dict[str, list[TeamDownloads]] = {}
    for r in rows:
        found.setdefault(r["batch"], []).append(
            TeamDownloads(r["name"], r["downloads"], r["complete"], int(r["bytes"] or 0)))
    return found
