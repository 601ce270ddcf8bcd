"""`podium submit` and `podium watch` (server/client.py): the pure parts directly, the commands
against the server in this process (in a subprocess where the client's memory is measured)."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import io
import json
import re
import socket
import ssl
import subprocess
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from server.client import (
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    Progress,
    UsageError,
    WatchState,
    _poll,
    add_commands,
    backoff_delays,
    format_remaining,
    render_board,
    render_screen,
    server_address,
    server_url,
    submit,
    watch,
    websocket_url,
)
from tests.helpers import EXAMPLE_DIR, AppServer, Client, DatabaseClock, ServerProcess, run

SUBMISSIONS = EXAMPLE_DIR / "submissions"
NODULES_CSV = SUBMISSIONS / "nodules-nodule-hunters.csv"
EDSS_CSV = SUBMISSIONS / "edss-myelin-minds.csv"
TITLES = {
    "sarcopenia": "Sarcopenia — muscle surface at L3 on CT",
    "nodules": "Pulmonary nodules — probably malignant on 3-D CT",
    "edss": "Multiple sclerosis — EDSS at two years from MRI",
}


def podium(*argv: str) -> int:
    """Runs a command the way `podium` will once cli.py registers these commands."""
    parser = argparse.ArgumentParser(prog="podium")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(list(argv))
    # In a thread of its own, as `podium` runs in a process of its own: the command starts
    # its own event loop, which a loop running in this thread (Playwright's) would refuse.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return int(pool.submit(args.handler, args).result())


@pytest.fixture(autouse=True)
def _no_podium_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODIUM_TOKEN", raising=False)
    monkeypatch.delenv("PODIUM_SERVER", raising=False)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start(server: Client, slug: str, action: str = "start") -> dict[str, Any]:
    status, body = server.json("POST", f"/api/v1/challenges/{slug}/{action}",
                               token=server.tokens()["organizer"], body={})
    assert status == 200, body
    return body


# -- pure parts -----------------------------------------------------------------------------

def test_server_addresses_are_checked() -> None:
    assert server_url("http://10.0.0.5:8080/") == "http://10.0.0.5:8080"
    assert server_url("https://podium.example/jfr/") == "https://podium.example/jfr"
    # No scheme: http is assumed (and marked so, to be settled with the server).
    assert server_address("10.0.0.5:8080") == ("http://10.0.0.5:8080", True)
    assert server_address(" podium.example/jfr/ ") == ("http://podium.example/jfr", True)
    assert server_address("https://podium.example") == ("https://podium.example", False)
    for bad in (None, "", "ftp://host", "http://", "http://host:port", "10.0.0.5:port"):
        with pytest.raises(UsageError):
            server_url(bad)
    assert websocket_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/ws"
    assert websocket_url("https://podium.example/jfr") == "wss://podium.example/jfr/ws"


def test_remaining_time_reads_like_a_countdown() -> None:
    assert format_remaining(7200) == "2:00:00"
    assert format_remaining(3599.9) == "59:59"
    assert format_remaining(65) == "01:05"
    assert format_remaining(0.4) == "00:00"
    assert format_remaining(-12) == "00:00"


def test_reconnection_backs_off_from_half_a_second_to_ten() -> None:
    delays = backoff_delays()
    assert [next(delays) for _ in range(8)] == [0.5, 1, 2, 4, 8, 10, 10, 10]


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


# -- render_board ---------------------------------------------------------------------------

NOW = datetime(2019, 10, 13, 9, 0, 0, tzinfo=UTC).timestamp()


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def local_hms(moment: float) -> str:
    return datetime.fromtimestamp(moment).strftime("%H:%M:%S")


def challenge(slug: str, kind: str, state: str = "running", **extra: Any) -> dict[str, Any]:
    body = {"slug": slug, "title": TITLES.get(slug, slug), "kind": kind, "duration_s": 3600.0,
            "state": state, "started_at": None, "deadline": None, "remaining_s": 3600.0,
            "server_time": iso(NOW)}
    return {**body, **extra}


def row(rank: int | None, team: str, metrics: dict[str, float] | None, score: float | None,
        received: float | None = None, submissions: int = 1) -> dict[str, Any]:
    return {"rank": rank, "team": team, "metrics": metrics, "score": score,
            "submission_id": 1 if rank else None,
            "received_at": iso(received) if received else None, "submissions": submissions,
            "valid": rank is not None}


def board(slug: str, rows: list[dict[str, Any]], *, seq: int = 1,
          frozen: bool = False) -> dict[str, Any]:
    return {"type": "leaderboard", "challenge": slug, "seq": seq, "frozen": frozen,
            "rows": rows, "server_time": iso(NOW)}


def test_a_segmentation_board_shows_dice_surface_mse_score_and_ties() -> None:
    c = challenge("sarcopenia", "segmentation-surface", deadline=iso(NOW + 1800))
    rows = [row(1, "Lumbar Lab", {"dice": 0.91, "surface_mse": 120.5}, 2.0, NOW - 600, 3),
            row(2, "Pixel Anatomy", {"dice": 0.88, "surface_mse": 140.25}, 5.0, NOW - 300),
            row(2, "Owkin", {"dice": 0.88, "surface_mse": 140.25}, 5.0, NOW - 200, 2),
            row(None, "Slow Team", None, None, submissions=2)]
    text = render_board(c, board("sarcopenia", rows), 0.0, NOW)
    lines = text.splitlines()
    assert lines[0] == f"{TITLES['sarcopenia']}  [sarcopenia]"
    assert lines[1] == f"running · 30:00 left (deadline {local_hms(NOW + 1800)})"
    assert lines[2].split() == ["#", "team", "dice", "surface_mse", "score", "subs", "counted"]
    assert lines[3].split() == ["1", "Lumbar", "Lab", "0.9100", "120.5000", "2", "3",
                                local_hms(NOW - 600)]
    # Tied teams share the rank, marked "=", in name order.
    assert lines[4].split()[:3] == ["2=", "Owkin", "0.8800"]
    assert lines[5].split()[:3] == ["2=", "Pixel", "Anatomy"]
    assert lines[6].split()[:3] == ["-", "Slow", "Team"] and "no valid submission" in lines[6]
    assert "FROZEN" not in text


def test_teams_without_a_valid_submission_come_last_whatever_the_order_received() -> None:
    c = challenge("nodules", "binary-probability", deadline=iso(NOW + 60))
    rows = [row(None, "Aaa", None, None, submissions=0),
            row(2, "Bbb", {"auc": 0.7}, 0.7, NOW - 5),
            row(None, "Ccc", None, None, submissions=4),
            row(1, "Ddd", {"auc": 1.0}, 1.0, NOW - 9)]
    lines = render_board(c, board("nodules", rows), 0.0, NOW).splitlines()
    assert lines[2].split() == ["#", "team", "auc", "subs", "counted"]
    assert [line.split()[1] for line in lines[3:]] == ["Ddd", "Bbb", "Aaa", "Ccc"]
    assert lines[3].split() == ["1", "Ddd", "1.0000", "1", local_hms(NOW - 9)]
    assert lines[6].split()[:5] == ["-", "Ccc", "-", "4", "-"]


def test_a_frozen_regression_board_is_marked() -> None:
    c = challenge("edss", "regression", deadline=iso(NOW + 300))
    rows = [row(1, "Myelin Minds", {"mse": 1.25}, 1.25, NOW - 60)]
    text = render_board(c, board("edss", rows, frozen=True), 0.0, NOW)
    assert "FROZEN" in text.splitlines()[1]
    assert text.splitlines()[2].split() == ["#", "team", "mse", "subs", "counted"]
    assert text.splitlines()[3].split()[:3] == ["1", "Myelin", "Minds"]


def test_times_are_the_events_wall_clock_when_the_server_names_its_zone() -> None:
    c = challenge("edss", "regression", deadline=iso(NOW + 300))
    rows = [row(1, "Myelin Minds", {"mse": 1.25}, 1.25, NOW - 60)]
    zone = ZoneInfo("America/Sao_Paulo")
    text = render_board(c, board("edss", rows), 0.0, NOW, "America/Sao_Paulo")
    deadline = datetime.fromtimestamp(NOW + 300, zone).strftime("%H:%M:%S")
    assert f"(deadline {deadline} America/Sao_Paulo)" in text.splitlines()[1]
    counted = datetime.fromtimestamp(NOW - 60, zone).strftime("%H:%M:%S")
    assert text.splitlines()[3].split()[-1] == counted
    state = WatchState()
    state.apply({"type": "clock", "challenges": [c], "timezone": "America/Sao_Paulo",
                 "server_time": iso(NOW)}, NOW)
    assert "server time " + datetime.fromtimestamp(NOW, zone).strftime("%H:%M:%S") + \
        " America/Sao_Paulo" in render_screen(state, "http://x:1", "live", NOW)


def test_the_time_left_follows_the_servers_clock_not_the_local_one() -> None:
    c = challenge("nodules", "binary-probability", deadline=iso(NOW + 3600 * 2))
    # The local clock is 90 s behind the server's: 1:58:30 left, not 2:00:00.
    assert "running · 1:58:30 left" in render_board(c, None, 90.0, NOW)
    assert "running · 2:00:00 left" in render_board(c, None, 0.0, NOW)
    assert "running · 00:00 left" in render_board(c, None, 0.0, NOW + 7300)
    paused = challenge("nodules", "binary-probability", "paused", remaining_s=754.2)
    assert "paused · 12:34 left, clock stopped" in render_board(paused, None, 999.0, NOW)
    waiting = challenge("edss", "regression", "waiting")
    assert "waiting · 1:00:00 once started" in render_board(waiting, None, 0.0, NOW)
    closed = challenge("edss", "regression", "closed", remaining_s=0)
    assert render_board(closed, None, 0.0, NOW).splitlines()[1] == "closed"


def test_extra_time_given_to_a_team_is_shown() -> None:
    c = challenge("nodules", "binary-probability", deadline=iso(NOW + 60),
                  extensions=[{"team": "Lumbar Lab", "extension_s": 300.0, "state": "running",
                               "deadline": iso(NOW + 360), "remaining_s": 360.0}])
    assert "extra time for Lumbar Lab: 06:00 left" in render_board(c, None, 0.0, NOW)


def test_boards_that_cannot_be_shown_say_why() -> None:
    c = challenge("sarcopenia", "segmentation-surface", deadline=iso(NOW + 60))
    hidden = {"type": "error", "channel": "leaderboard:sarcopenia",
              "error": {"code": "forbidden", "message": "your token may not see it"}}
    assert "board not visible to this token" in render_board(c, hidden, 0.0, NOW)
    missing = {"type": "error", "error": {"code": "unknown_channel",
                                          "message": "no channel 'leaderboard:sarcopenia'"}}
    assert "no live board from this server (unknown_channel" in render_board(c, missing, 0, NOW)
    assert "waiting for the board" in render_board(c, None, 0.0, NOW)
    empty = render_board(c, board("sarcopenia", []), 0.0, NOW)
    assert "no teams on this board yet" in empty


# -- WatchState: what watch does with each message --------------------------------------------

def clock_message(*slugs: str) -> dict[str, Any]:
    return {"type": "clock", "server_time": iso(NOW),
            "challenges": [challenge(s, "regression", "waiting") for s in slugs]}


def test_watch_subscribes_to_each_board_the_clock_names_once() -> None:
    state = WatchState()
    assert state.apply(clock_message("nodules", "edss"), NOW - 2.5) == [
        "leaderboard:nodules", "leaderboard:edss"]
    assert state.offset_s == pytest.approx(2.5)
    assert state.apply(clock_message("nodules", "edss"), NOW) == []
    assert not state.complete()
    state.apply(board("nodules", []), NOW)
    state.apply({"type": "error", "error": {"code": "unknown_channel",
                                            "message": "no channel 'leaderboard:edss'"}}, NOW)
    assert state.complete()
    assert state.boards["edss"]["error"]["code"] == "unknown_channel"

    only = WatchState(only="edss")
    assert only.apply(clock_message("nodules", "edss"), NOW) == ["leaderboard:edss"]
    assert [c["slug"] for c in only.shown()] == ["edss"]
    lost = WatchState(only="lungs")
    lost.apply(clock_message("nodules", "edss"), NOW)
    assert lost.unknown_challenge


def test_a_seq_gap_asks_for_a_fresh_snapshot_and_stale_messages_are_ignored() -> None:
    state = WatchState()
    state.apply(clock_message("nodules"), NOW)
    assert state.apply(board("nodules", [], seq=7), NOW) == []  # the snapshot: any seq
    assert state.apply(board("nodules", [], seq=8), NOW) == []
    gap = board("nodules", [row(1, "Ddd", {"auc": 0.9}, 0.9, NOW)], seq=10)
    assert state.apply(gap, NOW) == ["leaderboard:nodules"]
    assert state.boards["nodules"] is gap  # newer than what was shown: show it meanwhile
    snapshot = board("nodules", [], seq=10)
    assert state.apply(snapshot, NOW) == []
    assert state.boards["nodules"] is snapshot
    assert state.apply(board("nodules", [], seq=9), NOW) == []
    assert state.boards["nodules"] is snapshot  # an older board never replaces a newer one


def test_resync_resubscribes_and_a_new_connection_starts_over() -> None:
    state = WatchState()
    state.apply(clock_message("nodules"), NOW)
    state.apply(board("nodules", [], seq=3), NOW)
    resync = {"type": "resync", "channels": ["clock", "leaderboard:nodules"]}
    assert state.apply(resync, NOW) == ["clock", "leaderboard:nodules"]
    assert state.apply(board("nodules", [], seq=1), NOW) == []  # fresh snapshot, any seq
    state.connected()
    assert state.apply(clock_message("nodules"), NOW) == ["leaderboard:nodules"]


def test_the_screen_lists_every_challenge_with_its_board() -> None:
    state = WatchState()
    state.apply(clock_message("sarcopenia", "nodules", "edss"), NOW)
    state.apply(board("nodules", [row(1, "Ddd", {"auc": 0.9}, 0.9, NOW)]), NOW)
    screen = render_screen(state, "http://x:1", "live", NOW)
    assert screen.splitlines()[0] == f"Podium · http://x:1 · server time {local_hms(NOW)} · live"
    for title in TITLES.values():
        assert title in screen
    assert "Ddd" in screen


# -- submit: usage and network failures ------------------------------------------------------

def test_submit_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = closed_port_url()
    missing = tmp_path / "nope.csv"
    assert podium("submit", "--server", url, "--token", "t", "--challenge", "nodules",
                  str(missing)) == EXIT_USAGE
    assert f"submission file {missing} not found" in capsys.readouterr().err
    assert podium("submit", "--server", "localhost:port", "--token", "t", "--challenge",
                  "nodules", str(NODULES_CSV)) == EXIT_USAGE
    assert "bad port in server address 'localhost:port'" in capsys.readouterr().err
    assert podium("submit", "--server", url, "--challenge", "nodules",
                  str(NODULES_CSV)) == EXIT_USAGE
    assert "PODIUM_TOKEN" in capsys.readouterr().err
    assert podium("submit", "--token", "t", "--challenge", "nodules",
                  str(NODULES_CSV)) == EXIT_USAGE
    assert "PODIUM_SERVER" in capsys.readouterr().err
    assert podium("submit", "--server", url, "--token", "t", "--challenge", "nodules",
                  str(NODULES_CSV), "--wait", "-3") == EXIT_USAGE
    assert "positive number of seconds" in capsys.readouterr().err


def test_an_unreachable_server_exits_4_and_says_to_send_again(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_SERVER", closed_port_url())
    monkeypatch.setenv("PODIUM_TOKEN", "some-token")
    # `--wait FILE` (no seconds) is understood as FILE with the default wait.
    assert podium("submit", "--challenge", "nodules", "--wait", str(NODULES_CSV)) == \
        EXIT_NETWORK
    err = capsys.readouterr().err
    assert "cannot reach the server" in err and "NOT acknowledged" in err
    assert podium("submit", "--challenge", "nodules", "--json", str(NODULES_CSV)) == \
        EXIT_NETWORK
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
    assert code == EXIT_NETWORK
    assert out == ""  # no receipt
    assert "No receipt was received, so the upload is NOT acknowledged: send it again" in err
    assert "of 4,194,304 bytes sent" in err


async def _watch_for(seconds: float, *args: Any, **kwargs: Any) -> str:
    out = io.StringIO()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(watch(*args, out=out, err=io.StringIO(), **kwargs), seconds)
    return out.getvalue()


def test_watch_keeps_reconnecting_with_backoff_while_the_server_is_down() -> None:
    url = closed_port_url()
    text = run(_watch_for(2.2, url, None, None, once=False))
    assert "reconnecting…" in text
    tries = [t for t in ("next try in 0.5 s", "next try in 1 s") if t in text]
    assert tries == ["next try in 0.5 s", "next try in 1 s"]
    assert "next try in 4 s" not in text
    assert text.endswith("\x1b[?25h\n")  # the cursor is given back


def test_watch_once_exits_4_when_the_server_is_down(capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    assert podium("watch", "--server", closed_port_url(), "--once") == EXIT_NETWORK
    assert "cannot reach the server" in capsys.readouterr().err


# -- against the server ---------------------------------------------------------------------

def test_submit_waits_for_the_result_and_checks_the_receipt(
        server: AppServer, capsys: pytest.CaptureFixture[str]) -> None:
    start(server, "nodules")
    token = server.tokens()["Lumbar Lab"]
    code = podium("submit", "--server", server.url, "--token", token, "--challenge", "nodules",
                  str(NODULES_CSV), "--wait")
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
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
    assert code == EXIT_OK, err
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
    assert code == EXIT_REFUSED
    assert "status: invalid" in out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) >= 3, out  # a duplicate, a value out of range, an unknown id, missing ids


def test_refusals_exit_1_with_the_servers_code_and_message(
        server: AppServer, capsys: pytest.CaptureFixture[str]) -> None:
    tokens = server.tokens()
    base = ["submit", "--server", server.url, "--challenge", "nodules", str(NODULES_CSV)]
    assert podium(*base, "--token", tokens["Lumbar Lab"]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "(HTTP 403, not_started)" in err and "has not started yet" in err

    assert podium(*base, "--token", "not-a-real-token") == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "(HTTP 401, invalid_token)" in err and "not recognised" in err

    assert podium(*base, "--token", tokens["Lumbar Lab"], "--json") == EXIT_REFUSED
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "not_started"

    start(server, "nodules")
    closed = start(server, "nodules", "close")
    assert podium(*base, "--token", tokens["Lumbar Lab"]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "(HTTP 403, deadline_passed)" in err
    assert f"  deadline: {closed['deadline']}" in err
    assert "  server_time: " in err


def test_polling_finds_the_result_of_an_acknowledged_upload(
        server: AppServer, capsys: pytest.CaptureFixture[str]) -> None:
    start(server, "nodules")
    token = server.tokens()["Lumbar Lab"]
    assert podium("submit", "--server", server.url, "--token", token, "--challenge", "nodules",
                  str(NODULES_CSV), "--json") == EXIT_OK
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
    assert code == EXIT_REFUSED, err
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
    assert code == EXIT_OK, err
    assert f"sha256       {sha256_of(big)}  (matches the local file)" in out
    assert f"size         {20 * 1024 * 1024:,} bytes" in out
    assert [line.split()[1] for line in err.splitlines() if line.startswith("upload:")] == \
        [f"{p}%" for p in range(10, 101, 10)]
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while sending a 20 MiB file"


def test_watch_once_prints_every_challenge_with_its_state(
        server: AppServer, capsys: pytest.CaptureFixture[str], clock: DatabaseClock) -> None:
    clock.freeze()
    running = start(server, "nodules")
    assert podium("watch", "--server", server.url, "--once") == EXIT_OK
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # a plain snapshot, for scripts
    for slug, title in TITLES.items():
        assert f"{title}  [{slug}]" in out
    lines = out.splitlines()
    state_of = {slug: lines[lines.index(f"{title}  [{slug}]") + 1]
                for slug, title in TITLES.items()}
    assert state_of["sarcopenia"] == "waiting · 1:00:00 once started"
    assert state_of["edss"] == "waiting · 1:00:00 once started"
    # The client counts down from the server's time locally: a moment may have passed.
    assert re.match(r"running · (2:00:00|1:5\d:\d\d) left", state_of["nodules"])
    deadline = datetime.fromisoformat(running["deadline"].replace("Z", "+00:00"))
    # The event's wall clock, named: not this machine's zone.
    paris = deadline.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M:%S")
    assert f"(deadline {paris} Europe/Paris)" in state_of["nodules"]

    token = server.tokens()["jury"]
    assert podium("watch", "--server", server.url, "--token", token, "--challenge", "edss",
                  "--once") == EXIT_OK
    out = capsys.readouterr().out
    assert TITLES["edss"] in out
    assert TITLES["nodules"] not in out and TITLES["sarcopenia"] not in out

    assert podium("watch", "--server", server.url, "--challenge", "lungs", "--once") == \
        EXIT_USAGE
    assert "no challenge 'lungs'; challenges: sarcopenia, nodules, edss" in \
        capsys.readouterr().err


def test_watch_redraws_on_clock_and_board_changes(server: AppServer,
                                                  clock: DatabaseClock) -> None:
    tokens = server.tokens()
    clock.freeze()

    async def until(out: io.StringIO, text: str) -> None:
        # Waits for the screen to show `text`: the event, not a guess at how long it takes.
        async with asyncio.timeout(60):
            while not re.search(text, out.getvalue().rsplit("\x1b[H\x1b[2J", 1)[-1],  # noqa: ASYNC110
                                re.MULTILINE):
                await asyncio.sleep(0.05)  # a StringIO has no event to wait on

    async def scenario() -> str:
        out = io.StringIO()
        task = asyncio.create_task(watch(server.url, tokens["jury"], "nodules", once=False,
                                         out=out, err=io.StringIO()))
        await until(out, "waiting · 2:00:00 once started")
        await asyncio.to_thread(start, server, "nodules")
        await until(out, "running · ")
        code = await asyncio.to_thread(
            podium, "submit", "--server", server.url, "--token", tokens["Lumbar Lab"],
            "--challenge", "nodules", str(NODULES_CSV), "--wait", "60")
        assert code == EXIT_OK
        await until(out, r"^\s*1 +Lumbar Lab")  # ranked first once scored
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return out.getvalue()

    text = run(scenario())
    screens = text.split("\x1b[H\x1b[2J")
    assert any("waiting · 2:00:00 once started" in s for s in screens)
    last = screens[-1]
    assert " · live" in last and TITLES["nodules"] in last
    assert TITLES["edss"] not in last  # --challenge nodules
    assert re.search(r"running · (2:00:00|1:5\d:\d\d)", last)
    ranked = [line.split() for line in last.splitlines() if line.strip().startswith("1 ")]
    assert ranked and ranked[0][1:3] == ["Lumbar", "Lab"], last
    assert text.endswith("\x1b[?25h\n")


# -- addresses without a scheme ---------------------------------------------------------------

def test_a_server_given_without_scheme_is_reached_over_http(
        server: AppServer, capsys: pytest.CaptureFixture[str]) -> None:
    start(server, "nodules")
    bare = server.url.removeprefix("http://")
    code = podium("submit", "--server", bare, "--token", server.tokens()["Lumbar Lab"],
                  "--challenge", "nodules", str(NODULES_CSV))
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert out.startswith("receipt: submission ")
    # The receipt is read in the event's zone, named, beside the API's UTC.
    _, mine = server.json("GET", "/api/v1/challenges/nodules/submissions",
                          server.tokens()["Lumbar Lab"])
    received = mine[0]["received_at"]
    paris = datetime.fromisoformat(received.replace("Z", "+00:00")).astimezone(
        ZoneInfo("Europe/Paris")).strftime("%H:%M:%S")
    assert f"received_at  {paris} Europe/Paris ({received})" in out


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a test certificate: {made.stderr[-200:]}")
    return cert, key


def test_a_server_given_without_scheme_that_speaks_tls_is_reached_over_https(
        example_event: Path, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the venue's own authority
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = AppServer(example_event, tmp_path / "data", database_url,
                       ssl_context=context).start()

    async def redirector() -> tuple[Any, str]:
        # A front that sends plain HTTP to https, as venues' reverse proxies do.
        from aiohttp import web

        async def moved(request: web.Request) -> web.Response:
            raise web.HTTPPermanentRedirect(server.url + request.path_qs)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", moved)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, f"127.0.0.1:{runner.addresses[0][1]}"

    try:
        assert server.url.startswith("https://")
        start(server, "nodules")
        tokens = server.tokens()
        tls_port = server.url.removeprefix("https://")
        code = podium("submit", "--server", tls_port, "--token", tokens["Lumbar Lab"],
                      "--challenge", "nodules", str(NODULES_CSV))
        out, err = capsys.readouterr()
        assert code == EXIT_OK, err
        assert out.startswith("receipt: submission ")

        loop = asyncio.new_event_loop()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            runner, front = pool.submit(loop.run_until_complete, redirector()).result()
            thread = pool.submit(loop.run_forever)
            try:
                code = podium("watch", "--server", front, "--token", tokens["jury"],
                              "--challenge", "nodules", "--once")
                out, err = capsys.readouterr()
                assert code == EXIT_OK, err
                assert f"Podium · {server.url}" in out and "Lumbar Lab" in out
            finally:
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
                loop.call_soon_threadsafe(loop.stop)
                thread.result(30)
                loop.close()
    finally:
        server.stop()
