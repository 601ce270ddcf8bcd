"""Submissions as stored: one dataclass with the challenge and team it belongs to, read with
one column list. The queue's claims and results stay with the scoring queue
(server/submission.py), which writes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from server.event import Feedback
from server.queries import decode_json

COLUMNS = """
    s.id, s.challenge_id, c.slug AS challenge, c.team_feedback, s.team_id, t.name AS team,
    s.request_began_at, s.received_at, s.sha256, s.size, s.filename, s.stored_path, s.status,
    s.metrics, s.errors, s.warnings, s.scorer_version, s.scored_at
"""
_FROM = """FROM submission s JOIN challenge c ON c.id = s.challenge_id
           JOIN team t ON t.id = s.team_id"""


@dataclass(frozen=True)
class Submission:
    id: int
    challenge_id: int
    challenge: str                   # its slug
    team_feedback: Feedback          # the challenge's: what the team is shown
    team_id: int
    team: str
    request_began_at: datetime
    received_at: datetime
    sha256: str
    size: int
    filename: str
    stored_path: str
    status: str                      # queued, scoring, scored, invalid
    metrics: dict[str, float] | None
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    scorer_version: str | None
    scored_at: datetime | None

    @property
    def final(self) -> bool:
        return self.status in ("scored", "invalid")

    @classmethod
    def of(cls, row: asyncpg.Record) -> Submission:
        return cls(
            id=row["id"], challenge_id=row["challenge_id"], challenge=row["challenge"],
            team_feedback=Feedback(row["team_feedback"]), team_id=row["team_id"],
            team=row["team"], request_began_at=row["request_began_at"],
            received_at=row["received_at"], sha256=row["sha256"], size=row["size"],
            filename=row["filename"], stored_path=row["stored_path"], status=row["status"],
            metrics=decode_json(row["metrics"]), errors=decode_json(row["errors"]) or [],
            warnings=decode_json(row["warnings"]) or [], scorer_version=row["scorer_version"],
            scored_at=row["scored_at"])


async def submission(conn: asyncpg.Connection, submission_id: int) -> Submission | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} {_FROM} WHERE s.id = $1",  # noqa: S608
                              submission_id)
    return Submission.of(row) if row is not None else None


async def submissions(conn: asyncpg.Connection, *, challenge_id: int | None = None,
                      team_id: int | None = None, limit: int = 1000) -> list[Submission]:
    """Newest first, of one challenge and/or one team, or all."""
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} {_FROM}
            WHERE ($1::int IS NULL OR s.challenge_id = $1)
              AND ($2::int IS NULL OR s.team_id = $2)
            ORDER BY s.id DESC LIMIT $3""",  # noqa: S608
        challenge_id, team_id, limit)
    return [Submission.of(r) for r in rows]
