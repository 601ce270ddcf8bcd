"""The embedded server's connections: what no proxy in front does for it.

aiohttp keeps a connection that never finishes its headers until the keep-alive timer fires,
and accepts sockets until the process runs out of descriptors, at which point every request
fails. The guard wraps each connection's protocol:

- headers must be complete `header_timeout_s` after a connection opens or after the first byte
  of the next request on it (slowloris); a partial request gets a 408, a silent one is closed;
- at most `max_connections` are open, and at most `per_client` from one address. At either
  limit the oldest connection with no request in progress is closed to make room (an idle
  socket costs its owner nothing to reopen); when every one is busy, the new one gets a
  fixed 503 and is closed before a byte of it is read.

A connection is busy from the moment its request reaches the application (the middleware
below) until the task answering it ends, response body included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

log = logging.getLogger(__name__)

# Descriptors kept for everything that is not a client socket (the database pool, files being
# uploaded or served, scorer pipes, logs) and for a turn's accepts beyond the cap.
RESERVED_DESCRIPTORS = 256
DEFAULT_MAX_CONNECTIONS = 4096


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    per_client: int = 256  # 0: no per-address limit (behind a proxy every client is the proxy)
    header_timeout_s: float = 10.0


def raise_descriptor_limit() -> int:
    """Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target,
                        exc)
    return soft


def default_max_connections(descriptors: int | None = None) -> int:
    """A connection may hold a socket and a file (a download): two descriptors each."""
    if descriptors is None:
        descriptors = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(32, min(DEFAULT_MAX_CONNECTIONS, (descriptors - RESERVED_DESCRIPTORS) // 2))


# asyncio accepts up to `backlog` sockets per loop turn before any of them is looked at, so that
# number is also how far past the connection cap the descriptors can go for a moment; the
# kernel's queue of connections waiting to be accepted is made deeper on its own, so a burst
# waits there instead of having its SYNs dropped (a dropped SYN costs a client 1 s).
ACCEPTS_PER_TURN = 128
LISTEN_QUEUE = 4096


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through the guard."""

    __slots__ = ("_host", "_port", "_guard")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard
                 ) -> None:
        super().__init__(runner, backlog=ACCEPTS_PER_TURN)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.protocol_factory(server), self._host, self._port,
            backlog=self._backlog, reuse_address=True)
        for listening in self._server.sockets:
            # listen() again on a duplicate of the descriptor: same socket, deeper queue.
            with socket.fromfd(listening.fileno(), listening.family, listening.type) as dup:
                dup.listen(LISTEN_QUEUE)


def _refusal(status: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
            ).encode() + body


BUSY = _refusal("503 Service Unavailable", "too_many_connections",
                "the server has too many open connections; try again in a moment")
HEADERS_TOO_SLOW = _refusal("408 Request Timeout", "header_timeout",
                            "the request's headers took too long to arrive")


@dataclass
class _Client:
    count: int = 0
    idle: dict[Connection, None] = field(default_factory=dict)


class ConnectionGuard:
    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open = 0
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0
        # Insertion-ordered: the first idle connection is the one idle the longest.
        self._idle: dict[Connection, None] = {}
        self._clients: dict[str, _Client] = {}
        self._by_transport: dict[asyncio.BaseTransport, Connection] = {}

    def protocol_factory(self, make: Callable[[], asyncio.Protocol]
                         ) -> Callable[[], asyncio.Protocol]:
        return lambda: Connection(self, make)

    # -- called by connections ---------------------------------------------------------------

    def admit(self, connection: Connection) -> bool:
        client = self._clients.setdefault(connection.client, _Client())
        per_client = self.limits.per_client
        if per_client and client.count >= per_client and not self._evict(client.idle):
            return self._refuse(connection, client)
        if self.open >= self.limits.max_connections and not self._evict(self._idle):
            return self._refuse(connection, client)
        client.count += 1
        self.open += 1
        connection.admitted = True
        self._by_transport[connection.transport_] = connection
        return True

    def _refuse(self, connection: Connection, client: _Client) -> bool:
        self.refused += 1
        if not client.count:
            self._clients.pop(connection.client, None)
        return False

    def _evict(self, idle: dict[Connection, None]) -> bool:
        if not idle:
            return False
        oldest = next(iter(idle))
        self.evicted += 1
        # Counted out now: its socket closes on the loop's next turn.
        self.release(oldest)
        oldest.close()
        return True

    def mark_idle(self, connection: Connection) -> None:
        if connection.admitted:
            self._idle[connection] = None
            self._clients[connection.client].idle[connection] = None

    def mark_busy(self, connection: Connection) -> None:
        if connection.admitted:
            self._idle.pop(connection, None)
            self._clients[connection.client].idle.pop(connection, None)

    def release(self, connection: Connection) -> None:
        """Counts a connection out (once), when it closes or is chosen to close."""
        if not connection.admitted:
            return
        self.mark_busy(connection)
        connection.admitted = False
        self._by_transport.pop(connection.transport_, None)
        self.open -= 1
        client = self._clients[connection.client]
        client.count -= 1
        if not client.count:
            del self._clients[connection.client]

    # -- called for each request -------------------------------------------------------------

    def request_started(self, request: web.BaseRequest) -> None:
        transport = request.transport
        connection = self._by_transport.get(transport) if transport is not None else None
        if connection is None:
            return
        connection.begin_request()
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _: connection.end_request())

    def close_all(self) -> None:
        """Closes every connection still open: at the app's cleanup, after the graceful
        shutdown let requests in flight finish, none outlives the server."""
        for connection in list(self._by_transport.values()):
            connection.close()

    def stats(self) -> dict[str, int]:
        return {"max": self.limits.max_connections, "open": self.open, "idle": len(self._idle),
                "refused": self.refused,
                "evicted": self.evicted, "header_timeouts": self.timed_out}


class Connection(asyncio.Protocol):
    """One client connection: aiohttp's protocol inside, the guard's timers around it."""

    def __init__(self, guard: ConnectionGuard, make: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._make = make
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self.client = ""
        self.admitted = False
        self._busy = False
        self._received = False  # bytes of the request being waited for have arrived
        self._timer: asyncio.TimerHandle | None = None

    @property
    def transport_(self) -> asyncio.BaseTransport:
        assert self._transport is not None
        return self._transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer: Any = transport.get_extra_info("peername")
        self.client = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        if not self._guard.admit(self):
            transport.write(BUSY)
            transport.close()
            return
        self._inner = self._make()
        self._inner.connection_made(transport)
        self._wait_for_headers()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if not self._busy and not self._received:
            self._received = True
            self._wait_for_headers()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._inner is None:
            return
        self._guard.release(self)
        inner, self._inner = self._inner, None
        inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    # -- the guard's side --------------------------------------------------------------------

    def begin_request(self) -> None:
        self._busy = True
        self._cancel_timer()
        self._guard.mark_busy(self)

    def end_request(self) -> None:
        if self._inner is None:
            return
        self._busy = False
        self._received = False
        # Idle now: aiohttp's keep-alive timer closes it if nothing comes; the header timer
        # starts again with the next request's first byte.
        self._guard.mark_idle(self)

    def _wait_for_headers(self) -> None:
        self._cancel_timer()
        self._guard.mark_idle(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.limits.header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        self._timer = None
        if self._busy or self._transport is None:
            return
        self._guard.timed_out += 1
        if self._received:
            self._transport.write(HEADERS_TOO_SLOW)
        self._transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self._cancel_timer()
        if self._transport is not None:
            self._transport.close()


def connection_middleware(guard: ConnectionGuard) -> Middleware:
    @web.middleware
    async def mark_busy(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Marks the connection busy while its request is answered."""
        guard.request_started(request)
        return await handler(request)

    return mark_busy
