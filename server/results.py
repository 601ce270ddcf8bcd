"""The event's results as plain data: what the jury deliberates with (the export workbook, the
plots, rank stability) is computed from these, never from the database directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
