"""The demo's months before the final day (server/demo_inclusion.py) on a real PostgreSQL:
the centers' exams through the real intake, graded, split, teams registered and approved,
the training batches out; a second start on the same data dir adds nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pydicom

from server.access import hash_token
from server.dataset.batch import BatchState, state_at
from server.demo import write_event_file
from server.demo_inclusion import APPLICATIONS, ORGANIZER, TOKENS_FILE, prepare
from server.event import parse_event
from tests.helpers import run


async def _state(url: str) -> dict[str, object]:
    conn = await asyncpg.connect(url)
    try:
        exams = await conn.fetch(
            "SELECT challenge.slug, exam.stage, exam.exclusion, count(*) AS n FROM exam "
            "JOIN challenge ON challenge.id = exam.challenge_id "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
        return {
            "exams": [(r["slug"], r["stage"], r["exclusion"], r["n"]) for r in exams],
            "folders": [r["folder"] for r in await conn.fetch(
                "SELECT folder FROM exam WHERE stage = 'kept' ORDER BY id")],
            "splits": [(r["slug"], r["n"]) for r in await conn.fetch(
                "SELECT c.slug, count(*) AS n FROM split "
                "JOIN challenge c ON c.id = split.challenge_id GROUP BY 1 ORDER BY 1")],
            "applications": [(r["team_name"], r["state"]) for r in await conn.fetch(
                "SELECT team_name, state FROM team_application ORDER BY id")],
            "reviews": await conn.fetchval("SELECT count(*) FROM review"),
            "batches": [(r["slug"], r["name"], r["set_name"], len(r["exams"]), r["opened_at"],
                         r["opened_by"], r["sha256"]) for r in await conn.fetch(
                "SELECT c.slug, b.* FROM batch b JOIN challenge c ON c.id = b.challenge_id "
                "ORDER BY 1, b.name")],
            "released": [(r["slug"], r["set_name"]) for r in await conn.fetch(
                "SELECT c.slug, s.name AS set_name FROM split_set s "
                "JOIN split p ON p.id = s.split_id JOIN challenge c ON c.id = p.challenge_id "
                "WHERE s.released_at IS NOT NULL ORDER BY 1, 2")],
            "now": await conn.fetchval("SELECT podium_now()"),
            "credentials": {r["token_hash"]: r["name"] for r in await conn.fetch(
                "SELECT token_hash, team.name FROM credential "
                "JOIN team ON team.id = credential.team_id WHERE team.registered")},
        }
    finally:
        await conn.close()


def _event_file(folder: Path) -> Path:
    """The demo's event file, its final day's folders empty: the path before it is what is
    tested here, and writing the images takes longer than the rest."""
    for name in ("truth/sarcopenia", "truth/nodules-3d", "release/sarcopenia",
                 "release/nodules", "release/edss", "release/nodules-3d"):
        (folder / name).mkdir(parents=True)
    for name in ("truth/nodules.csv", "truth/edss.csv"):
        (folder / name).write_text("id,value\n")
    return write_event_file(folder, datetime.now(UTC))


def test_the_demo_fills_the_path_once(database_url: str, tmp_path: Path) -> None:
    event = parse_event(_event_file(tmp_path / "demo"))
    data = tmp_path / "data"
    tokens = run(prepare(database_url, event, data))
    first = run(_state(database_url))

    exams = first["exams"]
    assert isinstance(exams, list)
    for slug in ("sarcopenia", "nodules-3d", "edss"):
        mine = {(stage, exclusion): n for s, stage, exclusion, n in exams if s == slug}
        # Most kept; one excluded for a criterion the organizers rejected, one for quality.
        assert mine == {("kept", None): 6, ("excluded", "criteria"): 1,
                        ("excluded", "quality"): 1}, slug
    # Only de-identified copies are kept: no patient name or identifier of the centers'.
    folders = first["folders"]
    assert isinstance(folders, list) and len(folders) == 18
    sample = next(Path(folders[0]).rglob("*.dcm"))
    assert "DEMO" not in str(pydicom.dcmread(sample).PatientName)
    assert first["splits"] == [("edss", 1), ("nodules-3d", 1), ("sarcopenia", 1)]
    for slug in ("sarcopenia", "nodules-3d", "edss"):
        assert len(list((data / "splits" / slug).glob("*/validation.csv"))) == 1
    # Two training batches per split question, both open: batch-1 by its `opens` a month
    # ago, batch-2 opened by the organizers (as "Open now…" records it); each packed, so the
    # training set is released.
    batches = first["batches"]
    assert isinstance(batches, list)
    assert [(slug, name, n) for slug, name, _, n, *_ in batches] == [
        (slug, name, n) for slug in ("edss", "nodules-3d", "sarcopenia")
        for name, n in (("batch-1", 2), ("batch-2", 1))]
    now = first["now"]
    assert isinstance(now, datetime)
    for slug, name, set_name, _, opened_at, opened_by, _ in batches:
        spec = event.challenge(slug).batch(name)
        assert spec is not None and set_name == "training"
        assert state_at(spec, opened_at, now) is BatchState.OPEN, (slug, name)
        if name == "batch-1":
            assert spec.opens is not None and spec.opens < now and opened_by is None
        else:
            assert spec.opens is None and opened_by == f"organizer ({ORGANIZER})"
    assert first["released"] == [(s, "training") for s in ("edss", "nodules-3d", "sarcopenia")]
    assert first["applications"] == [(team, "approved" if approved else "waiting")
                                     for team, _, approved in APPLICATIONS]
    # Approved teams' tokens are the ones the database holds, shown by the banner.
    approved = [team for team, _, ok in APPLICATIONS if ok]
    assert sorted(tokens) == sorted(approved)
    assert first["credentials"] == {hash_token(t): team for team, t in tokens.items()}
    assert (event.path.parent / TOKENS_FILE).stat().st_mode & 0o077 == 0

    assert run(prepare(database_url, event, data)) == tokens   # a second start
    again = run(_state(database_url))
    assert {**again, "now": None} == {**first, "now": None}
