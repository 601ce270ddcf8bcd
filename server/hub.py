"""The websocket hub (SPEC §6).

Every change is announced with PostgreSQL NOTIFY by whichever process (or worker) commits it;
each server process LISTENs and fans the news out to its own viewers, so viewers connected to
different processes see the same thing. Each viewer has a bounded queue drained by its own
sender task: a slow or dead viewer never delays the others; when its queue overflows it is
emptied and the viewer is told to resubscribe (`resync`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from server.access import Principal, Role
from server.challenge import challenges_for
from server.isotime import iso
from server.leaderboard import board
from server.notify import CHANNEL
from server.submission import fetch_submission, fetch_submissions, submission_json

log = logging.getLogger(__name__)

QUEUE_SIZE = 64
HEARTBEAT_S = 15.0

Message = dict[str, Any]
# A channel's snapshot for one viewer: None when the viewer may not see it.
Snapshot = Callable[[asyncpg.Connection, Principal | None, str], Awaitable[Message | None]]


@dataclass(eq=False)
class Viewer:
    ws: web.WebSocketResponse
    principal: Principal | None
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    channels: set[str] = field(default_factory=set)
    dropped: int = 0
    # The newest board version sent per channel: announcements handled out of order never
    # send a client an older board after a newer one.
    seen_seq: dict[str, int] = field(default_factory=dict)


class Hub:
    def __init__(self, pool: asyncpg.Pool, database_url: str) -> None:
        self.pool = pool
        self.database_url = database_url
        self.viewers: set[Viewer] = set()
        self.snapshots: dict[str, Snapshot] = {"clock": _clock_snapshot}
        # Channels whose messages depend on the event's payload (e.g. "submission").
        self.routers: dict[str, Callable[[Message], Awaitable[None]]] = {}
        self._listener: asyncpg.Connection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.clock_changed = asyncio.Event()
        self.work_available = asyncio.Event()
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self.snapshots["submissions"] = _submissions_snapshot
        self.snapshots["leaderboard"] = _leaderboard_snapshot
        self.routers["submission"] = self._route_submission
        self.routers["leaderboard"] = self._route_leaderboard

    async def _route_leaderboard(self, event: Message) -> None:
        await self.broadcast(f"leaderboard:{event['challenge']}")

    # -- submissions ------------------------------------------------------------------------

    def waiter(self, submission_id: int) -> asyncio.Event:
        """An event set when this submission reaches a final state (scored or invalid)."""
        event = asyncio.Event()
        self._waiters.setdefault(submission_id, set()).add(event)
        return event

    def forget_waiter(self, submission_id: int, event: asyncio.Event) -> None:
        waiting = self._waiters.get(submission_id)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self._waiters[submission_id]

    async def _route_submission(self, event: Message) -> None:
        status = event.get("status")
        if status == "queued":
            self.work_available.set()
        if status in ("scored", "invalid"):
            for waiting in self._waiters.get(int(event["id"]), set()):
                waiting.set()
        targets = [v for v in self.viewers if "submissions" in v.channels and v.principal
                   and (v.principal.role is not Role.TEAM
                        or v.principal.team_id == event.get("team_id"))]
        if not targets:
            return
        async with self.pool.acquire() as conn:
            row = await fetch_submission(conn, int(event["id"]))
        if row is None:
            return
        for viewer in targets:
            self.offer(viewer, {"type": "submission", **submission_json(row, viewer.principal)})

    # -- channels -----------------------------------------------------------------------------

    def channel_kind(self, channel: str) -> str | None:
        kind = channel.split(":", 1)[0]
        return kind if kind in self.snapshots else None

    async def snapshot(self, viewer: Viewer, channel: str) -> Message | None:
        kind = self.channel_kind(channel)
        assert kind is not None
        async with self.pool.acquire() as conn:
            return await self.snapshots[kind](conn, viewer.principal, channel)

    # -- delivery -----------------------------------------------------------------------------

    def offer(self, viewer: Viewer, message: Message | str) -> None:
        """Queues a message (a dict, or one already serialised for many viewers)."""
        try:
            viewer.queue.put_nowait(message if isinstance(message, str) else _text(message))
        except asyncio.QueueFull:
            # Never wait for a slow viewer: drop what it has not read and ask it to resubscribe.
            while not viewer.queue.empty():
                viewer.queue.get_nowait()
            viewer.dropped += 1
            viewer.queue.put_nowait(_text({"type": "resync", "channels": sorted(viewer.channels),
                                           "message": "you fell behind; subscribe again for a "
                                                      "fresh snapshot"}))

    async def pump(self, viewer: Viewer) -> None:
        while True:
            await viewer.ws.send_str(await viewer.queue.get())

    async def broadcast(self, channel: str) -> None:
        """Sends `channel`'s fresh snapshot to every viewer subscribed to it, computed once per
        distinct principal."""
        targets = [v for v in self.viewers if channel in v.channels]
        if not targets:
            return
        # One snapshot, serialised once, per distinct principal: 1,000 jury screens cost one
        # query and one json.dumps.
        cache: dict[tuple[Any, ...], tuple[Message, str] | None] = {}
        async with self.pool.acquire() as conn:
            kind = self.channel_kind(channel)
            assert kind is not None
            for viewer in targets:
                p = viewer.principal
                key = (p.role, p.team_id) if p else (None, None)
                if key not in cache:
                    snapshot = await self.snapshots[kind](conn, p, channel)
                    cache[key] = (snapshot, _text(snapshot)) if snapshot is not None else None
                found = cache[key]
                if found is None:
                    continue
                message, text = found
                seq = message.get("seq")
                if isinstance(seq, int):
                    if seq <= viewer.seen_seq.get(channel, -1):
                        continue
                    viewer.seen_seq[channel] = seq
                self.offer(viewer, text)

    async def dispatch(self, event: Message) -> None:
        kind = event.get("type")
        if kind == "clock":
            self.clock_changed.set()
            await self.broadcast("clock")
        elif isinstance(kind, str) and kind in self.routers:
            await self.routers[kind](event)

    # -- LISTEN -------------------------------------------------------------------------------

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            log.warning("ignoring malformed notification %r", payload)
            return
        task = asyncio.get_running_loop().create_task(self.dispatch(event))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dispatch failed", exc_info=task.exception())

    async def listen_forever(self) -> None:
        """Keeps one LISTEN connection open, reconnecting after a database restart; after a
        reconnect every viewer gets fresh snapshots, since notifications may have been missed."""
        delay = 0.5
        while True:
            try:
                lost = asyncio.Event()
                self._listener = await asyncpg.connect(self.database_url)
                self._listener.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await self._listener.add_listener(CHANNEL, self._on_notify)
                delay = 0.5
                for channel in {c for v in self.viewers for c in v.channels}:
                    await self.broadcast(channel)
                await lost.wait()
                log.warning("LISTEN connection closed by the database")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("LISTEN connection lost (%s); retrying in %.1fs", exc, delay)
            finally:
                if self._listener is not None and not self._listener.is_closed():
                    await self._listener.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def close_all(self) -> None:
        for viewer in list(self.viewers):
            with contextlib.suppress(Exception):
                await viewer.ws.close(code=1001, message=b"server shutting down")
        for task in list(self._tasks):
            task.cancel()


def _text(message: Message) -> str:
    """A message as sent: every message carries the server's time."""
    if "server_time" not in message:
        message = {**message, "server_time": iso(datetime.now(UTC))}
    return json.dumps(message)


async def _leaderboard_snapshot(conn: asyncpg.Connection, principal: Principal | None,
                                channel: str) -> Message | None:
    slug = channel.split(":", 1)[1] if ":" in channel else ""
    try:
        found = await board(conn, slug, principal)
    except PermissionError:
        return None
    if found is None:
        raise LookupError(channel)
    return {"type": "leaderboard", **found}


async def _submissions_snapshot(conn: asyncpg.Connection, principal: Principal | None,
                                 channel: str) -> Message | None:
    if principal is None:
        return None
    team_id = principal.team_id if principal.role is Role.TEAM else None
    rows = await fetch_submissions(conn, team_id=team_id, limit=200)
    now = await conn.fetchval("SELECT podium_now()")
    return {"type": "submissions", "submissions": [submission_json(r, principal) for r in rows],
            "server_time": iso(now)}


async def _clock_snapshot(conn: asyncpg.Connection, principal: Principal | None,
                          channel: str) -> Message:
    now, challenges = await challenges_for(conn, principal)
    timezone = await conn.fetchval("SELECT timezone FROM event")
    return {"type": "clock", "challenges": challenges, "server_time": iso(now),
            "timezone": timezone}
