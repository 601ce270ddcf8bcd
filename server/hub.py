"""The websocket hub (docs/architecture.md, "Live updates"): viewers, their subscriptions, and
the fan-out of each message to them.

The hub knows no domain: the app registers each channel (server/channels.py) with a snapshot
function and says which viewers see the same thing (its audience). A broadcast computes a
channel's snapshot once per audience and serialises it once; each viewer is then one write.

Delivery never waits for a viewer: a message is written to the socket at once when the
viewer's socket has nothing pending; otherwise it joins the viewer's bounded queue, drained by
a task of its own. When that queue overflows it is emptied and the viewer is told to resubscribe
(`resync`): a slow or dead viewer never delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import WSMsgType, web

from server.access import Principal
from server.isotime import iso

log = logging.getLogger(__name__)

QUEUE_SIZE = 64
HEARTBEAT_S = 15.0

Message = dict[str, Any]
# A channel's snapshot for one viewer; raises a `Refused` when there is nothing to show them.
Snapshot = Callable[[asyncpg.Connection, Principal | None, str], Awaitable[Message]]
# Viewers whose keys are equal are shown the same snapshot of a channel.
Audience = Callable[[Principal | None], Hashable]


def by_principal(principal: Principal | None) -> Hashable:
    return (principal.role, principal.team_id) if principal else None


class Refused(Exception):
    """A subscription refused; sent to the viewer as an `error` message naming the channel."""

    code = "refused"

    def __init__(self, channel: str, message: str) -> None:
        super().__init__(message)
        self.channel = channel
        self.message = message

    def to_message(self) -> Message:
        return {"type": "error", "error": {"code": self.code, "message": self.message},
                "channel": self.channel}


class UnknownChannel(Refused):
    code = "unknown_channel"


class ForbiddenChannel(Refused):
    code = "forbidden"

    def __init__(self, channel: str, message: str | None = None) -> None:
        super().__init__(channel, message or f"your token may not see {channel!r}")


@dataclass(frozen=True)
class Channel:
    """A family of channels: `name` alone ("clock"), or `name:VALUE` when it takes a
    `parameter` ("leaderboard:SLUG")."""

    name: str
    snapshot: Snapshot
    audience: Audience = by_principal
    parameter: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}:{self.parameter}" if self.parameter else self.name


class Viewer:
    """One websocket connection: what it subscribed to and what is on its way to it."""

    __slots__ = ("ws", "principal", "channels", "seen_seq", "dropped", "_transport", "_queue",
                 "_sender", "_gone")

    def __init__(self, ws: web.WebSocketResponse, principal: Principal | None,
                 transport: asyncio.BaseTransport | None = None) -> None:
        self.ws = ws
        self.principal = principal
        self.channels: set[str] = set()
        # The newest board version sent per channel: announcements handled out of order never
        # send a viewer an older board after a newer one.
        self.seen_seq: dict[str, int] = {}
        self.dropped = 0
        self._transport = transport if isinstance(transport, asyncio.WriteTransport) else None
        self._queue: deque[bytes] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._gone = False

    def offer(self, data: bytes) -> None:
        """Sends one serialised message, now if the socket can take it, else queued."""
        if self._gone:
            return
        if self._sender is None and not self._queue and self._idle():
            self._write_now(data)
            return
        if len(self._queue) >= QUEUE_SIZE:
            # Never wait for a slow viewer: drop what it has not read, ask it to resubscribe.
            self._queue.clear()
            self.dropped += 1
            data = _encode({"type": "resync", "channels": sorted(self.channels),
                            "message": "you fell behind; subscribe again for a fresh snapshot"})
        self._queue.append(data)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._drain())

    def _idle(self) -> bool:
        # Nothing buffered: the frame goes straight to the kernel, and aiohttp's writer has no
        # reason to wait for the socket to drain.
        transport = self._transport
        return (transport is not None and not transport.is_closing()
                and transport.get_write_buffer_size() == 0)

    def _write_now(self, data: bytes) -> None:
        """The write without a task per message: aiohttp's uncompressed `send_frame` writes
        before its first (and only) possible wait, for flow control, which an idle socket
        never reaches. Should it wait after all, a task carries it on and later messages
        queue behind it."""
        coro = self.ws.send_frame(data, WSMsgType.TEXT)
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        except Exception:  # closed under us (or worse): the websocket handler ends it
            self._gone = True
            return
        self._sender = asyncio.get_running_loop().create_task(self._drain(coro, waiting))

    async def _drain(self, started: Coroutine[Any, Any, None] | None = None,
                     waiting: Any = None) -> None:
        try:
            if started is not None:
                await carry_on(started, waiting)
            while self._queue:
                await self.ws.send_frame(self._queue.popleft(), WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):  # closed under us: the handler ends it
            self._gone = True
        except Exception:
            self._gone = True
            log.exception("sending to a viewer failed")
        finally:
            self._sender = None

    async def close(self) -> None:
        self._gone = True
        self._queue.clear()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._sender


async def carry_on(coro: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    """Finishes, inside the calling task, a coroutine that was started outside any task and
    suspended on `waiting` (what its `send(None)` yielded: a future, or None for a bare yield)."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                await asyncio.wait([waiting])
        except asyncio.CancelledError as exc:
            try:
                waiting = coro.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            waiting = coro.send(None)
        except StopIteration as done:
            return done.value


class Hub:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._channels: dict[str, Channel] = {}
        self._viewers: set[Viewer] = set()
        self._subscribers: dict[str, set[Viewer]] = {}
        # Broadcasts begun per channel: a subscription whose snapshot was being read while one
        # began may hold the state from before the change, and reads it again.
        self._broadcasts: dict[str, int] = {}

    def register(self, channel: Channel) -> None:
        self._channels[channel.name] = channel

    @property
    def labels(self) -> list[str]:
        """The channels one may subscribe to, as a client writes them."""
        return [c.label for c in self._channels.values()]

    def _channel(self, name: str) -> Channel:
        family, colon, value = name.partition(":")
        channel = self._channels.get(family)
        if channel is None or bool(channel.parameter) != bool(colon and value):
            raise UnknownChannel(name, f"no channel {name!r}; channels: "
                                 + ", ".join(self.labels))
        return channel

    # -- viewers ------------------------------------------------------------------------------

    def join(self, ws: web.WebSocketResponse, principal: Principal | None,
             transport: asyncio.BaseTransport | None = None) -> Viewer:
        viewer = Viewer(ws, principal, transport)
        self._viewers.add(viewer)
        return viewer

    async def leave(self, viewer: Viewer) -> None:
        self._viewers.discard(viewer)
        for name in viewer.channels:
            subscribers = self._subscribers.get(name)
            if subscribers is not None:
                subscribers.discard(viewer)
                if not subscribers:
                    del self._subscribers[name]
        await viewer.close()

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    def send(self, viewer: Viewer, message: Message) -> None:
        viewer.offer(_encode(message))

    async def subscribe(self, viewer: Viewer, name: str) -> None:
        """Sends `name`'s snapshot to the viewer, then every change; raises `Refused`."""
        channel = self._channel(name)
        async with self.pool.acquire() as conn:
            began = self._broadcasts.get(name, 0)
            snapshot = await channel.snapshot(conn, viewer.principal, name)
            if viewer not in self._viewers:
                return  # gone meanwhile
            self._send_snapshot(viewer, name, snapshot, again=False)
            viewer.channels.add(name)
            self._subscribers.setdefault(name, set()).add(viewer)
            if self._broadcasts.get(name, 0) != began:
                # A change announced while the snapshot was read may have been broadcast
                # before the viewer was subscribed, and be missing from the snapshot: read
                # again. Every later broadcast includes the viewer.
                snapshot = await channel.snapshot(conn, viewer.principal, name)
                if viewer in self._viewers:
                    self._send_snapshot(viewer, name, snapshot, again=True)

    @staticmethod
    def _send_snapshot(viewer: Viewer, name: str, snapshot: Message, *, again: bool) -> None:
        # A versioned snapshot never takes a viewer back to an older version; the answer to a
        # subscribe repeats the version it has, a second read does not.
        seq, seen = snapshot.get("seq"), viewer.seen_seq.get(name, -1)
        if isinstance(seq, int):
            if seq < seen or (again and seq == seen):
                return
            viewer.seen_seq[name] = seq
        viewer.offer(_encode(snapshot))

    # -- fan-out ------------------------------------------------------------------------------

    def _audiences(self, name: str) -> tuple[Channel, dict[Hashable, list[Viewer]]] | None:
        subscribers = self._subscribers.get(name)
        if not subscribers:
            return None
        channel = self._channel(name)
        groups: dict[Hashable, list[Viewer]] = {}
        for viewer in subscribers:
            groups.setdefault(channel.audience(viewer.principal), []).append(viewer)
        return channel, groups

    async def broadcast(self, name: str) -> None:
        """Sends `name`'s fresh snapshot to every subscriber: computed once per audience,
        serialised once, and each audience served before the next one's snapshot is read."""
        self._broadcasts[name] = self._broadcasts.get(name, 0) + 1
        found = self._audiences(name)
        if found is None:
            return
        channel, groups = found
        async with self.pool.acquire() as conn:
            for viewers in groups.values():
                try:
                    message = await channel.snapshot(conn, viewers[0].principal, name)
                except Refused:
                    continue
                data = _encode(message)
                seq = message.get("seq")
                for viewer in viewers:
                    if isinstance(seq, int):
                        if seq <= viewer.seen_seq.get(name, -1):
                            continue
                        viewer.seen_seq[name] = seq
                    viewer.offer(data)

    def publish(self, name: str, message_for: Callable[[Principal | None], Message | None]
                ) -> None:
        """Sends a message made for each audience (None: not for them) to `name`'s viewers."""
        self._broadcasts[name] = self._broadcasts.get(name, 0) + 1
        found = self._audiences(name)
        if found is None:
            return
        for viewers in found[1].values():
            message = message_for(viewers[0].principal)
            if message is not None:
                data = _encode(message)
                for viewer in viewers:
                    viewer.offer(data)

    async def refresh(self) -> None:
        """Fresh snapshots of every watched channel (after LISTEN reconnected)."""
        for name in list(self._subscribers):
            await self.broadcast(name)

    async def close_all(self) -> None:
        for viewer in list(self._viewers):
            with contextlib.suppress(Exception):
                await viewer.ws.close(code=1001, message=b"server shutting down")


def _encode(message: Message) -> bytes:
    """A message as sent: every message carries the server's time."""
    if "server_time" not in message:
        message = {**message, "server_time": iso(datetime.now(UTC))}
    return json.dumps(message).encode()
