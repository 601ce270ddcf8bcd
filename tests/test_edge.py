"""Attacks on the HTTP edge, run against `podium serve` on loopback: part floods, idle and
half-sent connections, too many connections, a client that vanishes mid-upload. Other teams'
requests must keep answering while each attack runs."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import resource
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import tests.conftest
from tests.conftest import EXAMPLE_DIR, ServerProcess

pytestmark = pytest.mark.slow

NODULES = (EXAMPLE_DIR / "submissions" / "nodules-nodule-hunters.csv").read_bytes()
BOUNDARY = "pf"


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


def tiny_parts(count: int) -> Iterator[bytes]:
    part = f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\r\n".encode()
    for _ in range(count):
        yield part


def file_part(content: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"p.csv\"\r\n\r\n").encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def post_flood(server: ServerProcess, token: str, body: bytes | Iterator[bytes],
               chunked: bool) -> tuple[int, Any]:
    host, port = address(server)
    conn = http.client.HTTPConnection(host, port, timeout=120)
    headers = {"Authorization": f"Bearer {token}",
               "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    try:
        conn.request("POST", "/api/v1/challenges/nodules/submissions", body=body,
                     headers=headers, encode_chunked=chunked)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def probe_while(server: ServerProcess, busy: threading.Thread) -> float:
    """Times small requests on fresh connections while `busy` runs; the slowest one."""
    slowest = 0.0
    while True:
        status, _, took = get(server, "/api/v1/time")
        assert status == 200
        slowest = max(slowest, took)
        if not busy.is_alive():
            return slowest
        time.sleep(0.05)


@pytest.fixture
def quiet_server(example_event: Path, database_url: str, tmp_path: Path
                 ) -> Iterator[ServerProcess]:
    proc = ServerProcess(example_event, tmp_path / "data", database_url,
                         extra_args=["--scoring-workers", "0"]).start()
    yield proc
    proc.stop()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_flood_of_tiny_parts_never_stalls_the_loop(quiet_server: ServerProcess,
                                                     chunked: bool) -> None:
    server = quiet_server
    tokens = server.tokens()
    start(server, "nodules")
    settled(server)
    # ~195,000 parts in 10 MB with a Content-Length, or 300,000 chunked (no length at all).
    count = 300_000 if chunked else 195_000
    if chunked:
        flood: bytes | Iterator[bytes] = (b"".join(batch) for batch in
                                          _batches(tiny_parts(count), 1000))
    else:
        flood = b"".join(tiny_parts(count)) + file_part(NODULES)
        assert len(flood) < 10 * 1024 * 1024
    result: dict[str, Any] = {}

    def attack() -> None:
        with contextlib.suppress(ConnectionError):  # refused early, it may be cut off
            result["answer"] = post_flood(server, tokens["Lumbar Lab"], flood, chunked)

    attacker = threading.Thread(target=attack)
    attacker.start()
    honest = server.upload("nodules", tokens["Nodule Hunters"], "p.csv", NODULES)
    slowest = probe_while(server, attacker)
    attacker.join()

    assert honest[0] == 202, honest
    assert slowest < 1.0, f"a small request took {slowest:.1f} s during the flood"
    _, health = server.json("GET", "/healthz")
    assert health["loop_lag_ms"] < 100, health
    if "answer" in result:
        status, body = result["answer"]
        assert (status, body["error"]["code"]) == (400, "bad_upload")
        assert "at most 16 are allowed" in body["error"]["message"]
    _, listed = server.json("GET", "/api/v1/challenges/nodules/submissions", tokens["jury"])
    assert [s["team"] for s in listed] == ["Nodule Hunters"]


def _batches(parts: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for part in parts:
        batch.append(part)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


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


def test_idle_and_half_sent_connections_are_closed_while_others_are_served(
        quiet_server: ServerProcess) -> None:
    server = quiet_server
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
            status, _, took = get(server, "/api/v1/time")
            assert status == 200 and took < 1.0, f"a request took {took:.2f} s"
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


def test_beyond_the_connection_cap_idle_ones_make_room_and_busy_ones_are_refused(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    server = ServerProcess(example_event, tmp_path / "data", database_url,
                           extra_args=["--scoring-workers", "0", "--max-connections", "30",
                                       "--max-connections-per-client", "0"]).start()
    held: list[socket.socket] = []
    try:
        # Idle sockets fill the cap: a request still gets in, the oldest idle one goes.
        held = [connect(server, "127.0.0.2") for _ in range(30)]
        status, _, took = get(server, "/api/v1/time")
        assert status == 200 and took < 1.0
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
        status, _, took = get(server, "/api/v1/time", source="127.0.0.1")
        assert status == 200 and took < 1.0
    finally:
        for s in held:
            s.close()
        server.stop()


def test_at_a_1024_descriptor_limit_1100_idle_sockets_change_nothing(
        example_event: Path, database_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tests.conftest, "PODIUM",
                        ["prlimit", "--nofile=1024:1024", *tests.conftest.PODIUM])
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
            status, _, took = get(server, "/api/v1/time")
            assert status == 200 and took < 1.0, f"a request took {took:.2f} s"
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


def test_a_client_that_vanishes_mid_upload_is_one_log_line(quiet_server: ServerProcess
                                                           ) -> None:
    server = quiet_server
    tokens = server.tokens()
    start(server, "nodules")
    head = file_part(b"")[:-len(f"\r\n--{BOUNDARY}--\r\n")]
    s = connect(server, "127.0.0.1")
    s.sendall((f"POST /api/v1/challenges/nodules/submissions HTTP/1.1\r\nHost: podium\r\n"
               f"Authorization: Bearer {tokens['Lumbar Lab']}\r\n"
               f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
               f"Content-Length: 1000000\r\n\r\n").encode() + head + b"id,probability\n" * 500)
    time.sleep(0.5)  # let the server start storing the file
    s.close()
    deadline = time.monotonic() + 30
    while "dropped" not in server.stderr():
        assert time.monotonic() < deadline, server.stderr()[-3000:]
        time.sleep(0.1)
    time.sleep(0.5)
    log = server.stderr()
    assert "Traceback" not in log and "internal_error" not in log
    assert len([line for line in log.splitlines() if "dropped" in line]) == 1
    assert not list((server.data_dir / "submissions").rglob("*.part"))
