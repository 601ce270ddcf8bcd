"""The part floods of issue 12, against `podium serve` on loopback: a hostile team's upload
of ~195,000 tiny form parts (10 MB, Content-Length) or 300,000 chunked ones must not stall the
event loop: another team's upload sent meanwhile is accepted and small requests from other
connections keep being answered (each within its client's timeout: a stalled loop fails them).
How fast they are answered, against the idle server, is measured by bench/flood.py, not here.
And a client that vanishes mid-upload is one log line."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.edge import address, connect, get, quiet_server, start
from tests.helpers import EXAMPLE_DIR, ServerProcess, wait_for

pytestmark = pytest.mark.slow

NODULES = (EXAMPLE_DIR / "submissions" / "nodules-nodule-hunters.csv").read_bytes()
BOUNDARY = "pf"


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


def probe_while(server: ServerProcess, busy: threading.Thread) -> int:
    """Small requests on fresh connections while `busy` runs, each answered within `get`'s
    timeout; how many were answered."""
    answered = 0
    while True:
        status, _, _ = get(server, "/api/v1/time")
        assert status == 200
        answered += 1
        if not busy.is_alive():
            return answered
        time.sleep(0.05)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_flood_of_tiny_parts_never_stalls_the_loop(example_event: Path, database_url: str,
                                                     tmp_path: Path, chunked: bool) -> None:
    server = quiet_server(example_event, database_url, tmp_path)
    try:
        flood_while_a_team_uploads(server, chunked)
    finally:
        server.stop()


def flood_while_a_team_uploads(server: ServerProcess, chunked: bool) -> None:
    tokens = server.tokens()
    start(server, "nodules")
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
    answered = probe_while(server, attacker)
    attacker.join()

    assert honest[0] == 202, honest
    assert answered >= 1
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


def test_a_client_that_vanishes_mid_upload_is_one_log_line(example_event: Path,
                                                           database_url: str,
                                                           tmp_path: Path) -> None:
    server = quiet_server(example_event, database_url, tmp_path)
    try:
        vanish_mid_upload(server)
    finally:
        server.stop()


def vanish_mid_upload(server: ServerProcess) -> None:
    tokens = server.tokens()
    start(server, "nodules")
    head = file_part(b"")[:-len(f"\r\n--{BOUNDARY}--\r\n")]
    s = connect(server, "127.0.0.1")
    s.sendall((f"POST /api/v1/challenges/nodules/submissions HTTP/1.1\r\nHost: podium\r\n"
               f"Authorization: Bearer {tokens['Lumbar Lab']}\r\n"
               f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
               f"Content-Length: 1000000\r\n\r\n").encode() + head + b"id,probability\n" * 500)
    parts = server.data_dir / "submissions"
    wait_for(lambda: list(parts.rglob(".*.part")), what="the server to start storing the file")
    s.close()
    deadline = time.monotonic() + 30
    while "dropped" not in server.stderr():
        assert time.monotonic() < deadline, server.stderr()[-3000:]
        time.sleep(0.1)
    # The drop is handled once its partial file is gone; only then is the log complete.
    wait_for(lambda: not list(parts.rglob("*.part")), what="the partial file to be removed")
    log = server.stderr()
    assert "Traceback" not in log and "internal_error" not in log
    assert len([line for line in log.splitlines() if "dropped" in line]) == 1
    assert not list((server.data_dir / "submissions").rglob("*.part"))
