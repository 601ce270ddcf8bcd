"""`podium rescore`: every counted submission scored again, compared with what is stored, so a
result on the board can be traced to the code and the file that produced it."""

from __future__ import annotations

import math
from pathlib import Path

import asyncpg

from server.evaluators import SCORER_VERSION, evaluate
from server.leaderboard import final_boards
from server.queries import decode_json
from server.results import load_results
from server.store import challenges as challenge_store

TOLERANCE = 1e-9


async def rescore(conn: asyncpg.Connection, only: str | None) -> tuple[list[str], int]:
    """(differences as printable lines, number of submissions checked)."""
    results = await load_results(conn)
    boards = final_boards(results)
    differences: list[str] = []
    checked = 0
    for challenge in results.challenges:
        if only is not None and challenge.slug != only:
            continue
        stored_challenge = await challenge_store.challenge(conn, challenge.slug)
        assert stored_challenge is not None
        options = stored_challenge.scoring_options()
        for row in boards[challenge.slug]:
            if row.submission_id is None:
                continue
            stored = await conn.fetchrow(
                "SELECT stored_path, filename, metrics, scorer_version FROM submission "
                "WHERE id = $1",
                row.submission_id)
            assert stored is not None
            checked += 1
            result = evaluate(stored_challenge.kind, stored_challenge.truth,
                              Path(stored["stored_path"]), options, name=stored["filename"])
            before = decode_json(stored["metrics"])
            where = f"{challenge.slug} {row.team} #{row.submission_id}"
            if result.status != "scored":
                differences.append(f"{where}: now {result.status}: "
                                   f"{'; '.join(e.message for e in result.errors)}")
                continue
            for key in sorted(set(before) | set(result.metrics)):
                old, new = before.get(key), result.metrics.get(key)
                if old is None or new is None or not math.isclose(old, new, rel_tol=TOLERANCE,
                                                                   abs_tol=TOLERANCE):
                    differences.append(
                        f"{where}: {key} stored {old} ({stored['scorer_version']}), "
                        f"now {new} ({SCORER_VERSION})")
    return differences, checked
