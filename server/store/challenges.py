"""Challenges as stored: what the event file declared (the names and types of
`server.event.ChallengeSpec`) and the clock's and the board's state. One column list, one
dataclass, whichever part of Podium reads a challenge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import asyncpg

from server.countdown.schedule import Countdown, State
from server.event import Counts, Feedback, Visibility, scoring_options
from server.queries import decode_json

if TYPE_CHECKING:
    from server.evaluators.options import ScoringOptions

COLUMNS = """
    c.id, c.slug, c.position, c.title, c.kind, c.duration, c.truth_path, c.release_path,
    c.counts, c.max_submissions, c.team_feedback, c.leaderboard, c.freeze_window,
    c.upload_grace, c.hu_low, c.hu_high, c.max_upload_bytes, c.state, c.started_at,
    c.deadline, c.remaining, c.closed_at, c.board_seq, c.frozen_at, c.frozen_seq, c.ranking,
    c.options
"""


@dataclass(frozen=True)
class Challenge:
    id: int
    slug: str
    position: int
    title: str
    kind: str
    duration: timedelta
    truth: Path
    release: Path | None
    counts: Counts
    max_submissions: int | None
    team_feedback: Feedback
    leaderboard: Visibility
    freeze_window: timedelta
    upload_grace: timedelta
    hu_window: tuple[float, float] | None
    max_upload_bytes: int
    # The clock (server/countdown/): `deadline` while running, `remaining` while paused.
    state: State
    started_at: datetime | None
    deadline: datetime | None
    remaining: timedelta | None
    closed_at: datetime | None
    # The board (server/leaderboard.py): its version, and the freeze once recorded.
    board_seq: int
    frozen_at: datetime | None
    frozen_seq: int | None
    # The declared ranking (None: the kind's rule; see server.kinds.of) and the kind options.
    ranking: Mapping[str, Any] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def scoring_options(self) -> ScoringOptions:
        return scoring_options(self.options)

    @property
    def countdown(self) -> Countdown:
        return Countdown(state=self.state, duration=self.duration, started_at=self.started_at,
                         deadline=self.deadline, remaining=self.remaining,
                         closed_at=self.closed_at)

    @classmethod
    def of(cls, row: asyncpg.Record | dict[str, Any]) -> Challenge:
        low, high = row["hu_low"], row["hu_high"]
        return cls(
            id=row["id"], slug=row["slug"], position=row["position"], title=row["title"],
            kind=row["kind"], duration=row["duration"], truth=Path(row["truth_path"]),
            release=Path(row["release_path"]) if row["release_path"] else None,
            counts=Counts(row["counts"]), max_submissions=row["max_submissions"],
            team_feedback=Feedback(row["team_feedback"]),
            leaderboard=Visibility(row["leaderboard"]), freeze_window=row["freeze_window"],
            upload_grace=row["upload_grace"],
            hu_window=(low, high) if low is not None and high is not None else None,
            max_upload_bytes=row["max_upload_bytes"], state=row["state"],
            started_at=row["started_at"], deadline=row["deadline"], remaining=row["remaining"],
            closed_at=row["closed_at"], board_seq=row["board_seq"], frozen_at=row["frozen_at"],
            frozen_seq=row["frozen_seq"], ranking=decode_json(row["ranking"]),
            options=decode_json(row["options"]) or {})


async def challenges(conn: asyncpg.Connection) -> list[Challenge]:
    """The event's challenges, in the event file's order."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM challenge c WHERE c.in_event ORDER BY c.position")  # noqa: S608
    return [Challenge.of(r) for r in rows]


# Row locks a caller may take, inside its transaction.
Lock = Literal["FOR UPDATE", "FOR NO KEY UPDATE"]


async def challenge(conn: asyncpg.Connection, slug: str, *, lock: Lock | None = None
                    ) -> Challenge | None:
    """The challenge `slug` of the event, or None."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM challenge c WHERE c.in_event AND c.slug = $1 "  # noqa: S608
        + (lock or ""), slug)
    return Challenge.of(row) if row is not None else None


async def challenge_by_id(conn: asyncpg.Connection, challenge_id: int, *,
                          lock: Lock | None = None) -> Challenge | None:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM challenge c WHERE c.id = $1 " + (lock or ""),  # noqa: S608
        challenge_id)
    return Challenge.of(row) if row is not None else None
