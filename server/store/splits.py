"""Splits as stored (docs/datasets.md): the split in force of each question, its sets in
order with when each was first released, and the set of every exam.

A split is immutable once any of its sets is released; before that an organizer may redo
it, which keeps the old one (not current) for the record. The caller owns nothing here: each
change is one transaction of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from server.errors import SplitExists, SplitReleased


@dataclass(frozen=True)
class StoredSet:
    name: str
    size: int
    released_at: datetime | None


@dataclass(frozen=True)
class StoredSplit:
    id: int
    challenge: str
    seed: int
    declared: dict[str, Any]
    made_by: str
    made_at: datetime
    sets: tuple[StoredSet, ...]
    assignment: Mapping[int, str]   # exam id -> set name ("": in no set)

    def released(self) -> StoredSet | None:
        return next((s for s in self.sets if s.released_at is not None), None)


async def current(conn: asyncpg.Connection, challenge: str) -> StoredSplit | None:
    row = await conn.fetchrow(
        """SELECT s.id, s.seed, s.declared, s.made_by, s.made_at FROM split s
           JOIN challenge c ON c.id = s.challenge_id WHERE c.slug = $1 AND s.current""",
        challenge)
    if row is None:
        return None
    sets = await conn.fetch("SELECT name, size, released_at FROM split_set WHERE split_id = $1 "
                            "ORDER BY position", row["id"])
    members = await conn.fetch("SELECT exam_id, set_name FROM split_exam WHERE split_id = $1",
                               row["id"])
    return StoredSplit(id=row["id"], challenge=challenge, seed=row["seed"],
                       declared=json.loads(row["declared"]), made_by=row["made_by"],
                       made_at=row["made_at"],
                       sets=tuple(StoredSet(r["name"], r["size"], r["released_at"])
                                  for r in sets),
                       assignment={r["exam_id"]: r["set_name"] or "" for r in members})


async def record(conn: asyncpg.Connection, challenge: str, *, seed: int,
                 declared: Mapping[str, Any], sizes: Sequence[tuple[str, int]],
                 assignment: Mapping[int, str], by: str, redo: bool) -> int:
    """Stores a new split as the question's current one and returns its id. SplitExists when
    one is in force and `redo` is false; SplitReleased when the one in force has a set out."""
    async with conn.transaction():
        challenge_id = await conn.fetchval("SELECT id FROM challenge WHERE slug = $1 "
                                           "FOR UPDATE", challenge)
        old = await conn.fetchval("SELECT id FROM split WHERE challenge_id = $1 AND current",
                                  challenge_id)
        if old is not None:
            released = await conn.fetchval(
                """SELECT name FROM split_set WHERE split_id = $1 AND released_at IS NOT NULL
                   ORDER BY position LIMIT 1""", old)
            if released is not None:
                raise SplitReleased(challenge, released)
            if not redo:
                raise SplitExists(challenge)
            await conn.execute("UPDATE split SET current = false WHERE id = $1", old)
        split_id: int = await conn.fetchval(
            """INSERT INTO split (challenge_id, seed, declared, made_by)
               VALUES ($1, $2, $3::jsonb, $4) RETURNING id""",
            challenge_id, seed, json.dumps(declared), by)
        await conn.executemany(
            "INSERT INTO split_set (split_id, name, position, size) VALUES ($1, $2, $3, $4)",
            [(split_id, name, position, size) for position, (name, size) in enumerate(sizes)])
        await conn.executemany(
            "INSERT INTO split_exam (split_id, exam_id, set_name) VALUES ($1, $2, $3)",
            [(split_id, exam, name or None) for exam, name in sorted(assignment.items())])
    return split_id


async def mark_released(conn: asyncpg.Connection, challenge: str, name: str) -> bool:
    """The set went out to the teams (a batch, the final day's release): from now on the
    split cannot be redone. Returns False when the question's split has no such set; the
    first release's time is kept."""
    status = await conn.execute(
        """UPDATE split_set t SET released_at = coalesce(t.released_at, podium_now())
           FROM split s JOIN challenge c ON c.id = s.challenge_id
           WHERE t.split_id = s.id AND s.current AND c.slug = $1 AND t.name = $2""",
        challenge, name)
    return status != "UPDATE 0"
