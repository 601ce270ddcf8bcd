"""The LISTEN connection (docs/architecture.md, "Live updates").

Every change is announced with PostgreSQL NOTIFY inside the transaction that makes it
(server/notify.py), by whichever process or worker commits it. Each server process keeps one
LISTEN connection, reconnects after a database restart, and hands each notification to the
callbacks registered for its `type`. It knows nothing of what the events mean: the hub's
channels, the scorer, the deadline ticker and the `?wait` uploads each register their own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from server.notify import CHANNEL

log = logging.getLogger(__name__)

Event = dict[str, Any]
# A callback may be plain (run at once, in the notification's own callback: setting an event)
# or a coroutine function (run in a task of its own: a broadcast that reads the database).
Callback = Callable[[Event], Awaitable[None] | None]
OnConnect = Callable[[], Awaitable[None] | None]

# How the connection shows in pg_stat_activity.
APPLICATION = "podium-listener"
FIRST_RETRY_S = 0.5
LAST_RETRY_S = 10.0


class Listener:
    def __init__(self, database_url: str, channel: str = CHANNEL) -> None:
        self.database_url = database_url
        self.channel = channel
        self._callbacks: dict[str, list[Callback]] = {}
        self._on_connect: list[OnConnect] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # Set while the LISTEN connection is open (tests wait for it after a restart).
        self.listening = asyncio.Event()

    def on(self, kind: str, callback: Callback) -> None:
        """Calls `callback(event)` for every notification whose `type` is `kind`."""
        self._callbacks.setdefault(kind, []).append(callback)

    def on_connect(self, callback: OnConnect) -> None:
        """Calls `callback()` each time LISTEN starts: whatever was announced while the
        connection was down is lost, so whoever derives state from events refreshes it."""
        self._on_connect.append(callback)

    def dispatch(self, event: Event) -> None:
        kind = event.get("type")
        for callback in self._callbacks.get(kind, []) if isinstance(kind, str) else []:
            self._call(callback, event)

    def _call(self, callback: Callable[..., Awaitable[None] | None], *args: Any) -> None:
        try:
            result = callback(*args)
        except Exception:
            log.exception("a %s callback failed", self.channel)
            return
        if result is not None:
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a %s callback failed", self.channel, exc_info=task.exception())

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            log.warning("ignoring malformed notification %r", payload)
            return
        if isinstance(event, dict):
            self.dispatch(event)

    async def run(self) -> None:
        """Keeps the LISTEN connection open until cancelled, reconnecting with backoff."""
        delay = FIRST_RETRY_S
        try:
            while True:
                connection: asyncpg.Connection | None = None
                try:
                    lost = asyncio.Event()
                    connection = await asyncpg.connect(
                        self.database_url, server_settings={"application_name": APPLICATION})
                    connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
                    await connection.add_listener(self.channel, self._on_notify)
                    delay = FIRST_RETRY_S
                    self.listening.set()
                    for callback in self._on_connect:
                        self._call(callback)
                    await lost.wait()
                    log.warning("LISTEN connection closed by the database")
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("LISTEN connection lost (%s); retrying in %.1fs", exc, delay)
                finally:
                    self.listening.clear()
                    if connection is not None and not connection.is_closed():
                        await connection.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, LAST_RETRY_S)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
