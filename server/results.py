"""The event's results as plain data: what the jury deliberates with (the export workbook, the
plots, rank stability) is computed from these, never from the database directly."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from server.queries import decode_json
from server.ranking import Row
from server.store import challenges as challenge_store
from server.store.challenges import Challenge


@dataclass(frozen=True)
class SubmissionRecord:
    id: int
    team: str
    received_at: datetime
    sha256: str
    size: int
    filename: str
    status: str                      # queued | scoring | scored | invalid
    metrics: dict[str, float] | None
    errors: tuple[dict[str, Any], ...]
    # Per-exam values kept by the evaluator (see server/evaluators), None if not scored.
    details: dict[str, Any] | None = None
    scorer_version: str | None = None
    warnings: tuple[dict[str, Any], ...] = ()
    scored_at: datetime | None = None


@dataclass(frozen=True)
class ChallengeResults:
    slug: str
    title: str
    kind: str
    counts: str                      # "last" | "best"
    teams: tuple[str, ...]           # registered teams, in display order
    submissions: tuple[SubmissionRecord, ...]  # every submission, oldest first
    started_at: datetime | None = None
    deadline: datetime | None = None
    # The challenge's declared ranking (None: its kind's rule): server.kinds.of(challenge).
    ranking: Mapping[str, Any] | None = None

    def counted_details(self, rows: Sequence[Row]) -> dict[str, dict[str, Any]]:
        """The details of each ranked team's counted submission, in board order."""
        by_id = {s.id: s for s in self.submissions}
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            record = by_id.get(row.submission_id) if row.submission_id is not None else None
            if row.valid and record is not None and record.details is not None:
                out[row.team] = record.details
        return out


@dataclass(frozen=True)
class LogRecord:
    at: datetime
    challenge: str
    action: str
    seconds: float | None
    team: str | None
    actor: str
    state_after: str


@dataclass(frozen=True)
class EventResults:
    name: str
    timezone: str
    challenges: tuple[ChallengeResults, ...]
    teams: tuple[str, ...]           # every team of the event
    log: tuple[LogRecord, ...] = field(default_factory=tuple)


async def load_results(conn: asyncpg.Connection, slug: str | None = None, *,
                       details: bool = True) -> EventResults:
    """Everything the deliberation needs, read in one consistent snapshot: every challenge,
    or only `slug`'s; without `details` (the per-exam values), as a live board needs."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        event = await conn.fetchrow("SELECT name, timezone FROM event")
        stored = [c for c in await challenge_store.challenges(conn)
                  if slug is None or c.slug == slug]
        challenges = await challenge_results(conn, stored, details=details)
        teams = await conn.fetch("SELECT name FROM team WHERE in_event ORDER BY lower(name)")
        log = await conn.fetch(
            """SELECT l.at, c.slug, l.action, l.seconds, t.name AS team, l.actor, l.state_after
               FROM countdown_log l JOIN challenge c ON c.id = l.challenge_id
               LEFT JOIN team t ON t.id = l.team_id
               WHERE $1::text IS NULL OR c.slug = $1 ORDER BY l.id""", slug)
    assert event is not None
    return EventResults(
        name=event["name"], timezone=event["timezone"], challenges=challenges,
        teams=tuple(t["name"] for t in teams),
        log=tuple(LogRecord(at=r["at"], challenge=r["slug"], action=r["action"],
                            seconds=r["seconds"], team=r["team"], actor=r["actor"],
                            state_after=r["state_after"]) for r in log))


async def challenge_results(conn: asyncpg.Connection, challenges: Sequence[Challenge], *,
                            details: bool = True) -> tuple[ChallengeResults, ...]:
    """These stored challenges, each with its registered teams and every submission; run it
    inside the transaction that read them, to read everything in one snapshot."""
    ids = [c.id for c in challenges]
    registrations = await conn.fetch(
        """SELECT r.challenge_id, t.name FROM registration r JOIN team t ON t.id = r.team_id
           WHERE t.in_event AND r.challenge_id = any($1::int[]) ORDER BY lower(t.name)""", ids)
    submissions = await conn.fetch(
        f"""SELECT s.id, s.challenge_id, t.name AS team, s.received_at, s.sha256, s.size,
                   s.filename, s.status, s.metrics, s.errors, s.scorer_version, s.warnings,
                   s.scored_at, {"s.details" if details else "NULL AS details"}
            FROM submission s JOIN team t ON t.id = s.team_id
            WHERE s.challenge_id = any($1::int[]) ORDER BY s.id""", ids)  # noqa: S608
    by_challenge: dict[int, list[SubmissionRecord]] = {}
    for s in submissions:
        by_challenge.setdefault(s["challenge_id"], []).append(SubmissionRecord(
            id=s["id"], team=s["team"], received_at=s["received_at"], sha256=s["sha256"],
            size=s["size"], filename=s["filename"], status=s["status"],
            metrics=decode_json(s["metrics"]), errors=tuple(decode_json(s["errors"]) or ()),
            details=decode_json(s["details"]), scorer_version=s["scorer_version"],
            warnings=tuple(decode_json(s["warnings"]) or ()), scored_at=s["scored_at"]))
    registered: dict[int, list[str]] = {}
    for r in registrations:
        registered.setdefault(r["challenge_id"], []).append(r["name"])
    return tuple(ChallengeResults(
        slug=c.slug, title=c.title, kind=c.kind, counts=c.counts,
        teams=tuple(registered.get(c.id, [])), submissions=tuple(by_challenge.get(c.id, [])),
        started_at=c.started_at, deadline=c.deadline, ranking=c.ranking) for c in challenges)


async def with_details(conn: asyncpg.Connection, challenge: ChallengeResults,
                       ids: Collection[int]) -> ChallengeResults:
    """`challenge` with the details of submissions `ids` read (a board loaded without details
    whose ranking needs the counted submissions' per-exam values); run it in the snapshot
    that read the challenge."""
    if not ids:
        return challenge
    rows = await conn.fetch("SELECT id, details FROM submission WHERE id = any($1::int[])",
                            list(ids))
    found = {r["id"]: decode_json(r["details"]) for r in rows}
    return dataclasses.replace(challenge, submissions=tuple(
        dataclasses.replace(s, details=found[s.id]) if s.id in found else s
        for s in challenge.submissions))
