"""The deadline the server enforces: 100 ms either side of it, the grace rule, and two server
processes on one database racing over it."""

from __future__ import annotations

import http.client
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import EXAMPLE_DIR, ServerProcess, set_challenge_keys

pytestmark = pytest.mark.slow

CSV = (EXAMPLE_DIR / "submissions" / "edss-myelin-minds.csv").read_bytes()
BOUNDARY = "deadline-test-boundary"


def parse(moment: str) -> float:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


def server_offset(server: ServerProcess) -> float:
    """Server clock minus local clock, in seconds (the shortest round trip of five)."""
    best = None
    for _ in range(5):
        t0 = time.time()
        _, body = server.json("GET", "/api/v1/time")
        t1 = time.time()
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, parse(body["server_time"]) - (t0 + t1) / 2)
    assert best is not None
    return best[1]


def sleep_until(server_moment: float, offset: float) -> None:
    time.sleep(max(0.0, server_moment - offset - time.time()))


def slow_upload(server: ServerProcess, slug: str, token: str, begin: float, finish: float,
                offset: float) -> tuple[int, Any]:
    """Sends the headers and half the body at `begin`, the rest at `finish` (server times)."""
    import json

    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"late.csv\"\r\n\r\n").encode() + CSV + f"\r\n--{BOUNDARY}--\r\n".encode()
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    sleep_until(begin, offset)
    conn.putrequest("POST", f"/api/v1/challenges/{slug}/submissions")
    conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    conn.send(body[: len(body) // 2])
    sleep_until(finish, offset)
    conn.send(body[len(body) // 2:])
    response = conn.getresponse()
    result = response.status, json.loads(response.read())
    conn.close()
    return result


def test_100_ms_either_side_and_the_grace(example_event: Path, database_url: str,
                                          tmp_path: Path) -> None:
    set_challenge_keys(example_event, "edss", duration_minutes=0.05, freeze_minutes=None,
                       upload_grace_seconds=1)
    server = ServerProcess(example_event, tmp_path / "data", database_url).start()
    try:
        tokens = server.tokens()
        offset = server_offset(server)
        _, challenge = server.json("POST", "/api/v1/challenges/edss/start", tokens["organizer"],
                                   {})
        deadline = parse(challenge["deadline"])
        results: dict[str, tuple[int, Any]] = {}

        def run(name: str, team: str, begin: float, finish: float) -> None:
            results[name] = slow_upload(server, "edss", tokens[team], begin, finish, offset)

        plan = {
            "100 ms before": ("Myelin Minds", deadline - 0.1, deadline - 0.1),
            "100 ms after": ("Pixel Anatomy", deadline + 0.1, deadline + 0.1),
            "began before, ends within the grace": ("Myelin Minds", deadline - 0.4,
                                                    deadline + 0.3),
            "began before, ends after the grace": ("Pixel Anatomy", deadline - 0.4,
                                                   deadline + 1.6),
        }
        threads = [threading.Thread(target=run, args=(name, *args)) for name, args in
                   plan.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results["100 ms before"][0] == 202, results["100 ms before"]
        assert results["began before, ends within the grace"][0] == 202
        for name in ("100 ms after", "began before, ends after the grace"):
            status, body = results[name]
            assert (status, body["error"]["code"]) == (403, "deadline_passed"), name
            assert parse(body["error"]["deadline"]) == deadline
            assert parse(body["error"]["server_time"]) > deadline
        accepted = [body for status, body in results.values() if status == 202]
        assert all(parse(b["received_at"]) <= deadline + 1 for b in accepted)
    finally:
        server.stop()


def test_two_servers_on_one_database_race_over_the_deadline(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    set_challenge_keys(example_event, "nodules", duration_minutes=0.05, upload_grace_seconds=0)
    # Processes serving one event share its data dir (tokens, stored uploads) and database.
    first = ServerProcess(example_event, tmp_path / "data", database_url).start()
    second = ServerProcess(example_event, tmp_path / "data", database_url,
                           extra_args=["--scoring-workers", "0"]).start()
    try:
        tokens = first.tokens()
        offset = server_offset(first)
        _, challenge = first.json("POST", "/api/v1/challenges/nodules/start",
                                  tokens["organizer"], {})
        deadline = parse(challenge["deadline"])
        _, seen = second.json("GET", "/api/v1/challenges/nodules")
        assert parse(seen["deadline"]) == deadline

        results: dict[str, tuple[int, Any]] = {}

        def run(name: str, server: ServerProcess, team: str, at: float) -> None:
            results[name] = slow_upload(server, "nodules", tokens[team], at, at, offset)

        threads = [
            threading.Thread(target=run, args=("before, on the second", second,
                                               "Lumbar Lab", deadline - 0.1)),
            threading.Thread(target=run, args=("after, on the first", first,
                                               "Nodule Hunters", deadline + 0.1)),
            threading.Thread(target=run, args=("after, on the second", second,
                                               "Myelin Minds", deadline + 0.1)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results["before, on the second"][0] == 202
        assert results["after, on the first"][1]["error"]["code"] == "deadline_passed"
        assert results["after, on the second"][1]["error"]["code"] == "deadline_passed"

        time.sleep(1.5)
        _, log = first.json("GET", "/api/v1/countdown-log", tokens["organizer"])
        assert [e["action"] for e in log].count("auto-close") == 1
        for server in (first, second):
            assert server.json("GET", "/api/v1/challenges/nodules")[1]["state"] == "closed"
    finally:
        first.stop()
        second.stop()
