"""The scenario that matters (issue 12): while one team runs every attack at once in the last
minute, five honest teams upload 10 s before the deadline and every one is accepted and scored
within 60 s; the clock closes the challenge on time and the server stays within its memory.

Against `podium serve` in a process of its own, so the attacker's load and the server's are
apart. The database clock is moved so that the deadline is 15 s away, the attacks under way
5 s before the honest uploads; from then on time runs as it would in the room, because those
last seconds are what is under test.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pydicom
import pytest

from tests.edge import address, connect
from tests.evaluators import bombs
from tests.evaluators.test_bombs import rewrite_member, small_workbook
from tests.helpers import (
    EXAMPLE_DIR,
    DatabaseClock,
    ServerProcess,
    add_teams,
    set_challenge_keys,
    wait_for,
)
from tests.test_intake_flood import BOUNDARY, tiny_parts

HONEST = [f"Honest {n}" for n in range(1, 6)]
NODULES = (EXAMPLE_DIR / "submissions" / "nodules-nodule-hunters.csv").read_bytes()
SARCOPENIA = (EXAMPLE_DIR / "submissions" / "sarcopenia-lumbar-lab.zip").read_bytes()
GiB = 1024**3


def parse(moment: str) -> float:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


def server_offset(server: ServerProcess) -> float:
    """The server's clock minus this one's, from the quickest of five round trips."""
    best: tuple[float, float] | None = None
    for _ in range(5):
        t0 = time.time()
        _, body = server.json("GET", "/api/v1/time")
        t1 = time.time()
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, parse(body["server_time"]) - (t0 + t1) / 2)
    assert best is not None
    return best[1]


def member_bomb(exam: Path, path: Path) -> Path:
    """A few MB of zip whose one mask member inflates to 3.5 GiB, shaped like the exam."""
    shape = (int(pydicom.dcmread(exam, stop_before_pixels=True).Rows),
             int(pydicom.dcmread(exam, stop_before_pixels=True).Columns))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": shape})
    bomb = bombs.inflating(f"masks/{exam.stem}.npy", header.getvalue(), b"\x00",
                           224 * bombs.SEGMENT)
    return bombs.write(path, [bomb, bombs.plain("surfaces.csv", b"id,surface_mm2\n")])


def wide_workbook(path: Path) -> Path:
    """An .xlsx of a few MB whose sheet expands to 240 MiB."""
    head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet '
            b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
    head += b" " * (-len(head) % 64)
    row = b'<row><c t="n"><v>1</v></c><c t="n"><v>0</v></c></row>'
    end = b"</sheetData></worksheet>"
    sheet = bombs.inflating("xl/worksheets/sheet1.xml", head, row + b" " * (64 - len(row)),
                            15 * bombs.SEGMENT + len(end), end)
    return rewrite_member(small_workbook(), "xl/worksheets/sheet1.xml",
                          {"xl/worksheets/sheet1.xml": sheet}, path)


def post(server: ServerProcess, slug: str, token: str, body: Any, content_type: str,
         chunked: bool = False) -> int:
    host, port = address(server)
    conn = http.client.HTTPConnection(host, port, timeout=120)
    try:
        conn.request("POST", f"/api/v1/challenges/{slug}/submissions", body=body,
                     headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
                     encode_chunked=chunked)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0  # the server closed an abusive connection: the attacker's problem
    finally:
        conn.close()


def multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{filename}\"\r\n\r\n").encode() + content + \
        f"\r\n--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


class Attacker:
    """One team's every attack at once, each in a loop until `stop` is set."""

    def __init__(self, server: ServerProcess, token: str, tmp_path: Path) -> None:
        self.server, self.token = server, token
        self.stop = threading.Event()
        self.sockets: list[socket.socket] = []
        exam = sorted((EXAMPLE_DIR / "truth" / "sarcopenia" / "images").glob("*.dcm"))[0]
        self.zip_bomb = member_bomb(exam, tmp_path / "bomb.zip").read_bytes()
        self.xlsx_bomb = wide_workbook(tmp_path / "wide.xlsx").read_bytes()
        self.sent: dict[str, list[int]] = {}
        self.threads = [threading.Thread(target=self._loop, args=(name, attack), daemon=True)
                        for name, attack in [("part flood", self._part_flood),
                                             ("chunked flood", self._chunked_flood),
                                             ("bombs", self._bombs),
                                             ("sockets", self._sockets)]]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(180)
        for s in self.sockets:
            s.close()

    def _loop(self, name: str, attack: Any) -> None:
        while not self.stop.is_set():
            self.sent.setdefault(name, []).append(attack())

    def _part_flood(self) -> int:
        return post(self.server, "nodules", self.token, b"".join(tiny_parts(195_000)),
                    f"multipart/form-data; boundary={BOUNDARY}")

    def _chunked_flood(self) -> int:
        return post(self.server, "nodules", self.token, tiny_parts(300_000),
                    f"multipart/form-data; boundary={BOUNDARY}", chunked=True)

    def _bombs(self) -> int:
        body, kind = multipart("masks.zip", self.zip_bomb)
        status = post(self.server, "sarcopenia", self.token, body, kind)
        body, kind = multipart("predictions.xlsx", self.xlsx_bomb)
        post(self.server, "nodules", self.token, body, kind)
        self.stop.wait(1)
        return status

    def _sockets(self) -> int:
        # Half-sent requests and idle sockets, topped up as the server drops them.
        for i in range(200):
            if self.stop.is_set():
                break
            try:
                s = connect(self.server, f"127.0.0.{2 + i % 8}")
                if i % 2:
                    s.sendall(b"POST /api/v1/challenges/nodules/submissions HTTP/1.1\r\n"
                              b"Host: podium\r\nX-Slow: ")
                self.sockets.append(s)
            except OSError:
                pass
        self.stop.wait(2)
        return len(self.sockets)


@pytest.mark.slow  # a server process under every attack for the last 15 s of a challenge
def test_honest_teams_upload_10_s_before_the_deadline_while_one_team_attacks(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    for slug in ("nodules", "sarcopenia"):
        set_challenge_keys(example_event, slug, duration_minutes=60, upload_grace_seconds=0,
                           max_submissions=None)
    add_teams(example_event, ["Attackers", *HONEST], ["nodules", "sarcopenia"])
    server = ServerProcess(example_event, tmp_path / "data", database_url).start()
    attacker: Attacker | None = None
    peak = {"rss": 0}
    sampling = threading.Event()
    try:
        tokens = server.tokens()
        assert server.process is not None
        process = psutil.Process(server.process.pid)

        def sample() -> None:
            while not sampling.is_set():
                try:
                    tree = [process, *process.children(recursive=True)]
                    peak["rss"] = max(peak["rss"], sum(p.memory_info().rss for p in tree))
                except psutil.Error:
                    pass
                sampling.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        deadlines = {}
        for slug in ("nodules", "sarcopenia"):
            deadlines[slug] = parse(server.act(slug, "start")["deadline"])
        attacker = Attacker(server, tokens["Attackers"], tmp_path)  # its files built first
        # The last 15 s of the hour: from here on the clock runs as in the room.
        DatabaseClock(database_url).advance(3600 - 15)
        offset = server_offset(server)
        deadline = min(deadlines.values()) - offset  # by this machine's clock
        attacker.start()
        time.sleep(max(0.0, deadline - 10 - time.time()))  # the honest teams' moment

        results: dict[tuple[str, str], tuple[int, Any]] = {}

        def honest(team: str, slug: str, name: str, content: bytes) -> None:
            results[(team, slug)] = server.upload(slug, tokens[team], name, content)

        uploads = [threading.Thread(target=honest, args=(team, slug, name, content))
                   for team in HONEST
                   for slug, name, content in [("nodules", "p.csv", NODULES),
                                               ("sarcopenia", "masks.zip", SARCOPENIA)]]
        sent_at = time.monotonic()
        for thread in uploads:
            thread.start()
        for thread in uploads:
            thread.join(120)
        for key, (status, receipt) in results.items():
            assert status == 202, (key, receipt)
            assert parse(receipt["received_at"]) < min(deadlines.values()), (key, receipt)
        assert len(results) == 10

        organizer = tokens["organizer"]

        def all_scored() -> bool:
            states = [server.json("GET", f"/api/v1/submissions/{receipt['id']}", organizer)[1]
                      for _, receipt in results.values()]
            return all(s["status"] == "scored" for s in states)

        # Within 60 s of the upload, whatever the attacker keeps sending meanwhile.
        wait_for(all_scored, timeout=max(1.0, 60 - (time.monotonic() - sent_at)),
                 what="every honest upload to be scored", every=0.5)

        # The clocks ran: both challenges closed themselves at their deadline.
        def closed_by_the_server() -> list[str]:
            _, log = server.json("GET", "/api/v1/countdown-log", organizer)
            return sorted(e["challenge"] for e in log if e["action"] == "auto-close")

        assert wait_for(lambda: closed_by_the_server() == ["nodules", "sarcopenia"],
                        what="the auto-close of both challenges")
        attacker.finish()
        # The attacks did take place, and were refused or cut off one by one.
        assert all(attacker.sent.get(name) for name in
                   ("part flood", "chunked flood", "bombs", "sockets")), attacker.sent
        assert 202 not in attacker.sent["part flood"] + attacker.sent["chunked flood"]
        attacker = None
        _, own = server.json("GET", "/api/v1/challenges/sarcopenia/submissions",
                             tokens["Attackers"])
        assert own and all(s["status"] in ("queued", "scoring", "invalid") for s in own)
        status, _ = server.json("GET", "/healthz")
        assert status == 200
    finally:
        if attacker is not None:
            attacker.finish()
        sampling.set()
        server.stop()
    assert 0 < peak["rss"] < 3 * GiB, \
        f"the server and its scorers reached {peak['rss'] / GiB:.1f} GiB"
