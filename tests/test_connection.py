"""Connections against `podium serve` on loopback (issue 12): idle and half-sent sockets are
closed while other requests answer within 1 s; the keep-alive timeout; the caps on
connections in all and per address; the open-file limit."""

from __future__ import annotations

import json
import resource
import socket
import time
from pathlib import Path

import psutil
import pytest

import tests.helpers
from tests.edge import connect, get, open_websocket, quiet_server, wait_closed
from tests.helpers import ServerProcess

pytestmark = pytest.mark.slow


def test_idle_and_half_sent_connections_are_closed_while_others_are_served(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    server = quiet_server(example_event, database_url, tmp_path)
    try:
        half_sent_and_idle(server)
    finally:
        server.stop()


def half_sent_and_idle(server: ServerProcess) -> None:
    # 3,000 sockets from twelve addresses (each under the per-address limit): half send the
    # start of a request and stop, half send nothing.
    sockets: list[socket.socket] = []
    partial: list[socket.socket] = []
    try:
        for i in range(3000):
            s = connect(server, f"127.0.0.{2 + i % 12}")
            sockets.append(s)
            if i % 2:
                s.sendall(b"GET /api/v1/time HTTP/1.1\r\nHost: podium\r\nX-Slow: ")
                partial.append(s)
        for _ in range(5):
            status, _, _ = get(server, "/api/v1/time")
            assert status == 200  # answered within get()'s timeout: not stalled
        received = wait_closed(sockets, timeout=60)
        assert all(received[s].startswith(b"HTTP/1.1 408") for s in partial)
    finally:
        for s in sockets:
            s.close()
    _, health = server.json("GET", "/healthz")
    assert health["connections"]["header_timeouts"] >= 3000


def test_an_idle_keep_alive_connection_is_closed(example_event: Path, database_url: str,
                                                 tmp_path: Path) -> None:
    server = ServerProcess(example_event, tmp_path / "data", database_url,
                           extra_args=["--scoring-workers", "0", "--keepalive-timeout", "2"]
                           ).start()
    try:
        s = connect(server, "127.0.0.1")
        s.sendall(b"GET /api/v1/time HTTP/1.1\r\nHost: podium\r\n\r\n")
        received = wait_closed([s], timeout=30)
        assert received[s].startswith(b"HTTP/1.1 200")
        s.close()
    finally:
        server.stop()


def test_beyond_the_connection_cap_idle_ones_make_room_and_busy_ones_are_refused(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    server = ServerProcess(example_event, tmp_path / "data", database_url,
                           extra_args=["--scoring-workers", "0", "--max-connections", "30",
                                       "--max-connections-per-client", "0"]).start()
    held: list[socket.socket] = []
    try:
        # Idle sockets fill the cap: a request still gets in, the oldest idle one goes.
        held = [connect(server, "127.0.0.2") for _ in range(30)]
        status, _, _ = get(server, "/api/v1/time")
        assert status == 200  # answered within get()'s timeout: not stalled
        wait_closed(held[:1], timeout=30)
        for s in held:
            s.close()
        # Thirty live websockets (busy until they end): the next connection is refused at
        # once with a small 503, and served again as soon as one ends.
        deadline = time.monotonic() + 30
        while server.json("GET", "/healthz")[1]["connections"]["open"] > 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        held = [open_websocket(server) for _ in range(30)]
        status, body, took = get(server, "/api/v1/time")
        assert status == 503 and json.loads(body)["error"]["code"] == "too_many_connections"
        held.pop().close()
        deadline = time.monotonic() + 30
        while get(server, "/api/v1/time")[0] != 200:
            assert time.monotonic() < deadline, "still refused after a websocket ended"
            time.sleep(0.1)
    finally:
        for s in held:
            s.close()
        server.stop()


def test_one_address_cannot_take_every_connection(example_event: Path, database_url: str,
                                                  tmp_path: Path) -> None:
    server = ServerProcess(example_event, tmp_path / "data", database_url,
                           extra_args=["--scoring-workers", "0",
                                       "--max-connections-per-client", "20"]).start()
    held: list[socket.socket] = []
    try:
        held = [open_websocket(server, "127.0.0.2") for _ in range(20)]
        status, body, _ = get(server, "/api/v1/time", source="127.0.0.2")
        assert status == 503 and json.loads(body)["error"]["code"] == "too_many_connections"
        status, _, _ = get(server, "/api/v1/time", source="127.0.0.1")
        assert status == 200  # answered within get()'s timeout: not stalled
    finally:
        for s in held:
            s.close()
        server.stop()


def test_at_a_1024_descriptor_limit_1100_idle_sockets_change_nothing(
        example_event: Path, database_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tests.helpers, "PODIUM",
                        ["prlimit", "--nofile=1024:1024", *tests.helpers.PODIUM])
    server = ServerProcess(example_event, tmp_path / "data", database_url,
                           extra_args=["--scoring-workers", "0"]).start()
    sockets: list[socket.socket] = []
    try:
        assert server.process is not None
        assert psutil.Process(server.process.pid).rlimit(psutil.RLIMIT_NOFILE) == (1024, 1024)
        log_before = len(server.stderr())
        # 1,100 idle sockets from five addresses, then requests from a sixth.
        sockets = [connect(server, f"127.0.0.{2 + i % 5}") for i in range(1100)]
        for _ in range(5):
            status, _, _ = get(server, "/api/v1/time")
            assert status == 200  # answered within get()'s timeout: not stalled
        _, health = server.json("GET", "/healthz")
        assert health["connections"]["max"] < 500 and health["connections"]["evicted"] >= 600
        grown = len(server.stderr()) - log_before
        assert grown < 100_000, f"the log grew by {grown} bytes"
        assert "Too many open files" not in server.stderr()
    finally:
        for s in sockets:
            s.close()
        server.stop()


def test_the_descriptor_limit_is_raised_to_the_hard_limit(example_event: Path,
                                                          database_url: str,
                                                          tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 1024:
        pytest.skip(f"the hard open-file limit here is {hard}: nothing to raise to")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        server = ServerProcess(example_event, tmp_path / "data", database_url,
                               extra_args=["--scoring-workers", "0"]).start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert server.process is not None
        assert psutil.Process(server.process.pid).rlimit(psutil.RLIMIT_NOFILE) == (hard, hard)
    finally:
        server.stop()


