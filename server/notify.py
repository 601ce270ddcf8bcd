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
