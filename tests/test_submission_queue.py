"""The scoring queue serves teams round-robin: a team that queues many files delays another
team's result by at most one scoring. On a real PostgreSQL, and through two real servers."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import pytest

from server.access import ensure_tokens
from server.database import migrate
from server.event import parse_event
from server.loader import load_event
from server.submission import claim_next, insert_submission, record_result
from tests.helpers import EXAMPLE_DIR, ServerProcess, run

NODULES = (EXAMPLE_DIR / "submissions" / "nodules-nodule-hunters.csv").read_bytes()


async def _queue(conn: asyncpg.Connection, plan: list[tuple[str, int]]) -> dict[int, str]:
    """Inserts submissions in `plan` order (team name, size); returns their ids → label."""
    challenge = await conn.fetchval("SELECT id FROM challenge WHERE slug = 'nodules'")
    labels: dict[int, str] = {}
    counts: dict[str, int] = {}
    for team, size in plan:
        team_id = await conn.fetchval("SELECT id FROM team WHERE name = $1", team)
        now = await conn.fetchval("SELECT clock_timestamp()")
        row = await insert_submission(conn, challenge_id=challenge, team_id=team_id,
                                      request_began_at=now, received_at=now, sha256="0" * 64,
                                      size=size, filename="p.csv", stored_path="/nowhere")
        counts[team] = counts.get(team, 0) + 1
        labels[row["id"]] = f"{team[0]}{counts[team]}"
    return labels


def test_claims_go_round_robin_over_teams(example_event: Path, database_url: str,
                                          tmp_path: Path) -> None:
    async def go() -> list[str]:
        conn = await asyncpg.connect(database_url)
        try:
            await migrate(conn)
            event = parse_event(example_event)
            await load_event(conn, event, ensure_tokens(event, tmp_path))
            # Lumbar Lab queues three files, then Nodule Hunters one, then Pixel Anatomy two
            # (a small one after a big one).
            labels = await _queue(conn, [("Lumbar Lab", 100), ("Lumbar Lab", 100),
                                         ("Lumbar Lab", 100), ("Nodule Hunters", 100),
                                         ("Pixel Anatomy", 5 * 1024**2),
                                         ("Pixel Anatomy", 100)])
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            claimant = f"{pid}:test:0"
            order = []
            while (job := await claim_next(conn, claimant)) is not None:
                order.append(labels[job["id"]])
                await record_result(conn, job["id"], claimant, "scored", {"auc": 0.5}, [],
                                    "test")
            return order
        finally:
            await conn.close()

    order = run(go())
    # Every team's first file before any team's second; among heads, the team served least
    # recently first (never served before served; then the small file, then the oldest).
    assert order == ["L1", "N1", "P1", "L2", "P2", "L3"]


def test_two_slots_claiming_at_once_take_two_teams_heads(example_event: Path,
                                                          database_url: str,
                                                          tmp_path: Path) -> None:
    async def go() -> list[str]:
        conn = await asyncpg.connect(database_url)
        try:
            await migrate(conn)
            event = parse_event(example_event)
            await load_event(conn, event, ensure_tokens(event, tmp_path))
            labels = await _queue(conn, [("Lumbar Lab", 100), ("Lumbar Lab", 100),
                                         ("Nodule Hunters", 100)])
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            first = await claim_next(conn, f"{pid}:test:1")
            second = await claim_next(conn, f"{pid}:test:2")  # the first still scoring
            assert first is not None and second is not None
            return [labels[first["id"]], labels[second["id"]]]
        finally:
            await conn.close()

    assert run(go()) == ["L1", "N1"]


@pytest.mark.slow
def test_a_team_with_three_queued_files_delays_another_by_one_scoring(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    """Team A queues three files, then team B one, while no scorer runs; then one scoring
    slot starts: B's file is scored right after A's first."""
    data = tmp_path / "data"
    intake = ServerProcess(example_event, data, database_url,
                           extra_args=["--scoring-workers", "0"]).start()
    try:
        tokens = intake.tokens()
        status, _ = intake.json("POST", "/api/v1/challenges/nodules/start",
                                tokens["organizer"], {})
        assert status == 200
        ids = {}
        for label, team in (("A1", "Lumbar Lab"), ("A2", "Lumbar Lab"), ("A3", "Lumbar Lab"),
                            ("B1", "Nodule Hunters")):
            status, receipt = intake.upload("nodules", tokens[team], f"{label}.csv", NODULES)
            assert status == 202, receipt
            ids[receipt["id"]] = label
    finally:
        intake.stop()
    scorer = ServerProcess(example_event, data, database_url,
                           extra_args=["--scoring-workers", "1"]).start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            _, rows = scorer.json("GET", "/api/v1/challenges/nodules/submissions",
                                  scorer.tokens()["jury"])
            if all(r["status"] == "scored" for r in rows) and len(rows) == 4:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"not all scored: {rows}")
        order = [ids[r["id"]] for r in sorted(rows, key=lambda r: r["scored_at"])]
        assert order == ["A1", "B1", "A2", "A3"]
    finally:
        scorer.stop()
