"""The deadline the server enforces: 100 ms either side of it, the grace rule, and two server
processes on one database racing over it. The database clock is frozen and moved: no upload
depends on how fast this machine is."""

from __future__ import annotations

import contextlib
import http.client
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import (
    EXAMPLE_DIR,
    AppServer,
    Client,
    DatabaseClock,
    ServerProcess,
    set_challenge_keys,
    wait_for,
)

CSV = (EXAMPLE_DIR / "submissions" / "edss-myelin-minds.csv").read_bytes()
NODULES = next((EXAMPLE_DIR / "submissions").glob("nodules*.csv")).read_bytes()
BOUNDARY = "deadline-test-boundary"


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


class SlowUpload:
    """One upload sent in two steps: the headers and half the body, then the rest, so a test
    can move the clock between the moment the request began and the moment it ended."""

    def __init__(self, server: Client, data_dir: Path, slug: str, token: str) -> None:
        self.body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
                     f"filename=\"late.csv\"\r\n\r\n").encode() + CSV + \
            f"\r\n--{BOUNDARY}--\r\n".encode()
        self.folder = data_dir / "submissions" / slug
        url = urlsplit(server.url)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        self.slug, self.token = slug, token

    def begin(self) -> SlowUpload:
        """Sends the first half and waits until the server streams it to disk: by then it has
        read the clock for the request's start."""
        parts = set(self.folder.rglob(".*.part"))
        self.conn.putrequest("POST", f"/api/v1/challenges/{self.slug}/submissions")
        self.conn.putheader("Authorization", f"Bearer {self.token}")
        self.conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
        self.conn.putheader("Content-Length", str(len(self.body)))
        self.conn.endheaders()
        self.conn.send(self.body[: len(self.body) // 2])
        wait_for(lambda: set(self.folder.rglob(".*.part")) - parts,
                 what="the upload to reach the disk")
        return self

    def finish(self) -> tuple[int, Any]:
        self.conn.send(self.body[len(self.body) // 2:])
        response = self.conn.getresponse()
        result = response.status, json.loads(response.read())
        self.close()
        return result

    def close(self) -> None:
        """Also on a failed test's way out: a connection left to the garbage collector
        would fail whichever test runs when it is found."""
        self.conn.close()


def at(clock: DatabaseClock, moment: datetime, seconds: float) -> None:
    clock.freeze(moment + timedelta(seconds=seconds))


def test_100_ms_either_side_and_the_grace(example_event: Path, database_url: str,
                                          tmp_path: Path, clock: DatabaseClock) -> None:
    set_challenge_keys(example_event, "edss", freeze_minutes=None, upload_grace_seconds=1)
    server = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=0).start()
    uploads = contextlib.ExitStack()
    try:
        tokens = server.tokens()
        clock.freeze()
        deadline = parse(server.act("edss", "start")["deadline"])

        at(clock, deadline, -0.1)
        status, receipt = server.upload("edss", tokens["Myelin Minds"], "on-time.csv", CSV)
        assert status == 202, receipt
        # Its end is the clock's reading less the time the server spent after the last byte.
        assert parse(receipt["received_at"]) <= deadline - timedelta(seconds=0.1)

        at(clock, deadline, -0.4)
        within = uploads.enter_context(contextlib.closing(
            SlowUpload(server, tmp_path / "data", "edss", tokens["Myelin Minds"]))).begin()
        beyond = uploads.enter_context(contextlib.closing(
            SlowUpload(server, tmp_path / "data", "edss", tokens["Pixel Anatomy"]))).begin()
        at(clock, deadline, +0.3)
        status, receipt = within.finish()
        assert status == 202, receipt  # began before the deadline, ended within the grace
        assert parse(receipt["received_at"]) <= deadline + timedelta(seconds=0.3)

        # Running from there, not frozen: a request that began after it, whatever it waited
        # in the server before the clock was read, cannot be credited back before it.
        clock.run_from(deadline + timedelta(seconds=0.1))
        status, late = server.upload("edss", tokens["Pixel Anatomy"], "late.csv", CSV)
        assert (status, late["error"]["code"]) == (403, "deadline_passed")
        # People read the event's wall clock, named; the fields stay ISO 8601 UTC.
        paris = deadline.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M:%S")
        assert f"the deadline ({paris} Europe/Paris) has passed" in late["error"]["message"]
        assert late["error"]["deadline"].endswith("Z")

        clock.run_from(deadline + timedelta(seconds=1.6))
        late_status, too_late = beyond.finish()  # began before, ended after the grace
        for code, body in ((status, late), (late_status, too_late)):
            assert (code, body["error"]["code"]) == (403, "deadline_passed"), body
            assert parse(body["error"]["deadline"]) == deadline
            assert parse(body["error"]["server_time"]) > deadline
        status, mine = server.json("GET", "/api/v1/challenges/edss/submissions",
                                   tokens["Pixel Anatomy"])
        assert (status, mine) == (200, [])  # nothing of the refused uploads was kept
    finally:
        uploads.close()
        server.stop()


@pytest.mark.slow  # two server processes
def test_two_servers_on_one_database_race_over_the_deadline(
        example_event: Path, database_url: str, tmp_path: Path, clock: DatabaseClock) -> None:
    set_challenge_keys(example_event, "nodules", upload_grace_seconds=0)
    # Processes serving one event share its data dir (tokens, stored uploads) and database.
    first = ServerProcess(example_event, tmp_path / "data", database_url).start()
    second = ServerProcess(example_event, tmp_path / "data", database_url,
                           extra_args=["--scoring-workers", "0"]).start()
    try:
        tokens = first.tokens()
        clock.freeze()
        deadline = parse(first.act("nodules", "start")["deadline"])
        _, seen = second.json("GET", "/api/v1/challenges/nodules")
        assert parse(seen["deadline"]) == deadline

        at(clock, deadline, -0.1)
        status, receipt = second.upload("nodules", tokens["Lumbar Lab"], "n.csv", NODULES)
        assert status == 202, receipt
        clock.run_from(deadline + timedelta(seconds=0.1))  # see the test above
        for server, team in ((first, "Nodule Hunters"), (second, "Myelin Minds")):
            status, body = server.upload("nodules", tokens[team], "n.csv", NODULES)
            assert (status, body["error"]["code"]) == (403, "deadline_passed")

        def auto_closes() -> int:
            _, log = first.json("GET", "/api/v1/countdown-log", tokens["organizer"])
            return [e["action"] for e in log].count("auto-close")

        wait_for(auto_closes, what="the deadline's closing to be recorded")
        for server in (first, second):
            assert server.json("GET", "/api/v1/challenges/nodules")[1]["state"] == "closed"
        assert auto_closes() == 1
    finally:
        first.stop()
        second.stop()
