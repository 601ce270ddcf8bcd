"""Closes running challenges at their deadline. Every server process runs one; the closing is
recorded once (row locks), and the phase a client sees is derived from the deadline anyway, so a
late tick never lets an upload through."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from server.countdown.store import close_expired, next_deadline, start_freezes

log = logging.getLogger(__name__)

# Longest sleep between looks: a start or extension made by another process is noticed within
# this time even without a notification.
MAX_SLEEP_S = 0.5
RETRY_S = 0.05


async def run_ticker(pool: asyncpg.Pool, woken: asyncio.Event) -> None:
    while True:
        try:
            async with pool.acquire() as conn:
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
        woken.clear()
        try:
            await asyncio.wait_for(woken.wait(), timeout=sleep)
        except TimeoutError:
            pass
