"""`podium watch` (server/watch.py): the boards and the messages directly, the command against
the server in this process."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from server.command import ExitCode
from server.watch import (
    Column,
    WatchState,
    backoff_delays,
    board_columns,
    error_channel,
    format_remaining,
    render_board,
    render_screen,
    watch,
    websocket_url,
)
from tests.command_line import NODULES_CSV, TITLES, closed_port_url, podium, start
from tests.helpers import AppServer, DatabaseClock, run


@pytest.fixture(autouse=True)
def _no_podium_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODIUM_TOKEN", raising=False)
    monkeypatch.delenv("PODIUM_SERVER", raising=False)


def test_the_websocket_is_beside_the_api() -> None:
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
    rows = [row(1, "Lumbar Lab", {"dice": 0.91, "surface_mse": 1120.25}, 2.0, NOW - 600, 3),
            row(2, "Pixel Anatomy", {"dice": 0.88, "surface_mse": 1140.25}, 5.0, NOW - 300),
            row(2, "Owkin", {"dice": 0.88, "surface_mse": 1140.25}, 5.0, NOW - 200, 2),
            row(None, "Slow Team", None, None, submissions=2)]
    text = render_board(c, board("sarcopenia", rows), 0.0, NOW)
    lines = text.splitlines()
    assert lines[0] == f"{TITLES['sarcopenia']}  [sarcopenia]"
    assert lines[1] == f"running · 30:00 left (deadline {local_hms(NOW + 1800)})"
    # A server that sends no columns: this Podium's kind's, with their labels and decimals.
    assert lines[2].split() == ["#", "team", "Dice", "MSE", "Score", "subs", "counted"]
    assert lines[3].split() == ["1", "Lumbar", "Lab", "0.9100", "1,120", "2", "3",
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
            row(1, "Ddd", {"auc": 1.0, "brier": 0.02, "ece": 0.1}, 1.0, NOW - 9)]
    lines = render_board(c, board("nodules", rows), 0.0, NOW).splitlines()
    assert lines[2].split() == ["#", "team", "AUC", "Brier", "ECE", "subs", "counted"]
    assert [line.split()[1] for line in lines[3:]] == ["Ddd", "Bbb", "Aaa", "Ccc"]
    assert lines[3].split() == ["1", "Ddd", "1.000", "0.020", "0.100", "1", local_hms(NOW - 9)]
    assert lines[4].split()[2:5] == ["0.700", "-", "-"]  # a row without them
    assert lines[6].split()[:7] == ["-", "Ccc", "-", "-", "-", "4", "-"]


def test_a_frozen_regression_board_is_marked() -> None:
    c = challenge("edss", "regression", deadline=iso(NOW + 300))
    rows = [row(1, "Myelin Minds", {"mse": 1.25}, 1.25, NOW - 60)]
    text = render_board(c, board("edss", rows, frozen=True), 0.0, NOW)
    assert "FROZEN" in text.splitlines()[1]
    assert text.splitlines()[2].split() == ["#", "team", "MSE", "subs", "counted"]
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

def test_a_board_shows_the_columns_the_server_sends() -> None:
    c = challenge("sarcopenia", "segmentation-surface", deadline=iso(NOW + 60))
    columns = [{"key": "dice", "label": "Dice", "digits": 2, "direction": "higher"},
               {"key": "score", "label": "rank sum"}]
    rows = [row(1, "Lumbar Lab", {"dice": 0.91, "surface_mse": 120.5}, 2.0, NOW - 600)]
    sent = {**board("sarcopenia", rows), "columns": columns}
    assert [col.label for col in board_columns(c, sent)] == ["Dice", "rank sum"]
    lines = render_board(c, sent, 0.0, NOW).splitlines()
    assert lines[2].split() == ["#", "team", "Dice", "rank", "sum", "subs", "counted"]
    assert lines[3].split()[3:5] == ["0.91", "2"]  # surface_mse not asked for
    # The challenge may carry them instead of each board message.
    assert [col.key for col in board_columns({**c, "columns": columns}, board("x", []))] == \
        ["dice", "score"]
    # From a server that sends none: this Podium's kind's, else the metrics the rows carry.
    assert [col.key for col in board_columns(c, board("sarcopenia", rows))] == \
        ["dice", "surface_mse", "score"]
    assert [col.key for col in board_columns(challenge("edss", "regression"), board("e", []))] \
        == ["mse"]
    other = board("x", [row(1, "Ddd", {"recall": 0.5, "froc": 0.7}, 0.7, NOW)])
    assert board_columns(challenge("x", "nodule-size"), other) == [
        Column("froc", "froc"), Column("recall", "recall")]


def test_an_error_names_its_channel_in_a_field_or_else_in_its_text() -> None:
    text = {"code": "unknown_channel", "message": "no channel 'leaderboard:edss'"}
    assert error_channel({"type": "error", "error": text}) == "leaderboard:edss"
    # The field wins over the text, and a field that names nothing is not guessed from it.
    assert error_channel({"type": "error", "channel": "leaderboard:nodules",
                          "error": text}) == "leaderboard:nodules"
    assert error_channel({"type": "error", "channel": None, "error": text}) is None
    assert error_channel({"type": "error", "error": {"code": "bad_request",
                                                     "message": "not JSON"}}) is None
    state = WatchState()
    state.apply(clock_message("edss"), NOW)
    state.apply({"type": "error", "channel": "leaderboard:edss",
                 "error": {"code": "unknown_channel", "message": "no such board"}}, NOW)
    assert state.complete() and state.boards["edss"]["error"]["message"] == "no such board"


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
    assert podium("watch", "--server", closed_port_url(), "--once") == ExitCode.NETWORK
    assert "cannot reach the server" in capsys.readouterr().err


def test_watch_once_prints_every_challenge_with_its_state(
        server: AppServer, capsys: pytest.CaptureFixture[str], clock: DatabaseClock) -> None:
    clock.freeze()
    running = start(server, "nodules")
    assert podium("watch", "--server", server.url, "--once") == ExitCode.OK
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
                  "--once") == ExitCode.OK
    out = capsys.readouterr().out
    assert TITLES["edss"] in out
    assert TITLES["nodules"] not in out and TITLES["sarcopenia"] not in out

    assert podium("watch", "--server", server.url, "--challenge", "lungs", "--once") == \
        ExitCode.USAGE
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
        assert code == ExitCode.OK
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
