"""Leaderboards over HTTP and websockets: visibility, freeze, seq, two processes, slow
viewers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.helpers import (
    EXAMPLE_DIR,
    AppServer,
    Client,
    DatabaseClock,
    set_challenge_keys,
    wait_for,
)

NODULES = (EXAMPLE_DIR / "submissions" / "nodules-nodule-hunters.csv").read_bytes()


def ws_connect(server: Client, token: str | None = None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return connect(server.url.replace("http://", "ws://") + "/ws",
                   additional_headers=headers)


def subscribe(ws: ClientConnection, *channels: str) -> list[dict[str, Any]]:
    ws.send(json.dumps({"type": "subscribe", "channels": list(channels)}))
    return [json.loads(ws.recv(timeout=60)) for _ in channels]


def next_of(ws: ClientConnection, kind: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


def better(content: bytes, value: str) -> bytes:
    """The example nodules file with its first probability changed (changes the AUC)."""
    return content.replace(b"NOD001;0,372", f"NOD001;{value}".encode())


def test_visibility_per_role(server: AppServer) -> None:
    tokens = server.tokens()
    # nodules: leaderboard = "jury"; edss: "teams".
    assert server.json("GET", "/api/v1/challenges/nodules/leaderboard")[0] == 401
    status, body = server.json("GET", "/api/v1/challenges/nodules/leaderboard",
                               tokens["Lumbar Lab"])
    assert (status, body["error"]["code"]) == (403, "board_hidden")
    for role in ("jury", "organizer"):
        status, body = server.json("GET", "/api/v1/challenges/nodules/leaderboard",
                                   tokens[role])
        assert status == 200 and body["challenge"] == "nodules"
        assert [r["team"] for r in body["rows"]] == ["Lumbar Lab", "Myelin Minds",
                                                     "Nodule Hunters"]
        assert all(r["rank"] is None and not r["valid"] for r in body["rows"])
    assert server.json("GET", "/api/v1/challenges/edss/leaderboard", tokens["Lumbar Lab"])[0] \
        == 200
    assert server.json("GET", "/api/v1/challenges/edss/leaderboard")[0] == 401
    with ws_connect(server, tokens["Lumbar Lab"]) as ws:
        denied, allowed = subscribe(ws, "leaderboard:nodules", "leaderboard:edss")
        assert denied["type"] == "error" and denied["error"]["code"] == "forbidden"
        assert allowed["type"] == "leaderboard" and allowed["challenge"] == "edss"
    with ws_connect(server) as ws:
        (denied,) = subscribe(ws, "leaderboard:edss")
        assert denied["type"] == "error"


def test_snapshot_then_a_message_per_change_with_seq(server: AppServer) -> None:
    tokens = server.tokens()
    server.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
    with ws_connect(server, tokens["jury"]) as ws:
        (snapshot,) = subscribe(ws, "leaderboard:nodules")
        seq = snapshot["seq"]
        assert "server_time" in snapshot
        status, _ = server.upload("nodules", tokens["Lumbar Lab"], "a.csv", NODULES)
        assert status == 202
        counted = next_of(ws, "leaderboard")          # the upload: submissions count
        assert counted["seq"] == seq + 1
        row = next(r for r in counted["rows"] if r["team"] == "Lumbar Lab")
        assert row["submissions"] == 1
        scored = next_of(ws, "leaderboard")           # the result: a ranked row
        assert scored["seq"] == seq + 2
        assert scored["rows"][0]["team"] == "Lumbar Lab" and scored["rows"][0]["rank"] == 1
        assert scored["rows"][0]["metrics"]["auc"] == pytest.approx(1.0)
        # Another team overtakes nobody but takes rank 2; rows move.
        server.upload("nodules", tokens["Nodule Hunters"], "b.csv", better(NODULES, "0,9"))
        latest = next_of(ws, "leaderboard")
        while latest["seq"] < seq + 4:
            latest = next_of(ws, "leaderboard")
        assert [r["team"] for r in latest["rows"]][:2] == ["Lumbar Lab", "Nodule Hunters"]
        _, over_http = server.json("GET", "/api/v1/challenges/nodules/leaderboard",
                                   tokens["jury"])
        assert over_http["seq"] == latest["seq"] and over_http["rows"] == latest["rows"]


def test_freeze_hides_late_results_from_all_but_the_jury(
        example_event: Path, database_url: str, tmp_path: Path, clock: DatabaseClock) -> None:
    set_challenge_keys(example_event, "edss", duration_minutes=60, freeze_minutes=15)
    server = AppServer(example_event, tmp_path / "data", database_url).start()
    try:
        tokens = server.tokens()
        csv = (EXAMPLE_DIR / "submissions" / "edss-myelin-minds.csv").read_bytes()
        clock.freeze()
        server.act("edss", "start")
        status, receipt = server.upload("edss", tokens["Myelin Minds"], "e.csv", csv,
                                        "?wait=60")
        assert receipt["status"] == "scored"
        _, team_view = server.json("GET", "/api/v1/challenges/edss/leaderboard",
                                   tokens["Pixel Anatomy"])
        assert team_view["frozen"] is False
        clock.advance(46 * 60)  # into the last quarter of an hour: the board freezes

        def frozen_view() -> dict[str, Any] | None:
            _, view = server.json("GET", "/api/v1/challenges/edss/leaderboard",
                                  tokens["Pixel Anatomy"])
            return view if view["frozen"] else None

        team_view = wait_for(frozen_view, what="the board to freeze")
        assert team_view["frozen_at"]
        status, receipt = server.upload("edss", tokens["Pixel Anatomy"], "late.csv", csv,
                                        "?wait=60")
        assert receipt["status"] == "scored"
        _, team_view = server.json("GET", "/api/v1/challenges/edss/leaderboard",
                                   tokens["Pixel Anatomy"])
        _, jury_view = server.json("GET", "/api/v1/challenges/edss/leaderboard",
                                   tokens["jury"])
        assert jury_view["frozen"] is False
        ranked = lambda board: [r["team"] for r in board["rows"] if r["valid"]]  # noqa: E731
        assert ranked(jury_view) == ["Myelin Minds", "Pixel Anatomy"]
        assert ranked(team_view) == ["Myelin Minds"]  # the late result stays hidden
    finally:
        server.stop()


def test_entries_as_the_board_stood_at_a_cutoff() -> None:
    """The one board path (live, frozen, workbook, rescore): a cutoff keeps the submissions
    received before it, and of those the results scored before it."""
    from datetime import UTC, datetime, timedelta

    from server.leaderboard import entries, ranked
    from server.results import ChallengeResults, SubmissionRecord

    t0 = datetime(2019, 10, 13, 9, tzinfo=UTC)

    def sub(n: int, team: str, received: int, scored: int | None, auc: float) -> SubmissionRecord:
        return SubmissionRecord(
            id=n, team=team, received_at=t0 + timedelta(minutes=received), sha256="0" * 64,
            size=1, filename="p.csv", status="scored" if scored is not None else "queued",
            metrics={"auc": auc} if scored is not None else None, errors=(),
            scored_at=t0 + timedelta(minutes=scored) if scored is not None else None)

    challenge = ChallengeResults(
        slug="nodules", title="Nodules", kind="binary-probability", counts="last",
        teams=("A", "B", "C"),
        submissions=(sub(1, "A", 1, 2, 0.7), sub(2, "B", 3, 12, 0.9), sub(3, "A", 11, 12, 0.8),
                     sub(4, "C", 5, None, 0.0)))
    cutoff = t0 + timedelta(minutes=10)
    assert [(e.team, e.counted.id if e.counted else None, e.submissions)
            for e in entries(challenge, cutoff)] == [("A", 1, 1), ("B", None, 1), ("C", None, 1)]
    assert [(r.rank, r.team, r.score) for r in ranked(challenge)] == [
        (1, "B", 0.9), (2, "A", 0.8), (None, "C", None)]


EDSS = {"MS001": 1.0, "MS002": 2.5, "MS003": 3.0, "MS004": 0.0, "MS005": 6.5, "MS006": 2.0,
        "MS007": 4.5, "MS008": 1.5}


def edss_file(values: dict[str, float]) -> bytes:
    return ("id,value\n" + "".join(f"{k},{v}\n" for k, v in values.items())).encode()


def test_a_declared_ranking_orders_the_live_board(example_event: Path, database_url: str,
                                                  tmp_path: Path) -> None:
    """edss declares rank-then-aggregate on the per-exam squared errors. Myelin Minds is 0.5
    off on every exam (MSE 0.25), Pixel Anatomy exact on seven and 2 off on one (MSE 0.5):
    by MSE (the kind's rule) Myelin Minds would lead; exam by exam Pixel Anatomy is better
    seven times out of eight (mean rank 9/8 against 15/8) and leads."""
    text = example_event.read_text().replace(
        'truth = "truth/edss.csv"',
        'truth = "truth/edss.csv"\nranking = {scheme = "rank-then-aggregate", metrics = ["mse"]}')
    example_event.write_text(text)
    server = AppServer(example_event, tmp_path / "data", database_url).start()
    try:
        tokens = server.tokens()
        server.act("edss", "start")
        uploads = {"Myelin Minds": {k: v + 0.5 for k, v in EDSS.items()},
                   "Pixel Anatomy": {**EDSS, "MS005": 8.5}}
        for team, values in uploads.items():
            status, body = server.upload("edss", tokens[team], "edss.csv", edss_file(values),
                                         "?wait=60")
            assert (status, body["status"]) == (202, "scored"), body
        status, board = server.json("GET", "/api/v1/challenges/edss/leaderboard",
                                    tokens["jury"])
        assert status == 200
        assert [(r["rank"], r["team"]) for r in board["rows"]] == [
            (1, "Pixel Anatomy"), (2, "Myelin Minds")]
        assert [r["score"] for r in board["rows"]] == pytest.approx([9 / 8, 15 / 8])
        assert [r["metrics"]["mse"] for r in board["rows"]] == pytest.approx([0.5, 0.25])
        assert board["columns"][-1] == {"key": "score", "label": "Score", "digits": 2,
                                        "grouped": False, "unit": ""}
        with ws_connect(server, tokens["jury"]) as ws:
            (message,) = subscribe(ws, "leaderboard:edss")
            assert [r["team"] for r in message["rows"]] == ["Pixel Anatomy", "Myelin Minds"]
        _, challenge = server.json("GET", "/api/v1/challenges/edss", tokens["jury"])
        assert challenge["format"]["ranking"] == "mean over exams of the rank on MSE, lowest wins"
    finally:
        server.stop()
