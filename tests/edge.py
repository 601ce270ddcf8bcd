"""Helpers for the attacks on the HTTP edge (tests/test_intake_flood.py,
tests/test_connection.py): a quiet server, requests and sockets from chosen loopback
addresses (all of 127.0.0.0/8 reaches the server), waiting for the server to close them."""

from __future__ import annotations

import base64
import http.client
import os
import selectors
import socket
import time
from pathlib import Path

from tests.helpers import ServerProcess


def quiet_server(event: Path, database_url: str, tmp_path: Path, *flags: str) -> ServerProcess:
    """`podium serve` without scorers (nothing here is scored: less CPU taken from the test)."""
    return ServerProcess(event, tmp_path / "data", database_url,
                         extra_args=["--scoring-workers", "0", *flags]).start()


def address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def start(server: ServerProcess, slug: str) -> None:
    status, body = server.json("POST", f"/api/v1/challenges/{slug}/start",
                               server.tokens()["organizer"], {})
    assert status == 200, body


def get(server: ServerProcess, path: str, source: str = "127.0.0.1", timeout: float = 30
        ) -> tuple[int, bytes, float]:
    """One request on a fresh connection from `source`: (status, body, seconds taken)."""
    host, port = address(server)
    began = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read(), time.monotonic() - began
    finally:
        conn.close()


def settled(server: ServerProcess) -> None:
    """Waits (generously) until the loop-lag window holds no start-up work."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, body = server.json("GET", "/healthz")
        if body.get("loop_lag_ms", 0) < 50:
            return
        time.sleep(0.5)
    raise AssertionError(f"the server's loop never settled: {body}")


def wait_closed(sockets: list[socket.socket], timeout: float) -> dict[socket.socket, bytes]:
    """Reads every socket until the server closes it; what each received. Fails at timeout."""
    received = {s: b"" for s in sockets}
    selector = selectors.DefaultSelector()
    for s in sockets:
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    open_count = len(sockets)
    while open_count and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                data = b""
            if data:
                received[s] += data
                continue
            selector.unregister(s)
            open_count -= 1
    selector.close()
    assert open_count == 0, f"{open_count} of {len(sockets)} connections still open"
    return received


def connect(server: ServerProcess, source: str) -> socket.socket:
    return socket.create_connection(address(server), timeout=10, source_address=(source, 0))


def open_websocket(server: ServerProcess, source: str = "127.0.0.1") -> socket.socket:
    s = connect(server, source)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: podium\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


