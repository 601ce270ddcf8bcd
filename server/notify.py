"""Cross-process events through PostgreSQL NOTIFY: a change is announced inside the transaction
that makes it, so every server process hears of it exactly when it is committed."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

CHANNEL = "podium"


async def notify(conn: asyncpg.Connection, event: dict[str, Any]) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, json.dumps(event))


async def bump_board(conn: asyncpg.Connection, challenge_id: int) -> None:
    """Records a change of a challenge's board (its version `board_seq` grows by one) and
    announces it; call inside the transaction that changes it. The first change after the
    freeze is recorded (the freeze itself) fixes `frozen_seq`, the version non-jury viewers
    see from then on."""
    row = await conn.fetchrow(
        """UPDATE challenge SET board_seq = board_seq + 1,
                  frozen_seq = CASE WHEN frozen_at IS NOT NULL
                                    THEN coalesce(frozen_seq, board_seq + 1) END
           WHERE id = $1 RETURNING slug, board_seq""",
        challenge_id)
    assert row is not None
    await notify(conn, {"type": "leaderboard", "challenge": row["slug"],
                        "seq": row["board_seq"]})
