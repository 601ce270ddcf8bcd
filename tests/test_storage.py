"""Storage no team can exhaust: the quota per team and challenge, the free-space reserve on the
data dir (tested for real on a small tmpfs), a disk that fills anyway, the orphan .part sweep,
and the free space on the organizer console."""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.storage import (
    GiB,
    MiB,
    Space,
    StorageFull,
    is_disk_full,
    quota_for,
    refusal,
    reserve_for,
    sweep_partial_uploads,
)
from tests.helpers import EXAMPLE_DIR, PODIUM, ROOT, ServerProcess, set_challenge_keys

NODULES = (EXAMPLE_DIR / "submissions" / "nodules-nodule-hunters.csv").read_bytes()


# -- the pure core ----------------------------------------------------------------------------

def test_the_reserve_is_2_gib_or_5_percent_whichever_is_smaller() -> None:
    assert reserve_for(10 * GiB, None) == GiB // 2
    assert reserve_for(1024 * GiB, None) == 2 * GiB
    assert reserve_for(1024 * GiB, 0) == 0
    assert reserve_for(10 * GiB, 300 * MiB) == 300 * MiB


def test_the_quota_is_the_challenges_else_the_servers_else_four_uploads() -> None:
    assert quota_for(512 * MiB, None, None) == 2 * GiB
    assert quota_for(512 * MiB, None, GiB) == GiB
    assert quota_for(512 * MiB, 3 * GiB, GiB) == 3 * GiB


@pytest.mark.parametrize(("free", "in_flight", "incoming", "stored", "refused"), [
    (10 * GiB, 0, 100 * MiB, 0, None),
    (10 * GiB, 0, 100 * MiB, 950 * MiB, "quota"),        # 950 + 100 > 1024
    (10 * GiB, 0, 74 * MiB, 950 * MiB, None),            # exactly the quota
    (GiB + 50 * MiB, 0, 100 * MiB, 0, "reserve"),        # would leave 974 MiB < 1 GiB
    (GiB + 150 * MiB, 100 * MiB, 100 * MiB, 0, "reserve"),  # with another upload in flight
    (GiB + 150 * MiB, 0, 100 * MiB, 0, None),
])
def test_an_upload_is_refused_past_the_quota_or_into_the_reserve(
        free: int, in_flight: int, incoming: int, stored: int, refused: str | None) -> None:
    found = refusal(space=Space(free, 100 * GiB), reserve=GiB, in_flight=in_flight,
                    incoming=incoming, stored=stored, quota=GiB, challenge="sarcopenia")
    if refused is None:
        assert found is None
        return
    assert isinstance(found, StorageFull) and (found.status, found.code) == (507,
                                                                              "storage_full")
    if refused == "quota":
        assert "storage_quota_mb" in found.message and "'sarcopenia'" in found.message
        assert found.extra == {"quota_bytes": GiB, "stored_bytes": stored}
    else:
        assert "disk is nearly full" in found.message and "Tell the organizers" in found.message


sizes = st.integers(min_value=0, max_value=4 * GiB)


@given(free=sizes, reserve=sizes, in_flight=sizes, incoming=sizes, extra=sizes, stored=sizes,
       quota=sizes)
def test_a_larger_upload_is_never_admitted_where_a_smaller_one_is_refused(
        free: int, reserve: int, in_flight: int, incoming: int, extra: int, stored: int,
        quota: int) -> None:
    def admitted(size: int, already: int) -> bool:
        return refusal(space=Space(free, 8 * GiB), reserve=reserve, in_flight=in_flight,
                       incoming=size, stored=already, quota=quota, challenge="c") is None

    if admitted(incoming + extra, stored):
        assert admitted(incoming, stored)
    if admitted(incoming, stored + extra):  # nor a team that stores more
        assert admitted(incoming, stored)
    if admitted(incoming, stored):  # and what it admits fits both limits
        assert stored + incoming <= quota and free - in_flight - incoming >= reserve


def test_disk_full_errors_are_recognised() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError())


def test_the_sweep_removes_only_parts_no_upload_is_writing(tmp_path: Path) -> None:
    folder = tmp_path / "submissions" / "nodules" / "3"
    folder.mkdir(parents=True)
    old, fresh, kept = folder / ".aaa.part", folder / ".bbb.part", folder / "ccc_p.csv"
    for path in (old, fresh, kept):
        path.write_bytes(b"x")
    now = time.time()
    os.utime(old, (now - 3600, now - 3600))
    os.utime(kept, (now - 3600, now - 3600))
    assert sweep_partial_uploads(tmp_path, 120, now) == [old]
    assert not old.exists() and fresh.exists() and kept.exists()


# -- a server ---------------------------------------------------------------------------------

def start(server: ServerProcess, slug: str) -> None:
    status, body = server.json("POST", f"/api/v1/challenges/{slug}/start",
                               server.tokens()["organizer"], {})
    assert status == 200, body


@pytest.mark.slow
def test_a_team_past_its_quota_gets_507_and_other_teams_do_not(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    padded = NODULES + b"\r\n" * 1000  # blank lines are skipped: still a valid file
    size = len(padded)
    set_challenge_keys(example_event, "nodules", max_upload_mb=2 * size / MiB,
                       storage_quota_mb=2.5 * size / MiB)
    server = ServerProcess(example_event, tmp_path / "data", database_url).start()
    try:
        tokens = server.tokens()
        start(server, "nodules")
        for _ in range(2):
            status, body = server.upload("nodules", tokens["Lumbar Lab"], "p.csv", padded,
                                         "?wait=30")
            assert status == 202 and body["status"] == "scored", body
        status, body = server.upload("nodules", tokens["Lumbar Lab"], "p.csv", padded)
        assert status == 507, body
        assert body["error"]["code"] == "storage_full"
        assert body["error"]["stored_bytes"] == 2 * size
        assert "storage_quota_mb" in body["error"]["message"]
        # From a terminal: a refusal that says what to do, not "send it again".
        csv = tmp_path / "p.csv"
        csv.write_bytes(padded)
        out = subprocess.run([*PODIUM, "submit", "--server", server.url, "--token",
                              tokens["Lumbar Lab"], "--challenge", "nodules", str(csv)],
                             capture_output=True, text=True, cwd=ROOT, check=False)
        assert out.returncode == 1, out.stderr
        assert "refused the upload (HTTP 507, storage_full)" in out.stderr
        assert "NOT acknowledged" not in out.stderr
        status, body = server.upload("nodules", tokens["Nodule Hunters"], "p.csv", padded,
                                     "?wait=30")
        assert status == 202 and body["status"] == "scored", body
        stored = list((tmp_path / "data" / "submissions" / "nodules").glob("*/*"))
        assert len(stored) == 3  # the refused uploads left nothing behind
    finally:
        server.stop()


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                              str(path)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here (root and CAP_SYS_ADMIN are needed): "
                    f"{mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Writes a file of zeros until only `leave` bytes are free (0: until ENOSPC)."""
    filler = disk / f"filler-{time.monotonic_ns()}"
    chunk = bytes(MiB)
    with filler.open("wb") as out:
        while True:
            stats = os.statvfs(disk)
            free = stats.f_bavail * stats.f_frsize
            if free <= leave:
                break
            try:
                out.write(chunk[: min(len(chunk), free - leave)])
                out.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


def free_bytes(disk: Path) -> int:
    stats = os.statvfs(disk)
    return stats.f_bavail * stats.f_frsize


def no_traceback(server: ServerProcess) -> None:
    log = server.stderr()
    assert "Traceback" not in log and "internal_error" not in log, log[-3000:]


@pytest.mark.slow
def test_below_the_reserve_uploads_get_507_and_everything_else_works(
        example_event: Path, tmp_path: Path) -> None:
    """The embedded PostgreSQL and the uploads on one 256 MiB tmpfs, filled to below the
    reserve: uploads are refused; the organizers' actions (writes to the database), the clocks,
    a restart on the full disk and the scoring of a queued file all keep working."""
    with tmpfs(tmp_path / "disk", "256m") as disk:
        data = disk / "data"
        args = ["--storage-reserve-mb", "48"]
        server = ServerProcess(example_event, data, None, stderr_path=tmp_path / "a.log",
                               extra_args=[*args, "--scoring-workers", "0"]).start()
        try:
            tokens = server.tokens()
            organizer = tokens["organizer"]
            start(server, "nodules")
            status, queued = server.upload("nodules", tokens["Lumbar Lab"], "p.csv", NODULES)
            assert status == 202, queued
            fill(disk, 40 * MiB)
            status, body = server.upload("nodules", tokens["Nodule Hunters"], "p.csv", NODULES)
            assert status == 507, body
            assert body["error"]["code"] == "storage_full"
            assert "disk is nearly full" in body["error"]["message"]
            assert not list((data / "submissions").glob("*/*/.*.part"))
            for action, body_ in (("pause", {}), ("resume", {}), ("extend", {"seconds": 60}),
                                  ("extend", {"seconds": 30, "team": "Lumbar Lab"})):
                status, c = server.json("POST", f"/api/v1/challenges/nodules/{action}",
                                        organizer, body_)
                assert status == 200, (action, c)
            status, health = server.json("GET", "/healthz")
            assert (status, health["database"]) == (200, "ok")
            status, _, page = server.request("GET", "/clock")
            assert status == 200
            status, _, console = server.request("GET", "/organizer", organizer)
            assert status == 200 and b"uploads refused (507 storage_full) below" in console
            assert b'class="status-item low" data-storage>Disk: ' in console
            no_traceback(server)
        finally:
            server.stop()
        assert free_bytes(disk) < 48 * MiB
        scorer = ServerProcess(example_event, data, None, stderr_path=tmp_path / "b.log",
                               extra_args=[*args, "--scoring-workers", "1"]).start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status, row = scorer.json("GET", f"/api/v1/submissions/{queued['id']}",
                                          tokens["jury"])
                if row["status"] in ("scored", "invalid"):
                    break
                time.sleep(0.2)
            assert row["status"] == "scored", row
            status, c = scorer.json("POST", "/api/v1/challenges/nodules/close", organizer, {})
            assert (status, c["state"]) == (200, "closed")
            no_traceback(scorer)
        finally:
            scorer.stop()


def upload_while_the_disk_fills(server: ServerProcess, token: str, disk: Path,
                                size: int) -> tuple[int, dict[str, Any]]:
    """An upload whose first part is sent with room to spare; then another program fills the
    disk to the last byte; then the rest is sent."""
    boundary = "podium-disk-full"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            'filename="masks.zip"\r\nContent-Type: application/zip\r\n\r\n').encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    payload = os.urandom(size)
    first, rest = payload[: size * 3 // 4], payload[size * 3 // 4:]
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.putrequest("POST", "/api/v1/challenges/sarcopenia/submissions")
        conn.putheader("Authorization", f"Bearer {token}")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(len(head) + size + len(tail)))
        conn.endheaders()
        conn.send(head + first)
        # Once the server has admitted the upload and is writing it (its .part file grows),
        # the disk fills up.
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size for p in disk.glob("data/submissions/*/*/.*.part")):
            assert time.monotonic() < deadline, "the upload never started being written"
            time.sleep(0.01)
        fill(disk, 0)
        conn.send(rest + tail)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.slow
def test_a_disk_that_fills_during_an_upload_gives_507_not_a_traceback(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    """No reserve, and the disk filled to the last byte by another program while an upload is
    being received: its write meets ENOSPC, the partial file is removed, the team is told."""
    with tmpfs(tmp_path / "disk", "64m") as disk:
        data = disk / "data"
        server = ServerProcess(example_event, data, database_url,
                               stderr_path=tmp_path / "server.log",
                               extra_args=["--storage-reserve-mb", "0"]).start()
        try:
            tokens = server.tokens()
            start(server, "sarcopenia")
            fill(disk, 12 * MiB)
            status, body = upload_while_the_disk_fills(server, tokens["Lumbar Lab"], disk,
                                                       8 * MiB)
            assert status == 507, body
            assert body["error"]["code"] == "storage_full"
            assert "disk is full; your upload was not stored" in body["error"]["message"]
            assert not list((data / "submissions").glob("*/*/.*.part"))
            status, c = server.json("POST", "/api/v1/challenges/sarcopenia/pause",
                                    tokens["organizer"], {})
            assert status == 200, c
            no_traceback(server)
            for filler in disk.glob("filler-*"):
                filler.unlink()  # space again: uploads are taken again
            status, body = server.upload("sarcopenia", tokens["Lumbar Lab"], "masks.zip",
                                         (EXAMPLE_DIR / "submissions" /
                                          "sarcopenia-lumbar-lab.zip").read_bytes())
            assert status == 202, body
        finally:
            server.stop()


@pytest.mark.slow
def test_orphan_parts_are_swept_at_start(example_event: Path, database_url: str,
                                         tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = data / "submissions" / "nodules" / "1"
    folder.mkdir(parents=True)
    orphan, live = folder / ".0123abcd.part", folder / ".4567ef01.part"
    orphan.write_bytes(b"half an upload killed by kill -9")
    live.write_bytes(b"another process's upload, being written")
    hour_ago = time.time() - 3600
    os.utime(orphan, (hour_ago, hour_ago))
    server = ServerProcess(example_event, data, database_url).start()
    try:
        assert not orphan.exists() and live.exists()
        assert "removed 1 orphan upload file(s)" in server.stderr()
    finally:
        server.stop()
