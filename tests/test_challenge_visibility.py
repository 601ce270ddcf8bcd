"""What a viewer without the right role must not learn: other teams' extensions (anonymous
viewers of the public clock), the activity behind a frozen board; and `extend` refusing
numbers no clock can hold."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from server.countdown.schedule import extension_seconds
from tests.helpers import EXAMPLE_DIR, AppServer, Client, DatabaseClock, set_challenge_keys

EDSS = (EXAMPLE_DIR / "submissions" / "edss-myelin-minds.csv").read_bytes()


def ws_connect(server: Client, token: str | None = None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return connect(server.url.replace("http://", "ws://") + "/ws", additional_headers=headers)


def subscribe(ws: ClientConnection, *channels: str) -> list[dict[str, Any]]:
    ws.send(json.dumps({"type": "subscribe", "channels": list(channels)}))
    return [json.loads(ws.recv(timeout=60)) for _ in channels]


def next_of(ws: ClientConnection, kind: str, timeout: float = 30, **match: Any
            ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
            return message


def test_only_the_team_the_jury_and_organizers_see_an_extension(server: AppServer) -> None:
    tokens = server.tokens()
    organizer = tokens["organizer"]
    server.json("POST", "/api/v1/challenges/nodules/start", organizer, {})
    with ws_connect(server) as anonymous:
        subscribe(anonymous, "clock")
        status, c = server.json("POST", "/api/v1/challenges/nodules/extend", organizer,
                                {"seconds": 120, "team": "Nodule Hunters"})
        assert status == 200 and c["extensions"][0]["team"] == "Nodule Hunters"
        pushed = next_of(anonymous, "clock")
    nodules = next(ch for ch in pushed["challenges"] if ch["slug"] == "nodules")
    assert "extensions" not in nodules and "extension_s" not in nodules
    assert "Nodule Hunters" not in json.dumps(pushed)

    _, listed = server.json("GET", "/api/v1/challenges")
    _, one = server.json("GET", "/api/v1/challenges/nodules")
    status, _, page = server.request("GET", "/clock")
    assert status == 200
    for body in (json.dumps(listed), json.dumps(one), page.decode()):
        assert "Nodule Hunters" not in body and "extension_s" not in body

    _, own = server.json("GET", "/api/v1/challenges/nodules", tokens["Nodule Hunters"])
    assert own["extension_s"] == 120 and "extensions" not in own
    _, other = server.json("GET", "/api/v1/challenges/nodules", tokens["Lumbar Lab"])
    assert "extension_s" not in other and "extensions" not in other
    for role in ("jury", "organizer"):
        _, seen = server.json("GET", "/api/v1/challenges/nodules", tokens[role])
        assert [e["team"] for e in seen["extensions"]] == ["Nodule Hunters"]


def test_a_frozen_board_stands_still_for_non_jury_viewers_until_the_reveal(
        example_event: Path, database_url: str, tmp_path: Path, clock: DatabaseClock) -> None:
    # An hour-long challenge whose board freezes for its last quarter, shown to everyone.
    set_challenge_keys(example_event, "edss", duration_minutes=60, freeze_minutes=15,
                       leaderboard="public")
    server = AppServer(example_event, tmp_path / "data", database_url).start()
    clock.freeze()
    try:
        tokens = server.tokens()
        board = "/api/v1/challenges/edss/leaderboard"
        with ws_connect(server, tokens["Pixel Anatomy"]) as team, \
                ws_connect(server) as anonymous, ws_connect(server, tokens["jury"]) as jury:
            for ws in (team, anonymous, jury):
                subscribe(ws, "leaderboard:edss")
            server.json("POST", "/api/v1/challenges/edss/start", tokens["organizer"], {})
            status, receipt = server.upload("edss", tokens["Myelin Minds"], "e.csv", EDSS,
                                            "?wait=60")
            assert receipt["status"] == "scored"
            clock.advance(46 * 60)  # into the last quarter of an hour
            # The freeze reaches the team's and the anonymous viewer's screens once.
            frozen = next_of(team, "leaderboard", frozen=True)
            assert next_of(anonymous, "leaderboard", frozen=True)["seq"] == frozen["seq"]
            _, team_view = server.json("GET", board, tokens["Pixel Anatomy"])
            _, anonymous_view = server.json("GET", board)
            assert team_view["seq"] == anonymous_view["seq"] == frozen["seq"]
            assert team_view["rows"] == anonymous_view["rows"] == frozen["rows"]
            jury_seq = server.json("GET", board, tokens["jury"])[1]["seq"]

            # Live activity behind the freeze: two uploads, two results.
            for team_name in ("Pixel Anatomy", "Myelin Minds"):
                status, receipt = server.upload("edss", tokens[team_name], "late.csv", EDSS,
                                                "?wait=60")
                assert status == 202 and receipt["status"] == "scored", receipt
            live = next_of(jury, "leaderboard", seq=jury_seq + 4)
            assert live["frozen"] is False

            for token in (tokens["Pixel Anatomy"], None):
                _, again = server.json("GET", board, token)
                assert again["frozen"] is True
                assert (again["seq"], again["rows"]) == (frozen["seq"], frozen["rows"])
            # Nor does a websocket viewer hear of it: within a window in which the jury's
            # screen got four messages, the frozen viewers get none.
            for ws in (team, anonymous):
                with pytest.raises(TimeoutError):
                    next_of(ws, "leaderboard", timeout=3)
    finally:
        server.stop()


@pytest.mark.parametrize("seconds", [1e300, -5, 0, 86401, 10**400, "300", True, None,
                                     float("nan"), float("inf")],
                         ids=["1e300", "negative", "zero", "a_day_and_a_second", "10**400",
                              "text", "bool", "missing", "nan", "inf"])
def test_extend_takes_a_finite_number_of_seconds_up_to_a_day(seconds: Any) -> None:
    with pytest.raises(ValueError, match="seconds"):
        extension_seconds(seconds)


def test_extend_with_a_number_no_clock_holds_is_a_400(server: AppServer) -> None:
    organizer = server.tokens()["organizer"]
    _, before = server.json("POST", "/api/v1/challenges/nodules/start", organizer, {})
    # JSON has no NaN or Infinity, but Python's parser (and so the server's) reads them.
    for raw in ("1e300", "-1e300", "NaN", "Infinity", "1" + "0" * 400, "86401", "0"):
        for extra in ("", ', "team": "Nodule Hunters"'):
            body = f'{{"seconds": {raw}{extra}}}'.encode()
            status, _, answer = server.request(
                "POST", "/api/v1/challenges/nodules/extend", organizer, body,
                {"Content-Type": "application/json"})
            error = json.loads(answer)["error"]
            assert (status, error["code"]) == (400, "bad_seconds"), (raw, extra, error)
            assert "at most 86400 (a day)" in error["message"]
    _, after = server.json("GET", "/api/v1/challenges/nodules")
    assert after["deadline"] == before["deadline"]
    status, extended = server.json("POST", "/api/v1/challenges/nodules/extend", organizer,
                                   {"seconds": 86400})
    assert status == 200 and extended["deadline"] != before["deadline"]
