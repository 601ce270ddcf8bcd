"""The websocket channels (server/channels.py): what each shows to whom, that the viewers one
audience groups together really are shown the same thing, and the refusals, which name their
channel."""

from __future__ import annotations

from typing import Any

import asyncpg

from server.access import Principal, Role
from server.channels import (
    by_role,
    by_team,
    clock_snapshot,
    leaderboard_snapshot,
    submissions_snapshot,
)
from server.hub import ForbiddenChannel, Refused, Snapshot
from server.keys import POOL
from tests.helpers import EXAMPLE_DIR, AppServer
from tests.test_leaderboard import next_of, subscribe, ws_connect

EDSS = (EXAMPLE_DIR / "submissions" / "edss-myelin-minds.csv").read_bytes()


def principals(server: AppServer) -> list[Principal | None]:
    async def teams() -> list[asyncpg.Record]:
        async with server.app[POOL].acquire() as conn:
            return list(await conn.fetch("SELECT id, name FROM team ORDER BY name"))

    return [None, Principal(Role.JURY), Principal(Role.ORGANIZER),
            *(Principal(Role.TEAM, t["id"], t["name"]) for t in server.call(teams()))]


def snapshots(server: AppServer, snapshot: Snapshot, channel: str,
              viewers: list[Principal | None]) -> list[dict[str, Any] | str]:
    """Each viewer's snapshot without its server_time, or the code of its refusal."""
    async def read() -> list[dict[str, Any] | str]:
        found: list[dict[str, Any] | str] = []
        async with server.app[POOL].acquire() as conn:
            for viewer in viewers:
                try:
                    message = await snapshot(conn, viewer, channel)
                except Refused as refusal:
                    found.append(refusal.code)
                    continue
                found.append({k: v for k, v in message.items() if k != "server_time"})
        return found

    return server.call(read())


def test_viewers_of_one_audience_are_shown_the_same_snapshot(server: AppServer) -> None:
    tokens = server.tokens()
    server.act("edss", "start")
    server.act("nodules", "start")
    assert server.upload("edss", tokens["Myelin Minds"], "edss.csv", EDSS, "?wait=60")[0] == 202
    server.json("POST", "/api/v1/challenges/nodules/extend", tokens["organizer"],
                {"seconds": 120, "team": "Nodule Hunters"})
    viewers = principals(server)
    for snapshot, audience, channel in ((leaderboard_snapshot, by_role, "leaderboard:edss"),
                                        (leaderboard_snapshot, by_role, "leaderboard:nodules"),
                                        (clock_snapshot, by_team, "clock"),
                                        (submissions_snapshot, by_team, "submissions")):
        seen: dict[object, dict[str, Any] | str] = {}
        for viewer, shown in zip(viewers, snapshots(server, snapshot, channel, viewers),
                                 strict=True):
            key = audience(viewer)
            assert seen.setdefault(key, shown) == shown, (channel, viewer)
    # …and no coarser than they must be: teams' clocks differ (an extension, a release).
    clocks = snapshots(server, clock_snapshot, "clock", viewers)
    assert len({repr(c) for c in clocks[3:]}) > 1
    boards = snapshots(server, leaderboard_snapshot, "leaderboard:edss", viewers)
    assert boards[0] == ForbiddenChannel.code and boards[1]["rows"][0]["team"] == "Myelin Minds"


def test_submission_messages_go_to_their_team_and_the_jury_only(server: AppServer) -> None:
    tokens = server.tokens()
    server.act("edss", "start")
    with ws_connect(server, tokens["Myelin Minds"]) as own, \
            ws_connect(server, tokens["Pixel Anatomy"]) as other, \
            ws_connect(server, tokens["jury"]) as jury, ws_connect(server) as anonymous:
        for ws in (own, other, jury):
            (listed,) = subscribe(ws, "submissions")
            assert listed["type"] == "submissions" and listed["submissions"] == []
        (refused,) = subscribe(anonymous, "submissions")
        assert refused["error"]["code"] == "forbidden" and refused["channel"] == "submissions"
        status, receipt = server.upload("edss", tokens["Myelin Minds"], "edss.csv", EDSS)
        assert status == 202
        for ws in (own, jury):
            statuses = [next_of(ws, "submission")]
            while statuses[-1]["status"] != "scored":
                statuses.append(next_of(ws, "submission"))
            # Each change is told with the submission as it stands when it is read (a quick
            # scorer may have moved it on already): always this one, ending scored.
            assert {s["id"] for s in statuses} == {receipt["id"]}
            assert {s["status"] for s in statuses} <= {"queued", "scoring", "scored"}
        assert "scorer_version" in statuses[-1]  # the jury's view: everything
        # The other team is told nothing of it: its next message is its own upload's.
        assert server.upload("edss", tokens["Pixel Anatomy"], "edss.csv", EDSS)[0] == 202
        assert next_of(other, "submission")["team"] == "Pixel Anatomy"


def test_refusals_name_their_channel(server: AppServer) -> None:
    tokens = server.tokens()
    with ws_connect(server, tokens["Lumbar Lab"]) as ws:
        unknown, hidden, bare = subscribe(ws, "leaderboard:nope", "leaderboard:nodules",
                                          "leaderboard")
    assert unknown["channel"] == "leaderboard:nope"
    assert unknown["error"] == {"code": "unknown_channel",
                                "message": "no challenge for 'leaderboard:nope'"}
    assert hidden["channel"] == "leaderboard:nodules"
    assert hidden["error"] == {"code": "forbidden",
                               "message": "your token may not see 'leaderboard:nodules'"}
    assert bare["channel"] == "leaderboard"
    assert bare["error"]["code"] == "unknown_channel"
    assert bare["error"]["message"] == ("no channel 'leaderboard'; channels: clock, "
                                        "submissions, leaderboard:SLUG, exams")
