"""The deadline ticker (server/countdown/ticker.py): a running challenge closes itself at its
deadline and every viewer is told, by the database clock moved past it."""

from __future__ import annotations

import json
import time
from typing import Any

from websockets.sync.client import connect

from tests.countdown.test_store import act, parse
from tests.helpers import AppServer, DatabaseClock


def closing_message(ws: Any, slug: str, timeout: float = 30) -> dict[str, Any]:
    """Reads clock messages until one shows `slug` closed (the ticker looks every 0.5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["type"] == "clock" and any(
                c["slug"] == slug and c["state"] == "closed" for c in message["challenges"]):
            return message


def test_a_running_challenge_closes_itself_and_tells_every_viewer(
        server: AppServer, clock: DatabaseClock) -> None:
    organizer = server.tokens()["organizer"]
    clock.freeze()
    with connect(server.ws_url) as ws, connect(server.ws_url) as other:
        for viewer in (ws, other):
            viewer.send(json.dumps({"type": "subscribe", "channels": ["clock"]}))
            snapshot = json.loads(viewer.recv(timeout=30))
            assert snapshot["type"] == "clock" and "server_time" in snapshot
            assert [c["state"] for c in snapshot["challenges"]] == ["waiting"] * 4

        _, c = act(server, organizer, "edss", "start")
        deadline = parse(c["deadline"])
        started = json.loads(ws.recv(timeout=30))
        assert started["challenges"][2]["state"] == "running"

        clock.advance(3599)
        _, still = server.json("GET", "/api/v1/challenges/edss")
        assert (still["state"], still["remaining_s"]) == ("running", 1)
        clock.advance(1)
        for viewer in (ws, other):
            closing = closing_message(viewer, "edss")
            assert parse(closing["server_time"]) == deadline
    _, log = server.json("GET", "/api/v1/countdown-log", token=organizer)
    assert log[0]["action"] == "auto-close" and log[0]["actor"] == "server"
    assert parse(log[0]["deadline_after"]) == deadline
    assert parse(log[0]["at"]) == deadline
