"""`podium serve` with no database URL: the embedded PostgreSQL under the data dir."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil
import pytest

from tests.helpers import ServerProcess

pytestmark = pytest.mark.slow  # each test starts server processes and their PostgreSQL


def postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return None
    return int(pid_file.read_text().split()[0])


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigterm_stops_postgres_and_a_restart_finds_the_data(example_event: Path,
                                                             embedded_data_dir: Path) -> None:
    data_dir = embedded_data_dir
    server = ServerProcess(example_event, data_dir, database_url=None).start()
    pid = postmaster_pid(data_dir)
    assert pid is not None and alive(pid)
    tokens = server.tokens()
    status, teams = server.json("GET", "/api/v1/teams", token=tokens["organizer"])
    assert status == 200 and len(teams) == 4
    assert server.stop(signal.SIGTERM) == 0
    assert not alive(pid), "PostgreSQL outlived the server"
    assert postmaster_pid(data_dir) is None

    server.start()
    try:
        status, again = server.json("GET", "/api/v1/teams", token=tokens["organizer"])
        assert (status, again) == (200, teams)
        assert "applied migration" not in server.stderr().split("embedded PostgreSQL stopped")[-1]
    finally:
        server.stop()


def test_after_a_sigkill_the_next_server_still_stops_postgres(example_event: Path,
                                                              embedded_data_dir: Path) -> None:
    data_dir = embedded_data_dir
    server = ServerProcess(example_event, data_dir, database_url=None).start()
    first_pid = postmaster_pid(data_dir)
    server.stop(signal.SIGKILL)
    assert first_pid is not None and alive(first_pid)  # orphaned, as after a crash

    server.start()  # joins the running PostgreSQL
    assert postmaster_pid(data_dir) == first_pid
    status, challenges = server.json("GET", "/api/v1/challenges")
    assert status == 200 and len(challenges) == 4
    assert server.stop(signal.SIGTERM) == 0
    assert not alive(first_pid)


def test_sigint_stops_cleanly_too(example_event: Path, embedded_data_dir: Path) -> None:
    data_dir = embedded_data_dir
    server = ServerProcess(example_event, data_dir, database_url=None).start()
    pid = postmaster_pid(data_dir)
    assert server.stop(signal.SIGINT) == 0
    assert pid is not None and not alive(pid)
