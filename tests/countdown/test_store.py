"""The countdown's store (server/countdown/store.py) through the organizer's API: every action
and refusal on the in-process app, and the state surviving SIGKILL of a server process. Time
moves by the database clock, never by sleeping."""

from __future__ import annotations

import json
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    AppServer,
    Client,
    DatabaseClock,
    ServerProcess,
    set_challenge_keys,
    wait_for,
)


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def set_duration(event: Path, slug: str, minutes: float) -> None:
    set_challenge_keys(event, slug, duration_minutes=minutes, freeze_minutes=None)


def act(server: Client, token: str, slug: str, action: str,
        **body: Any) -> tuple[int, Any]:
    return server.json("POST", f"/api/v1/challenges/{slug}/{action}", token=token,
                       body=body or {})


def test_an_organizer_runs_a_challenge_through_every_state(server: AppServer,
                                                          clock: DatabaseClock) -> None:
    organizer = server.tokens()["organizer"]
    clock.freeze()
    status, c = act(server, organizer, "nodules", "start", by="Alice")
    assert status == 200 and c["state"] == "running"
    started, deadline = parse(c["started_at"]), parse(c["deadline"])
    assert started == clock.frozen
    assert (deadline - started).total_seconds() == 7200
    assert c["remaining_s"] == 7200

    clock.advance(100)
    status, c = act(server, organizer, "nodules", "pause")
    assert (status, c["state"], c["deadline"]) == (200, "paused", None)
    assert c["remaining_s"] == 7100
    clock.advance(50)
    _, again = server.json("GET", "/api/v1/challenges/nodules")
    assert again["remaining_s"] == 7100  # a pause stops the clock

    status, c = act(server, organizer, "nodules", "extend", seconds=300)
    assert c["remaining_s"] == 7400
    status, c = act(server, organizer, "nodules", "resume")
    assert c["state"] == "running" and c["remaining_s"] == 7400
    assert parse(c["deadline"]) == clock.frozen + timedelta(seconds=7400)

    clock.advance(400)
    status, c = act(server, organizer, "nodules", "extend", seconds=120, team="Nodule Hunters")
    assert status == 200 and c["remaining_s"] == 7000
    assert c["extensions"][0]["team"] == "Nodule Hunters"
    assert c["extensions"][0]["remaining_s"] == 7120
    team_view = server.json("GET", "/api/v1/challenges/nodules",
                            token=server.tokens()["Nodule Hunters"])[1]
    assert team_view["extension_s"] == 120 and "extensions" not in team_view
    assert team_view["remaining_s"] == 7120
    other_team = server.json("GET", "/api/v1/challenges/nodules",
                             token=server.tokens()["Lumbar Lab"])[1]
    assert other_team["remaining_s"] == 7000

    status, c = act(server, organizer, "nodules", "close")
    assert (status, c["state"], c["remaining_s"]) == (200, "closed", 0)

    status, log = server.json("GET", "/api/v1/countdown-log", token=organizer)
    assert [e["action"] for e in reversed(log)] == ["start", "pause", "extend", "resume",
                                                    "extend", "close"]
    assert log[-1]["actor"] == "organizer (Alice)"
    assert log[1]["team"] == "Nodule Hunters" and log[1]["seconds"] == 120
    assert parse(log[-1]["at"]) == started and parse(log[0]["at"]) == clock.frozen


def test_invalid_transitions_and_bad_requests(server: AppServer) -> None:
    organizer = server.tokens()["organizer"]
    for action in ("pause", "resume", "extend", "close"):
        status, body = act(server, organizer, "edss", action, seconds=60)
        assert status == 409, action
        assert body["error"]["code"] == "invalid_transition"
        assert body["error"]["state"] == "waiting"
        assert "allowed now: start" in body["error"]["message"]
    act(server, organizer, "edss", "start")
    status, body = act(server, organizer, "edss", "start")
    assert (status, body["error"]["state"]) == (409, "running")
    status, body = act(server, organizer, "edss", "extend", seconds=-3)
    assert (status, body["error"]["code"]) == (400, "bad_seconds")
    status, body = act(server, organizer, "edss", "extend", seconds=60, team="Nobody")
    assert (status, body["error"]["code"]) == (404, "unknown_team")
    status, body = act(server, organizer, "edss", "extend", seconds=60, team="Nodule Hunters")
    assert (status, body["error"]["code"]) == (409, "not_registered")
    status, body = act(server, organizer, "edss", "pause", team="Myelin Minds")
    assert status == 400
    status, body = act(server, organizer, "lungs", "start")
    assert (status, body["error"]["code"]) == (404, "unknown_challenge")
    status, _, raw = server.request("POST", "/api/v1/challenges/edss/extend", organizer,
                                    b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and json.loads(raw)["error"]["code"] == "bad_json"
    act(server, organizer, "edss", "close")
    for action in ("start", "pause", "resume", "extend", "close"):
        status, body = act(server, organizer, "edss", action, seconds=60)
        assert (status, body["error"]["state"]) == (409, "closed")


def test_the_organizer_sees_the_actions_the_state_allows(server: AppServer,
                                                         clock: DatabaseClock) -> None:
    organizer = server.tokens()["organizer"]
    clock.freeze()

    def actions() -> list[str]:
        _, c = server.json("GET", "/api/v1/challenges/edss", organizer)
        return c["actions"]

    assert actions() == ["start"]
    act(server, organizer, "edss", "start")
    assert actions() == ["pause", "extend", "close"]
    act(server, organizer, "edss", "pause")
    assert actions() == ["resume", "extend", "close"]
    act(server, organizer, "edss", "resume")
    clock.advance(3600)  # past the deadline, before the ticker records it: nothing to do
    assert actions() == []
    # The rules are the organizer's: nobody else is handed them.
    for token in (server.tokens()["jury"], server.tokens()["Myelin Minds"], None):
        _, c = server.json("GET", "/api/v1/challenges/edss", token)
        assert "actions" not in c


def test_close_keeping_extensions_leaves_the_extended_team_its_time(
        server: AppServer, clock: DatabaseClock) -> None:
    tokens = server.tokens()
    organizer = tokens["organizer"]
    clock.freeze()
    act(server, organizer, "edss", "start")
    clock.advance(3000)
    act(server, organizer, "edss", "extend", seconds=600, team="Myelin Minds")
    _, before = server.json("GET", "/api/v1/challenges/edss", tokens["Myelin Minds"])
    status, body = act(server, organizer, "edss", "close", keep_extensions="yes")
    assert (status, body["error"]["code"]) == (400, "bad_request")
    status, c = act(server, organizer, "edss", "close", keep_extensions=True, by="Alice")
    assert status == 200 and c["state"] == "closed"
    assert c["actions"] == ["pause", "extend", "close"]  # still open for the extended team
    _, mine = server.json("GET", "/api/v1/challenges/edss", tokens["Myelin Minds"])
    assert mine["state"] == "running" and mine["deadline"] == before["deadline"]
    clock.advance(60)
    csv = b"id,value\n"
    status, late = server.upload("edss", tokens["Pixel Anatomy"], "p.csv", csv)
    assert (status, late["error"]["code"]) == (403, "deadline_passed")
    status, receipt = server.upload("edss", tokens["Myelin Minds"], "m.csv", csv)
    assert status == 202, receipt
    _, log = server.json("GET", "/api/v1/countdown-log", organizer)
    assert (log[0]["action"], log[0]["state_after"], log[0]["actor"]) == (
        "close", "closed except Myelin Minds", "organizer (Alice)")
    # Closing again ends the extended team's time too.
    status, c = act(server, organizer, "edss", "close")
    assert status == 200 and c["actions"] == []
    _, mine = server.json("GET", "/api/v1/challenges/edss", tokens["Myelin Minds"])
    assert mine["state"] == "closed"


@pytest.mark.slow  # three restarts of a server process
def test_the_clock_survives_sigkill_in_every_state(example_event: Path, database_url: str,
                                                   tmp_path: Path) -> None:
    set_duration(example_event, "edss", 1)  # its deadline passes while the server is down
    server = ServerProcess(example_event, tmp_path / "data", database_url).start()
    clock = DatabaseClock(database_url)
    organizer = server.tokens()["organizer"]
    _, waiting = server.json("GET", "/api/v1/challenges")
    server.stop(signal.SIGKILL)
    server.start()
    _, after = server.json("GET", "/api/v1/challenges")
    assert [c["state"] for c in after] == [c["state"] for c in waiting] == ["waiting"] * 4

    clock.freeze()
    _, running = act(server, organizer, "sarcopenia", "start")
    act(server, organizer, "nodules", "start")
    _, paused = act(server, organizer, "nodules", "pause")
    act(server, organizer, "edss", "start")
    server.stop(signal.SIGKILL)
    clock.advance(61)
    server.start()
    _, after = server.json("GET", "/api/v1/challenges")
    by_slug = {c["slug"]: c for c in after}
    assert by_slug["sarcopenia"]["state"] == "running"
    assert by_slug["sarcopenia"]["deadline"] == running["deadline"]
    assert by_slug["sarcopenia"]["remaining_s"] == running["remaining_s"] - 61
    assert by_slug["nodules"]["state"] == "paused"
    assert by_slug["nodules"]["remaining_s"] == paused["remaining_s"]
    assert by_slug["edss"]["state"] == "closed"

    def auto_closed() -> list[str]:
        _, log = server.json("GET", "/api/v1/countdown-log", token=organizer)
        return [e["challenge"] for e in log if e["action"] == "auto-close"]

    assert wait_for(auto_closed, what="the auto-close entry") == ["edss"]
    status, body = act(server, organizer, "nodules", "resume")
    assert status == 200 and body["state"] == "running"

    _, closed = act(server, organizer, "sarcopenia", "close")
    server.stop(signal.SIGKILL)
    server.start()
    try:
        _, after = server.json("GET", "/api/v1/challenges/sarcopenia")
        assert (after["state"], after["deadline"]) == ("closed", closed["deadline"])
        assert act(server, organizer, "sarcopenia", "start")[0] == 409
        assert auto_closed() == ["edss"]  # recorded once, by one process
    finally:
        server.stop()
