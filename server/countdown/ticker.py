"""Closes running challenges at their deadline. Every server process runs one; the closing is
recorded once (row locks), and the phase a client sees is derived from the deadline anyway, so a
late tick never lets an upload through."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from server.countdown.store import close_expired, next_deadline, start_freezes

log = logging.getLogger(__name__)

# Longest sleep between looks: a start or extension made by another process is noticed within
# this time even without a notification.
MAX_SLEEP_S = 0.5
RETRY_S = 0.05


class Ticker:
    """One per server process. Woken early by a clock announcement (a start, a pause, an
    extension, here or in another process), so a new deadline is looked at at once."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    def on_clock(self, _event: dict[str, Any]) -> None:
        self.wake()

    async def run(self) -> None:
        while True:
            try:
                async with self.pool.acquire() as conn:
                    wait = await next_deadline(conn)
                    if wait is not None and wait <= 0:
                        for slug in await start_freezes(conn):
                            log.info("board of %s frozen for non-jury viewers", slug)
                        for slug in await close_expired(conn):
                            log.info("challenge %s closed at its deadline", slug)
                        # Another process may hold the row; look again shortly.
                        wait = RETRY_S
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("deadline check failed (%s); retrying", exc)
                wait = None
            sleep = MAX_SLEEP_S if wait is None else min(max(wait, 0.0), MAX_SLEEP_S)
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout=sleep)
