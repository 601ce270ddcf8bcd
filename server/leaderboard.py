"""Leaderboards as each viewer may see them (SPEC §4, §5, §6).

Who sees a board is the challenge's `leaderboard` setting: "jury" (jury and organizers),
"teams" (and every team), "public" (anyone, without a token). During the freeze, everyone but
the jury and organizers sees the board as it stood when the freeze began, marked `frozen`,
and unchanged until the reveal: same rows, same version. Every message and answer is the whole
board with its version `seq`, which grows by one with each change of the live board (an upload,
a result, the start of the freeze); the frozen board's `seq` is the live one's when the freeze
was recorded, so a team cannot count the activity behind it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import asyncpg

from server import queries
from server.access import Principal, Role
from server.countdown import freeze_start
from server.countdown.store import countdown_of
from server.errors import BoardHidden, BoardNeedsToken, UnknownChallenge
from server.isotime import iso
from server.ranking import Entry, Row, Scored, counted_submission, rank

VISIBLE_TO: dict[str, frozenset[Role | None]] = {
    "jury": frozenset({Role.JURY, Role.ORGANIZER}),
    "teams": frozenset({Role.JURY, Role.ORGANIZER, Role.TEAM}),
    "public": frozenset({Role.JURY, Role.ORGANIZER, Role.TEAM, None}),
}
# Who a board is shown to, in the words of its refusal.
AUDIENCE = {"jury": "the jury and organizers", "teams": "the jury, organizers and teams",
            "public": "everyone"}


def may_view(setting: str, viewer: Principal | None) -> bool:
    return (viewer.role if viewer else None) in VISIBLE_TO[setting]


def sees_live(viewer: Principal | None) -> bool:
    return viewer is not None and viewer.role in (Role.JURY, Role.ORGANIZER)


async def board(conn: asyncpg.Connection, slug: str, viewer: Principal | None
                ) -> dict[str, Any]:
    """The board of `slug` for `viewer`. Raises UnknownChallenge if there is no such
    challenge, BoardNeedsToken or BoardHidden if the viewer may not see it."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(
            f"""SELECT {queries.CHALLENGE_COLUMNS}, c.board_seq, c.frozen_at, c.frozen_seq
                FROM challenge c WHERE c.slug = $1 AND c.in_event""", slug)  # noqa: S608
        if row is None:
            raise UnknownChallenge(slug, await queries.challenge_slugs(conn))
        if not may_view(row["leaderboard"], viewer):
            audience = AUDIENCE[row["leaderboard"]]
            raise BoardNeedsToken(slug, audience) if viewer is None else \
                BoardHidden(slug, audience)
        now = await queries.database_now(conn)
        cutoff = freeze_start(countdown_of(row), now, row["freeze_window"], row["frozen_at"])
        frozen = cutoff is not None and not sees_live(viewer)
        rows = await _rows(conn, row, cutoff if frozen else None)
    seq = row["board_seq"]
    if frozen:
        # Between the freeze's start and its recording (by the ticker, within moments), the
        # version its recording will fix: the next one, as bump_board sets it.
        seq = row["frozen_seq"] if row["frozen_seq"] is not None else row["board_seq"] + 1
    return {"challenge": slug, "kind": row["kind"], "seq": seq, "frozen": frozen,
            "frozen_at": iso(cutoff) if cutoff is not None else None,
            "rows": [r.to_json() for r in rows], "server_time": iso(now)}


async def _rows(conn: asyncpg.Connection, challenge: asyncpg.Record,
                cutoff: datetime | None) -> list[Row]:
    teams = await conn.fetch(
        """SELECT t.id, t.name FROM registration r JOIN team t ON t.id = r.team_id
           WHERE r.challenge_id = $1 AND t.in_event ORDER BY lower(t.name)""", challenge["id"])
    submissions = await conn.fetch(
        """SELECT s.id, s.team_id, s.status, s.received_at, s.scored_at, s.metrics
           FROM submission s WHERE s.challenge_id = $1
             AND ($2::timestamptz IS NULL OR s.received_at < $2)
           ORDER BY s.id""", challenge["id"], cutoff)
    counts: dict[int, int] = defaultdict(int)
    scored: dict[int, list[Scored]] = defaultdict(list)
    names = {t["id"]: t["name"] for t in teams}
    for s in submissions:
        counts[s["team_id"]] += 1
        visible = cutoff is None or (s["scored_at"] is not None and s["scored_at"] < cutoff)
        if s["status"] == "scored" and visible and s["team_id"] in names:
            metrics = s["metrics"]
            scored[s["team_id"]].append(Scored(
                s["id"], names[s["team_id"]], s["received_at"],
                queries.decode_json(metrics)))
    entries = [Entry(t["name"], counted_submission(challenge["kind"], challenge["counts"],
                                                   scored[t["id"]]), counts[t["id"]])
               for t in teams]
    return rank(challenge["kind"], entries)
