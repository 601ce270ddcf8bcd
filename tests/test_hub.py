"""The hub (server/hub.py): fan-out across server processes through LISTEN/NOTIFY, and a
bounded queue per viewer so that one that stops reading never holds back the others."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.helpers import AppServer, ServerProcess
from tests.test_leaderboard import NODULES, next_of, subscribe, ws_connect


@pytest.mark.slow  # two server processes
def test_two_processes_on_one_database_update_both_viewers(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    first = ServerProcess(example_event, tmp_path / "data", database_url).start()
    second = ServerProcess(example_event, tmp_path / "data", database_url,
                           extra_args=["--scoring-workers", "0"]).start()
    try:
        tokens = first.tokens()
        first.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
        with ws_connect(first, tokens["jury"]) as one, ws_connect(second, tokens["jury"]) as two:
            subscribe(one, "leaderboard:nodules")
            subscribe(two, "leaderboard:nodules")
            # Uploaded to the second (which does not score); scored by the first's workers.
            status, _ = second.upload("nodules", tokens["Lumbar Lab"], "a.csv", NODULES)
            assert status == 202
            for ws in (one, two):
                message = next_of(ws, "leaderboard")
                while message["rows"][0]["rank"] is None:
                    message = next_of(ws, "leaderboard")
                assert message["rows"][0]["team"] == "Lumbar Lab"
    finally:
        first.stop()
        second.stop()


def test_a_viewer_that_stops_reading_does_not_block_the_others(server: AppServer) -> None:
    tokens = server.tokens()
    server.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
    # A raw websocket that subscribes and then never reads: its socket buffers fill up.
    host, port = server.url.removeprefix("http://").split(":")
    stuck = socket.create_connection((host, int(port)))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(
        (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {tokens['jury']}\r\n\r\n"
         ).encode())
    handshake = b""
    stuck.settimeout(30)
    while b"\r\n\r\n" not in handshake:
        handshake += stuck.recv(1)
    assert handshake.startswith(b"HTTP/1.1 101"), handshake
    payload = json.dumps({"type": "subscribe",
                          "channels": ["leaderboard:nodules", "clock"]}).encode()
    mask = b"\x01\x02\x03\x04"
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))
    stuck.sendall(frame)
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
