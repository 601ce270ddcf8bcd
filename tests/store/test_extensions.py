"""server/store/extensions.py: the extra time given to one team, read in one place."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from server.store import challenges as challenge_store
from server.store.extensions import Extension, extensions, latest, team_extension
from tests.helpers import AppServer, run


def test_one_teams_extension_is_read_the_same_everywhere(server: AppServer) -> None:
    server.act("nodules", "start")
    server.act("nodules", "extend", seconds=120, team="Nodule Hunters")
    server.act("nodules", "extend", seconds=30, team="Lumbar Lab")

    async def read() -> tuple[dict[int, list[Extension]], timedelta, timedelta, int]:
        conn = await asyncpg.connect(server.database_url)
        try:
            nodules = await challenge_store.challenge(conn, "nodules")
            assert nodules is not None
            teams = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM team")}
            return (await extensions(conn),
                    await team_extension(conn, nodules.id, teams["Nodule Hunters"]),
                    await team_extension(conn, nodules.id, teams["Myelin Minds"]), nodules.id)
        finally:
            await conn.close()

    every, hunters, myelin, nodules_id = run(read())
    assert [(e.team, e.extra) for e in every[nodules_id]] == [
        ("Lumbar Lab", timedelta(seconds=30)), ("Nodule Hunters", timedelta(seconds=120))]
    assert list(every) == [nodules_id]
    assert (hunters, myelin) == (timedelta(seconds=120), timedelta(0))
    assert latest(every[nodules_id]) == timedelta(seconds=120) and latest([]) == timedelta(0)
