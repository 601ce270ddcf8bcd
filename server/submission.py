"""Submissions: the scoring queue, a team's standing, and how each viewer sees one
(docs/api.md); reading them is server/store/submissions.py."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from server import kinds
from server.access import Principal, Role
from server.event import Counts, Feedback
from server.isotime import iso
from server.leaderboard import bump_board
from server.notify import notify
from server.queries import decode_json
from server.ranking import Scored
from server.store.challenges import Challenge
from server.store.submissions import Submission


def submission_json(submission: Submission, viewer: Principal | None) -> dict[str, Any]:
    """What `viewer` may see of a submission: a team sees its status, errors and warnings
    always (warnings are truth-free), its metrics only when the challenge's team_feedback is
    "score"; jury and organizers see all."""
    body: dict[str, Any] = {
        "id": submission.id, "team": submission.team, "challenge": submission.challenge,
        "received_at": iso(submission.received_at), "sha256": submission.sha256,
        "size": submission.size, "filename": submission.filename, "status": submission.status,
    }
    full = viewer is not None and viewer.role in (Role.JURY, Role.ORGANIZER)
    if submission.final:
        body["errors"] = submission.errors
        body["warnings"] = submission.warnings
        if full or submission.team_feedback is Feedback.SCORE:
            body["metrics"] = submission.metrics
        if full:
            body["scorer_version"] = submission.scorer_version
            body["scored_at"] = iso(submission.scored_at)
    return body


def may_see(viewer: Principal | None, submission: Submission) -> bool:
    if viewer is None:
        return False
    if viewer.role is Role.TEAM:
        return viewer.team_id == submission.team_id
    return True


async def insert_submission(conn: asyncpg.Connection, *, challenge_id: int, team_id: int,
                            request_began_at: Any, received_at: Any, sha256: str, size: int,
                            filename: str, stored_path: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        """INSERT INTO submission (challenge_id, team_id, request_began_at, received_at, sha256,
                                   size, filename, stored_path)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING id, received_at""",
        challenge_id, team_id, request_began_at, received_at, sha256, size, filename,
        stored_path)
    assert row is not None
    return row


async def count_for_team(conn: asyncpg.Connection, challenge_id: int, team_id: int
                         ) -> tuple[int, int]:
    """(all submissions, those still waiting to be scored) of a team on a challenge."""
    row = await conn.fetchrow(
        """SELECT count(*) AS total,
                  count(*) FILTER (WHERE status IN ('queued', 'scoring')) AS pending
           FROM submission WHERE challenge_id = $1 AND team_id = $2""",
        challenge_id, team_id)
    assert row is not None
    return row["total"], row["pending"]


async def team_standing(conn: asyncpg.Connection, challenge: Challenge, team_id: int
                        ) -> dict[str, Any]:
    """Where a team stands on a challenge: which of its submissions counts now and why, how
    many it has sent and has left, how many are still being scored.

    With `counts = "best"` and a status-only feedback the counted submission is not named:
    which of its files is best would tell the team what the status hides."""
    rows = await conn.fetch(
        """SELECT id, status, received_at, metrics FROM submission
           WHERE challenge_id = $1 AND team_id = $2 ORDER BY id""", challenge.id, team_id)
    scored = [Scored(r["id"], "", r["received_at"], decode_json(r["metrics"]) or {})
              for r in rows if r["status"] == "scored"]
    counted = kinds.of(challenge).counted(challenge.counts, scored)
    limit = challenge.max_submissions
    hidden = challenge.counts is Counts.BEST and challenge.team_feedback is not Feedback.SCORE
    if counted is None:
        reason = "none yet: no valid submission"
    elif challenge.counts is Counts.LAST:
        reason = "your last valid submission counts; a newer valid one replaces it"
    elif hidden:
        reason = ("the best of your valid submissions counts; which one is not shown, as "
                  "this challenge shows the status of uploads only")
    else:
        reason = "the best of your valid submissions counts"
    return {
        "challenge": challenge.slug, "counts": challenge.counts.value,
        "counted_submission": None if counted is None or hidden else counted.id,
        "has_valid": counted is not None, "reason": reason,
        "submissions": len(rows), "max_submissions": limit,
        "left": None if limit is None else max(0, limit - len(rows)),
        "pending": sum(1 for r in rows if r["status"] in ("queued", "scoring")),
    }


# -- the scoring queue ------------------------------------------------------------------------

# A submission waiting to be scored: queued, or claimed by a process whose database session is
# gone (it died while scoring it).
_WAITING = """(q.status = 'queued'
                OR (q.status = 'scoring' AND NOT EXISTS (
                      SELECT 1 FROM pg_stat_activity a
                      WHERE a.pid::text = split_part(q.claimed_by, ':', 1))))"""


async def claim_next(conn: asyncpg.Connection, claimant: str) -> asyncpg.Record | None:
    """Claims the next submission, round-robin over teams: each team's oldest waiting file
    is its head; heads go first, a team's second file only after every other team's head
    (`place`); among heads, the team served least recently goes first (never served: first),
    then a small file (a table) before a mask archive, then the oldest. So a team that queues
    many files delays another team's result by at most one scoring. SKIP LOCKED lets several
    processes share the queue without waiting; the status is checked again on the locked row,
    since another process may have claimed it after this statement's snapshot was taken."""
    return await conn.fetchrow(
        f"""UPDATE submission s SET status = 'scoring', claimed_by = $1,
                   claimed_at = podium_now(), attempts = s.attempts + 1
            FROM challenge c
            WHERE s.id = (
                WITH waiting AS (
                    SELECT q.id, q.team_id, q.size,
                           row_number() OVER (PARTITION BY q.team_id ORDER BY q.id) AS place
                    FROM submission q WHERE {_WAITING}),
                served AS (
                    SELECT p.team_id, max(p.claimed_at) AS last_claimed FROM submission p
                    WHERE p.team_id IN (SELECT team_id FROM waiting) GROUP BY p.team_id)
                SELECT q.id FROM submission q
                JOIN waiting w ON w.id = q.id
                LEFT JOIN served v ON v.team_id = w.team_id
                WHERE {_WAITING}
                ORDER BY w.place, v.last_claimed NULLS FIRST, w.size > 1048576, w.id
                FOR UPDATE OF q SKIP LOCKED LIMIT 1)
              AND c.id = s.challenge_id
            RETURNING s.id, s.attempts, s.stored_path, s.filename, s.team_id, c.slug, c.kind,
                      c.truth_path, c.hu_low, c.hu_high, c.options""",  # noqa: S608 - constant SQL
        claimant)


async def record_result(conn: asyncpg.Connection, submission_id: int, claimant: str,
                        status: str, metrics: dict[str, Any] | None,
                        errors: list[dict[str, Any]], scorer_version: str,
                        details: dict[str, Any] | None = None,
                        warnings: list[dict[str, Any]] | None = None) -> bool:
    """Stores a result if this claimant still holds the submission; announces it."""
    async with conn.transaction():
        noted = [*(warnings or []), *await _duplicate_warning(conn, submission_id)]
        row = await conn.fetchrow(
            """UPDATE submission s SET status = $3, metrics = $4::jsonb, errors = $5::jsonb,
                      scorer_version = $6, scored_at = podium_now(), details = $7::jsonb,
                      warnings = $8::jsonb
               FROM challenge c
               WHERE s.id = $1 AND s.claimed_by = $2 AND s.status = 'scoring'
                 AND c.id = s.challenge_id
               RETURNING s.team_id, s.challenge_id, c.slug""",
            submission_id, claimant, status, json.dumps(metrics) if metrics is not None
            else None, json.dumps(errors), scorer_version,
            json.dumps(details) if details is not None else None, json.dumps(noted))
        if row is None:
            return False
        await announce(conn, submission_id, row["slug"], row["team_id"], status)
        if status == "scored":
            await bump_board(conn, row["challenge_id"])
    return True


async def _duplicate_warning(conn: asyncpg.Connection, submission_id: int
                             ) -> list[dict[str, Any]]:
    """`duplicate_upload` when the team sent these very bytes before (same SHA-256)."""
    earlier = await conn.fetchrow(
        """SELECT e.id, e.filename, c.slug FROM submission s
           JOIN submission e ON e.team_id = s.team_id AND e.sha256 = s.sha256 AND e.id < s.id
           JOIN challenge c ON c.id = e.challenge_id
           WHERE s.id = $1 ORDER BY e.challenge_id = s.challenge_id DESC, e.id DESC LIMIT 1""",
        submission_id)
    if earlier is None:
        return []
    return [{"code": "duplicate_upload", "message": (
        f"this file is identical (same SHA-256) to your submission #{earlier['id']} "
        f"({earlier['filename']}, {earlier['slug']}); if you meant to send a new version, "
        "check that the right file was picked")}]


async def announce(conn: asyncpg.Connection, submission_id: int, challenge: str,
                   team_id: int, status: str) -> None:
    await notify(conn, {"type": "submission", "id": submission_id, "challenge": challenge,
                        "team_id": team_id, "status": status})
