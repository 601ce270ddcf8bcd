"""`podium submit` (server/submit.py): the progress and the usage errors directly, the uploads
against the server in this process (in a subprocess where the client's memory is measured)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.command import ExitCode
from server.submit import Progress, _poll, submit
from tests.command_line import EDSS_CSV, NODULES_CSV, closed_port_url, podium, start
from tests.helpers import AppServer, ServerProcess, run


@pytest.fixture(autouse=True)
def _no_podium_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODIUM_TOKEN", raising=False)
    monkeypatch.delenv("PODIUM_SERVER", raising=False)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_progress_without_a_terminal_prints_a_line_per_tenth() -> None:
    stream = io.StringIO()
    ticks = iter(range(100))
    progress = Progress(20_000_000, stream, tty=False, clock=lambda: float(next(ticks)))
    for sent in range(0, 20_000_001, 500_000):
        progress.update(sent)
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == [f"{p}%" for p in range(10, 101, 10)]
    # 41 updates, one a second: 20 MB in 41 s
    assert lines[-1] == "upload: 100%  20.0 MB/20.0 MB  487.8 kB/s"


def test_progress_on_a_terminal_redraws_one_bar() -> None:
    stream = io.StringIO()
    now = [0.0]
    progress = Progress(1_000_000, stream, tty=True, clock=lambda: now[0])
    for sent in (100_000, 200_000, 500_000, 1_000_000):
        now[0] += 0.5
        progress.update(sent)
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "[" + "#" * 30 + "] 100%  1.0 MB/1.0 MB  500.0 kB/s" in text


def test_a_bar_cut_short_by_the_servers_answer_is_ended() -> None:
    stream = io.StringIO()
    ticks = iter([0.0, 0.001])
    progress = Progress(1_000_000, stream, tty=True, clock=lambda: next(ticks))
    progress.update(300)
    progress.close(300)
    assert stream.getvalue().endswith("300 B/1.0 MB  300.0 kB/s\n")
    quiet = io.StringIO()
    Progress(1_000_000, quiet, tty=True).close(0)  # nothing drawn, nothing to end
    assert quiet.getvalue() == ""



# -- submit: usage and network failures ------------------------------------------------------

def test_submit_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = closed_port_url()
    missing = tmp_path / "nope.csv"
    assert podium("submit", "--server", url, "--token", "t", "--challenge", "nodules",
                  str(missing)) == ExitCode.USAGE
    assert f"submission file {missing} not found" in capsys.readouterr().err
    assert podium("submit", "--server", "localhost:port", "--token", "t", "--challenge",
                  "nodules", str(NODULES_CSV)) == ExitCode.USAGE
    assert "bad port in server address 'localhost:port'" in capsys.readouterr().err
    assert podium("submit", "--server", url, "--challenge", "nodules",
                  str(NODULES_CSV)) == ExitCode.USAGE
    assert "PODIUM_TOKEN" in capsys.readouterr().err
    assert podium("submit", "--token", "t", "--challenge", "nodules",
                  str(NODULES_CSV)) == ExitCode.USAGE
    assert "PODIUM_SERVER" in capsys.readouterr().err
    assert podium("submit", "--server", url, "--token", "t", "--challenge", "nodules",
                  str(NODULES_CSV), "--wait", "-3") == ExitCode.USAGE
    assert "positive number of seconds" in capsys.readouterr().err


def test_an_unreachable_server_exits_4_and_says_to_send_again(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_SERVER", closed_port_url())
    monkeypatch.setenv("PODIUM_TOKEN", "some-token")
    # `--wait FILE` (no seconds) is understood as FILE with the default wait.
    assert podium("submit", "--challenge", "nodules", "--wait", str(NODULES_CSV)) == \
        ExitCode.NETWORK
    err = capsys.readouterr().err
    assert "cannot reach the server" in err and "NOT acknowledged" in err
    assert podium("submit", "--challenge", "nodules", "--json", str(NODULES_CSV)) == \
        ExitCode.NETWORK
    out = json.loads(capsys.readouterr().out)
    assert out["error"]["code"] == "unreachable"


def test_a_connection_dropped_mid_upload_exits_4(tmp_path: Path) -> None:
    """A stand-in for a venue network that fails: it takes 256 KiB of the upload and hangs up."""
    big = big_file(tmp_path / "masks.zip", 4)

    async def scenario() -> tuple[int, str, str]:
        async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(256 * 1024)
            writer.transport.abort()

        listener = await asyncio.start_server(drop, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        out, err = io.StringIO(), io.StringIO()
        try:
            with big.open("rb") as file:
                code = await submit(f"http://127.0.0.1:{port}", "t", "sarcopenia", file,
                                    big.name, wait=None, as_json=False, out=out, err=err)
        finally:
            listener.close()
        return code, out.getvalue(), err.getvalue()

    code, out, err = run(scenario())
    assert code == ExitCode.NETWORK
    assert out == ""  # no receipt
    assert "No receipt was received, so the upload is NOT acknowledged: send it again" in err
    assert "of 4,194,304 bytes sent" in err

def test_submit_waits_for_the_result_and_checks_the_receipt(
        server: AppServer, capsys: pytest.CaptureFixture[str]) -> None:
    start(server, "nodules")
    token = server.tokens()["Lumbar Lab"]
    code = podium("submit", "--server", server.url, "--token", token, "--challenge", "nodules",
                  str(NODULES_CSV), "--wait")
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    digest = sha256_of(NODULES_CSV)
    lines = out.splitlines()
    assert lines[0].startswith("receipt: submission ")
    submission_id = int(lines[0].rsplit(" ", 1)[1])
    assert f"sha256       {digest}  (matches the local file)" in out
    assert f"size         {NODULES_CSV.stat().st_size:,} bytes" in out
    assert "status: scored" in out
    assert "metrics: not shown to teams" in out  # nodules: team_feedback = "status"
    assert "upload: 100%" in err  # stderr is not a terminal here: the line-per-10% form
    status, stored = server.json("GET", f"/api/v1/submissions/{submission_id}", token=token)
    assert status == 200 and stored["sha256"] == digest and stored["status"] == "scored"
    assert stored["received_at"] in out


def test_submit_json_prints_the_final_object_with_metrics(
        server: AppServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    start(server, "edss")
    monkeypatch.setenv("PODIUM_SERVER", server.url)
    monkeypatch.setenv("PODIUM_TOKEN", server.tokens()["Myelin Minds"])
    code = podium("submit", "--challenge", "edss", str(EDSS_CSV), "--wait", "60", "--json")
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    final = json.loads(out)  # the whole of stdout is one JSON object
    assert final["status"] == "scored" and final["sha256"] == sha256_of(EDSS_CSV)
    assert isinstance(final["metrics"]["mse"], float)  # edss: team_feedback = "score"


def test_an_invalid_submission_exits_1_with_every_error(
        server: AppServer, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    start(server, "nodules")
    bad = tmp_path / "predictions.csv"
    bad.write_text("id,probability\nNOD001,0.5\nNOD001,1.7\nNOBODY,0.1\n")
    code = podium("submit", "--server", server.url, "--token", server.tokens()["Lumbar Lab"],
                  "--challenge", "nodules", str(bad), "--wait", "60")
    out, _ = capsys.readouterr()
    assert code == ExitCode.REFUSED
    assert "status: invalid" in out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) >= 3, out  # a duplicate, a value out of range, an unknown id, missing ids


def test_refusals_exit_1_with_the_servers_code_and_message(
        server: AppServer, capsys: pytest.CaptureFixture[str]) -> None:
    tokens = server.tokens()
    base = ["submit", "--server", server.url, "--challenge", "nodules", str(NODULES_CSV)]
    assert podium(*base, "--token", tokens["Lumbar Lab"]) == ExitCode.REFUSED
    err = capsys.readouterr().err
    assert "(HTTP 403, not_started)" in err and "has not started yet" in err

    assert podium(*base, "--token", "not-a-real-token") == ExitCode.REFUSED
    err = capsys.readouterr().err
    assert "(HTTP 401, invalid_token)" in err and "not recognised" in err

    assert podium(*base, "--token", tokens["Lumbar Lab"], "--json") == ExitCode.REFUSED
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "not_started"

    start(server, "nodules")
    closed = start(server, "nodules", "close")
    assert podium(*base, "--token", tokens["Lumbar Lab"]) == ExitCode.REFUSED
    err = capsys.readouterr().err
    assert "(HTTP 403, deadline_passed)" in err
    assert f"  deadline: {closed['deadline']}" in err
    assert "  server_time: " in err


def test_polling_finds_the_result_of_an_acknowledged_upload(
        server: AppServer, capsys: pytest.CaptureFixture[str]) -> None:
    start(server, "nodules")
    token = server.tokens()["Lumbar Lab"]
    assert podium("submit", "--server", server.url, "--token", token, "--challenge", "nodules",
                  str(NODULES_CSV), "--json") == ExitCode.OK
    receipt = json.loads(capsys.readouterr().out)
    assert receipt["status"] == "queued"

    async def poll() -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            return await _poll(session, server.url, receipt, time.monotonic() + 60,
                               io.StringIO())
    final = run(poll())
    assert final["id"] == receipt["id"] and final["status"] == "scored"


def big_file(path: Path, megabytes: int) -> Path:
    block = bytes(range(256)) * 4096  # 1 MiB
    with path.open("wb") as f:
        for _ in range(megabytes):
            f.write(block)
    return path


@pytest.mark.slow  # a server process, so the peak measured is the client's
def test_a_file_over_the_limit_is_streamed_then_refused_too_large(
        server_process: ServerProcess, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    server = server_process  # its own process: the peak measured here is the client's
    start(server, "nodules")
    big = big_file(tmp_path / "big.csv", 20)  # the limit is 10 MiB
    tracemalloc.start()
    try:
        code = podium("submit", "--server", server.url, "--token",
                      server.tokens()["Lumbar Lab"], "--challenge", "nodules", str(big))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert code == ExitCode.REFUSED, err
    assert "(HTTP 413, too_large)" in err and "10 MiB" in err
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while sending a 20 MiB file"


@pytest.fixture
def roomy_server(example_event: Path, database_url: str, tmp_path: Path
                 ) -> Iterator[ServerProcess]:
    """The example event with a 32 MiB upload limit on nodules."""
    text = example_event.read_text()
    example_event.write_text(text.replace('slug = "nodules"\n',
                                          'slug = "nodules"\nmax_upload_mb = 32\n'))
    proc = ServerProcess(example_event, tmp_path / "data", database_url).start()
    yield proc
    proc.stop()


@pytest.mark.slow  # a server process, so the peak measured is the client's
def test_a_20_mb_file_is_streamed_from_disk_and_its_sha256_verified(
        roomy_server: ServerProcess, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    start(roomy_server, "nodules")
    big = big_file(tmp_path / "big.csv", 20)
    tracemalloc.start()
    try:
        code = podium("submit", "--server", roomy_server.url, "--token",
                      roomy_server.tokens()["Lumbar Lab"], "--challenge", "nodules", str(big))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    assert f"sha256       {sha256_of(big)}  (matches the local file)" in out
    assert f"size         {20 * 1024 * 1024:,} bytes" in out
    assert [line.split()[1] for line in err.splitlines() if line.startswith("upload:")] == \
        [f"{p}%" for p in range(10, 101, 10)]
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while sending a 20 MiB file"
