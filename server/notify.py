"""Cross-process events through PostgreSQL NOTIFY: a change is announced inside the transaction
that makes it, so every server process hears of it exactly when it is committed."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

CHANNEL = "podium"


async def notify(conn: asyncpg.Connection, event: dict[str, Any]) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, json.dumps(event))
