"""The hub (server/hub.py): subscribe gives a snapshot or a refusal naming the channel; a
broadcast reads one snapshot per audience and never sends an older version after a newer one;
a bounded queue per viewer, so one that stops reading is told to resync and never holds back
the others. Toy channels registered on the real app's hub, real websocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import Counter
from typing import Any

import asyncpg
import pytest

from server.access import Principal, Role
from server.event import parse_event
from server.hub import Channel, ForbiddenChannel, Hub, Message, carry_on
from server.keys import HUB
from tests.helpers import AppServer, run
from tests.test_leaderboard import NODULES, next_of, subscribe, ws_connect


class Tally:
    """A toy channel: its snapshot is a version number, read from PostgreSQL as a real one
    would be, padded to `pad` characters; anonymous viewers may not see it."""

    def __init__(self, pad: int = 0) -> None:
        self.seq = 0
        self.pad = "x" * pad
        self.reads: Counter[object] = Counter()
        # When set: a read stops after taking its version, until `gate` opens (`entered` tells).
        self.gate: asyncio.Event | None = None
        self.entered: asyncio.Event | None = None

    async def snapshot(self, conn: asyncpg.Connection, principal: Principal | None,
                       channel: str) -> Message:
        if principal is None:
            raise ForbiddenChannel(channel)
        self.reads[principal.role] += 1
        seq = await conn.fetchval("SELECT $1::int", self.seq)
        if self.gate is not None and self.entered is not None:
            self.entered.set()
            await self.gate.wait()
        return {"type": "tally", "seq": seq, "role": str(principal.role), "pad": self.pad}


def register(server: AppServer, tally: Tally, **options: Any) -> Hub:
    hub: Hub = server.app[HUB]

    async def on_its_loop() -> None:
        hub.register(Channel("tally", tally.snapshot, by_role, **options))

    server.call(on_its_loop())
    return hub


def broadcast(server: AppServer, hub: Hub, tally: Tally, *seqs: int,
              name: str = "tally") -> None:
    async def on_its_loop() -> None:
        for seq in seqs:
            tally.seq = seq
            await hub.broadcast(name)

    server.call(on_its_loop())


def by_role(principal: Principal | None) -> object:
    return principal.role if principal else None


def stuck_viewer(server: AppServer, token: str, channels: list[str],
                 receive_buffer: int | None = 4096) -> socket.socket:
    """A raw websocket that subscribes and then never reads: its socket buffers fill up (the
    smaller its receive buffer, the sooner; and the slower it reads once it does)."""
    host, port = server.url.removeprefix("http://").split(":")
    stuck = socket.create_connection((host, int(port)))
    if receive_buffer is not None:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    stuck.sendall(
        (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
         ).encode())
    handshake = b""
    stuck.settimeout(30)
    while b"\r\n\r\n" not in handshake:
        handshake += stuck.recv(1)
    assert handshake.startswith(b"HTTP/1.1 101"), handshake
    payload = json.dumps({"type": "subscribe", "channels": channels}).encode()
    mask = b"\x01\x02\x03\x04"
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))
    stuck.sendall(frame)
    return stuck


def test_subscribing_gives_a_snapshot_or_a_refusal_that_names_the_channel(
        server: AppServer) -> None:
    tokens = server.tokens()
    register(server, Tally())
    with ws_connect(server, tokens["jury"]) as ws, ws_connect(server) as anonymous:
        snapshot, weather, tally_x = subscribe(ws, "tally", "weather", "tally:x")
        assert snapshot["type"] == "tally" and snapshot["seq"] == 0 and "server_time" in snapshot
        for refusal, name in ((weather, "weather"), (tally_x, "tally:x")):
            assert refusal["type"] == "error" and refusal["channel"] == name
            assert refusal["error"]["code"] == "unknown_channel"
            assert refusal["error"]["message"].startswith(f"no channel {name!r}; channels: ")
            assert "tally" in refusal["error"]["message"]
            assert "leaderboard:SLUG" in refusal["error"]["message"]
        (forbidden,) = subscribe(anonymous, "tally")
        assert forbidden == {"type": "error", "channel": "tally",
                             "error": {"code": "forbidden",
                                       "message": "your token may not see 'tally'"},
                             "server_time": forbidden["server_time"]}


def test_a_broadcast_reads_one_snapshot_per_audience_and_never_goes_back(
        server: AppServer) -> None:
    tokens = server.tokens()
    tally = Tally()
    hub = register(server, tally)
    event = parse_event(server.event)
    teams = [tokens[t.name] for t in event.teams]
    with contextlib.ExitStack() as stack:
        viewers = [stack.enter_context(ws_connect(server, token))
                   for token in [tokens["jury"], tokens["jury"], *teams]]
        for ws in viewers:
            subscribe(ws, "tally")
        tally.reads.clear()
        broadcast(server, hub, tally, 5)
        # Two audiences (the jury, the teams), however many viewers: two reads.
        assert tally.reads == Counter({Role.JURY: 1, Role.TEAM: 1})
        for ws, token in zip(viewers, [tokens["jury"], tokens["jury"], *teams], strict=True):
            message = next_of(ws, "tally")
            assert message["seq"] == 5
            assert message["role"] == ("jury" if token == tokens["jury"] else "team")
        # An older version announced late (announcements are handled concurrently) is not
        # sent after a newer one: the next message is the next version.
        broadcast(server, hub, tally, 4, 5, 6)
        for ws in viewers:
            assert next_of(ws, "tally")["seq"] == 6


def test_a_change_broadcast_while_a_snapshot_is_read_is_not_lost(server: AppServer) -> None:
    tally = Tally()
    hub = register(server, tally)

    async def close_the_gate() -> None:
        tally.gate, tally.entered = asyncio.Event(), asyncio.Event()

    async def entered() -> None:
        assert tally.entered is not None
        await asyncio.wait_for(tally.entered.wait(), 30)

    async def open_the_gate() -> None:
        assert tally.gate is not None
        tally.gate.set()

    server.call(close_the_gate())
    with ws_connect(server, server.tokens()["jury"]) as ws:
        ws.send(json.dumps({"type": "subscribe", "channels": ["tally"]}))
        server.call(entered())  # its snapshot has read version 0 and not been sent yet
        broadcast(server, hub, tally, 1)  # version 1, broadcast before it is subscribed
        server.call(open_the_gate())
        assert next_of(ws, "tally")["seq"] == 0
        assert next_of(ws, "tally")["seq"] == 1


def test_a_viewer_that_stops_reading_is_told_to_resync_while_the_others_get_everything(
        server: AppServer) -> None:
    tokens = server.tokens()
    tally = Tally(pad=60_000)
    hub = register(server, tally)
    stuck = stuck_viewer(server, tokens["jury"], ["tally"], receive_buffer=None)
    try:
        with ws_connect(server, tokens["jury"]) as ws:
            subscribe(ws, "tally")
            # 400 messages of 60 KB: far more than the stuck viewer's socket buffers (a few
            # MB) and its queue of 64 hold. The reader gets each one as soon as it is sent.
            for seq in range(1, 401):
                broadcast(server, hub, tally, seq)
                assert next_of(ws, "tally")["seq"] == seq
        # Now it reads (before the server drops it for answering no ping, after 22 s): what
        # was in the buffers, then the resync that replaced the rest.
        seen = b""
        while b'"type": "resync"' not in seen:
            chunk = stuck.recv(1 << 20)
            assert chunk, "the stuck viewer's connection closed without a resync"
            seen = seen[-100:] + chunk
    finally:
        stuck.close()


def test_a_viewer_that_stops_reading_does_not_block_the_others(server: AppServer) -> None:
    tokens = server.tokens()
    server.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
    stuck = stuck_viewer(server, tokens["jury"], ["leaderboard:nodules", "clock"])
    try:
        with ws_connect(server, tokens["jury"]) as ws:
            subscribe(ws, "leaderboard:nodules")
            # Many board changes: each extension is a clock change, each upload two board
            # changes; the stuck viewer's queue overflows while this one keeps up.
            for _ in range(40):
                server.json("POST", "/api/v1/challenges/nodules/extend", tokens["organizer"],
                            {"seconds": 1})
            server.upload("nodules", tokens["Lumbar Lab"], "a.csv", NODULES)
            # Within next_of's timeout: the stuck viewer never holds this one back.
            message = next_of(ws, "leaderboard", timeout=60)
            assert message["challenge"] == "nodules"
    finally:
        stuck.close()


def test_a_coroutine_begun_outside_a_task_is_carried_on_inside_one() -> None:
    async def scenario() -> None:
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def send() -> str:
            return "sent after " + await ready

        coro = send()
        waiting = coro.send(None)  # it stops at `ready`, as a send waiting for a drain would
        assert waiting is ready
        task = asyncio.create_task(carry_on(coro, waiting))
        ready.set_result("the drain")
        assert await task == "sent after the drain"

        blocked: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        cancelled = False

        async def waits() -> None:
            nonlocal cancelled
            try:
                await blocked
            except asyncio.CancelledError:
                cancelled = True
                raise

        coro2 = waits()
        task = asyncio.create_task(carry_on(coro2, coro2.send(None)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cancelled  # the cancellation reached the coroutine itself

    run(scenario())
