"""Leaderboards as each viewer may see them (docs/api.md).

Who sees a board is the challenge's `leaderboard` setting: "jury" (jury and organizers),
"teams" (and every team), "public" (anyone, without a token). During the freeze, everyone but
the jury and organizers sees the board as it stood when the freeze began, marked `frozen`,
and unchanged until the reveal: same rows, same version. Every message and answer is the whole
board with its version `seq`, which grows by one with each change of the live board (an upload,
a result, the start of the freeze); the frozen board's `seq` is the live one's when the freeze
was recorded, so a team cannot count the activity behind it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import datetime
from typing import Any

import asyncpg

from server import kinds, queries
from server.access import Principal, Role
from server.countdown import freeze_start
from server.errors import BoardHidden, BoardNeedsToken, UnknownChallenge
from server.event import Visibility
from server.isotime import iso
from server.notify import notify
from server.ranking import Entry, Row, Scored
from server.results import ChallengeResults, EventResults, challenge_results, with_details
from server.store import challenges as challenge_store

VISIBLE_TO: dict[Visibility, frozenset[Role | None]] = {
    Visibility.JURY: frozenset({Role.JURY, Role.ORGANIZER}),
    Visibility.TEAMS: frozenset({Role.JURY, Role.ORGANIZER, Role.TEAM}),
    Visibility.PUBLIC: frozenset({Role.JURY, Role.ORGANIZER, Role.TEAM, None}),
}
# Who a board is shown to, in the words of its refusal.
AUDIENCE = {Visibility.JURY: "the jury and organizers",
            Visibility.TEAMS: "the jury, organizers and teams", Visibility.PUBLIC: "everyone"}


def may_view(setting: Visibility | str, viewer: Principal | None) -> bool:
    return (viewer.role if viewer else None) in VISIBLE_TO[Visibility(setting)]


def sees_live(viewer: Principal | None) -> bool:
    return viewer is not None and viewer.role in (Role.JURY, Role.ORGANIZER)


def entries(challenge: ChallengeResults, cutoff: datetime | None = None) -> list[Entry]:
    """Each registered team with its counted submission and its number of submissions. With
    `cutoff`, the board as it stood then (the freeze): the submissions received before it,
    and of those the results scored before it. A ranking on per-exam values gets them from
    the counted submission's details (none, if they were not loaded or not stored)."""
    kind = kinds.of(challenge)
    counts: dict[str, int] = defaultdict(int)
    scored: dict[str, list[Scored]] = defaultdict(list)
    for s in challenge.submissions:
        if cutoff is not None and s.received_at >= cutoff:
            continue
        counts[s.team] += 1
        visible = cutoff is None or (s.scored_at is not None and s.scored_at < cutoff)
        if s.status == "scored" and s.metrics is not None and visible:
            scored[s.team].append(Scored(s.id, s.team, s.received_at, dict(s.metrics)))
    details = {s.id: s.details for s in challenge.submissions} if kind.needs_cases else {}
    out = []
    for team in challenge.teams:
        counted = kind.counted(challenge.counts, scored[team])
        if counted is not None and kind.needs_cases:
            counted = dataclasses.replace(counted,
                                          cases=kind.case_values(details.get(counted.id)))
        out.append(Entry(team, counted, counts[team]))
    return out


def ranked(challenge: ChallengeResults, cutoff: datetime | None = None) -> list[Row]:
    """The board of a challenge (as it stood at `cutoff`, if given), ranked by its rule."""
    return kinds.of(challenge).rank(entries(challenge, cutoff))


def final_boards(results: EventResults) -> dict[str, list[Row]]:
    """Each challenge's final board: what the jury, the workbook and rescoring work from."""
    return {challenge.slug: ranked(challenge) for challenge in results.challenges}


async def bump_board(conn: asyncpg.Connection, challenge_id: int) -> None:
    """Records a change of a challenge's board (its version `board_seq` grows by one) and
    announces it; call inside the transaction that changes it. The first change after the
    freeze began fixes `frozen_seq`, the version non-jury viewers see from then on: the
    freeze's own record, or a result that arrived before the ticker recorded it (its time has
    come either way, so no late change ever shows in the frozen version)."""
    row = await conn.fetchrow(
        """UPDATE challenge SET board_seq = board_seq + 1,
                  frozen_seq = CASE WHEN frozen_at IS NOT NULL
                                      OR (state = 'running' AND freeze_window > interval '0'
                                          AND podium_now() >= deadline - freeze_window)
                                    THEN coalesce(frozen_seq, board_seq + 1) END
           WHERE id = $1 RETURNING slug, board_seq""",
        challenge_id)
    assert row is not None
    await notify(conn, {"type": "leaderboard", "challenge": row["slug"],
                        "seq": row["board_seq"]})


async def board(conn: asyncpg.Connection, slug: str, viewer: Principal | None
                ) -> dict[str, Any]:
    """The board of `slug` for `viewer`. Raises UnknownChallenge if there is no such
    challenge, BoardNeedsToken or BoardHidden if the viewer may not see it."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        stored = await challenge_store.challenge(conn, slug)
        if stored is None:
            raise UnknownChallenge(slug, await queries.challenge_slugs(conn))
        if not may_view(stored.leaderboard, viewer):
            audience = AUDIENCE[stored.leaderboard]
            raise BoardNeedsToken(slug, audience) if viewer is None else \
                BoardHidden(slug, audience)
        now = await queries.database_now(conn)
        cutoff = freeze_start(stored.countdown, now, stored.freeze_window, stored.frozen_at)
        frozen = cutoff is not None and not sees_live(viewer)
        (challenge,) = await challenge_results(conn, [stored], details=False)
        kind = kinds.of(stored)
        if kind.needs_cases:
            # Per-exam values of the counted submissions only, read in the same snapshot.
            shown = entries(challenge, cutoff if frozen else None)
            challenge = await with_details(
                conn, challenge, [e.counted.id for e in shown if e.counted is not None])
    rows = ranked(challenge, cutoff if frozen else None)
    seq = stored.board_seq
    if frozen:
        # Between the freeze's start and its recording (by the ticker, within moments), the
        # version its recording will fix: the next one, as bump_board sets it.
        seq = stored.frozen_seq if stored.frozen_seq is not None else stored.board_seq + 1
    return {"challenge": slug, "kind": stored.kind,
            "columns": kind.columns(), "seq": seq, "frozen": frozen,
            "frozen_at": iso(cutoff) if cutoff is not None else None,
            "rows": [r.to_json() for r in rows], "server_time": iso(now)}
