"""The LISTEN connection (server/listener.py): events reach the callbacks registered for their
type, in every server process on the database, and again after the database drops the
connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server.listener import APPLICATION, Listener
from server.notify import CHANNEL
from tests.helpers import ServerProcess, run
from tests.test_leaderboard import NODULES, next_of, subscribe, ws_connect


@asynccontextmanager
async def listening(listener: Listener) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.listening.wait(), 30)
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def announce(database_url: str, *payloads: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for payload in payloads:
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
    finally:
        await conn.close()


def test_each_event_reaches_the_callbacks_of_its_type(database_url: str) -> None:
    async def scenario() -> None:
        listener = Listener(database_url)
        plain: list[dict[str, Any]] = []
        awaited: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def slow(event: dict[str, Any]) -> None:
            await awaited.put(event)

        def broken(event: dict[str, Any]) -> None:
            raise RuntimeError("a failing callback stops no other")

        listener.on("clock", broken)
        listener.on("clock", plain.append)
        listener.on("leaderboard", slow)
        async with listening(listener):
            await announce(database_url, "not json", json.dumps(["not", "an", "object"]),
                           json.dumps({"type": "weather"}),
                           json.dumps({"type": "clock", "challenge": "edss"}),
                           json.dumps({"type": "leaderboard", "challenge": "edss", "seq": 3}))
            board = await asyncio.wait_for(awaited.get(), 30)
        # Notifications arrive in order: the clock's callbacks ran before the board's.
        assert plain == [{"type": "clock", "challenge": "edss"}]
        assert board == {"type": "leaderboard", "challenge": "edss", "seq": 3}

    run(scenario())


def test_after_the_database_drops_the_connection_it_listens_again(database_url: str) -> None:
    async def scenario() -> None:
        listener = Listener(database_url)
        connects: asyncio.Queue[None] = asyncio.Queue()
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        listener.on_connect(lambda: connects.put_nowait(None))
        listener.on("clock", events.put_nowait)
        async with listening(listener):
            await asyncio.wait_for(connects.get(), 30)
            admin = await asyncpg.connect(database_url)
            try:
                dropped = await admin.fetchval(
                    """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                       WHERE application_name = $1 AND datname = current_database()""",
                    APPLICATION)
            finally:
                await admin.close()
            assert dropped == 1
            # Its on_connect callbacks run again: whoever derives state refreshes it.
            await asyncio.wait_for(connects.get(), 30)
            await announce(database_url, json.dumps({"type": "clock", "challenge": "edss"}))
            assert await asyncio.wait_for(events.get(), 30) == {"type": "clock",
                                                                "challenge": "edss"}

    run(scenario())


@pytest.mark.slow  # two server processes
def test_two_processes_on_one_database_update_both_viewers(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    first = ServerProcess(example_event, tmp_path / "data", database_url).start()
    second = ServerProcess(example_event, tmp_path / "data", database_url,
                           extra_args=["--scoring-workers", "0"]).start()
    try:
        tokens = first.tokens()
        first.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
        with ws_connect(first, tokens["jury"]) as one, ws_connect(second, tokens["jury"]) as two:
            subscribe(one, "leaderboard:nodules")
            subscribe(two, "leaderboard:nodules")
            # Uploaded to the second (which does not score); scored by the first's workers.
            status, _ = second.upload("nodules", tokens["Lumbar Lab"], "a.csv", NODULES)
            assert status == 202
            for ws in (one, two):
                message = next_of(ws, "leaderboard")
                while message["rows"][0]["rank"] is None:
                    message = next_of(ws, "leaderboard")
                assert message["rows"][0]["team"] == "Lumbar Lab"
    finally:
        first.stop()
        second.stop()
