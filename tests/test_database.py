"""Migrations and the idempotent event loader, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from server.access import Credential, Role, ensure_tokens, hash_token
from server.database import discover_migrations, migrate
from server.event import parse_event
from server.loader import load_event
from tests.helpers import run


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url)


def test_migrations_from_empty_then_no_op(empty_database_url: str) -> None:
    async def go() -> None:
        conn = await _connect(empty_database_url)
        try:
            applied = await migrate(conn)
            assert applied == [f"{m.version:04d}_{m.name}" for m in discover_migrations()]
            assert applied[0] == "0001_initial"
            tables = {r["tablename"] for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            assert {"schema_migration", "event", "challenge", "team", "registration",
                    "credential"} <= tables
            assert await migrate(conn) == []
            count = await conn.fetchval("SELECT count(*) FROM schema_migration")
            assert count == len(applied)
        finally:
            await conn.close()
    run(go())


def test_two_processes_migrating_at_once_apply_each_migration_once(empty_database_url: str) -> None:
    async def go() -> None:
        conns = [await _connect(empty_database_url) for _ in range(4)]
        try:
            results = await asyncio.gather(*(migrate(c) for c in conns))
            applied = [name for result in results for name in result]
            assert sorted(applied) == sorted(f"{m.version:04d}_{m.name}"
                                             for m in discover_migrations())
        finally:
            for c in conns:
                await c.close()
    run(go())


def test_a_failing_migration_leaves_nothing_behind(empty_database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (folder / "0002_bad.sql").write_text("CREATE TABLE bad (id int); SELECT no_such_function();")

    async def go() -> None:
        conn = await _connect(empty_database_url)
        try:
            with pytest.raises(asyncpg.UndefinedFunctionError):
                await migrate(conn, folder)
            assert await conn.fetchval("SELECT to_regclass('good')") is None
            assert await conn.fetchval("SELECT to_regclass('schema_migration')") is None
        finally:
            await conn.close()
    run(go())


def test_migration_names_are_checked(tmp_path: Path) -> None:
    (tmp_path / "1_first.sql").write_text("")
    with pytest.raises(RuntimeError, match="not named NNNN_name.sql"):
        discover_migrations(tmp_path)
    (tmp_path / "1_first.sql").unlink()
    (tmp_path / "0001_a.sql").write_text("")
    (tmp_path / "0001_b.sql").write_text("")
    with pytest.raises(RuntimeError, match="share number 0001"):
        discover_migrations(tmp_path)


async def _snapshot(conn: asyncpg.Connection) -> dict[str, list[tuple[object, ...]]]:
    # xmin changes whenever a row is rewritten, so equal snapshots mean nothing was touched.
    tables = {"event": "id", "challenge": "id", "team": "id",
              "registration": "team_id, challenge_id", "credential": "token_hash",
              "center": "id", "reviewer": "id", "center_question": "center_id, challenge_id",
              "reviewer_question": "reviewer_id, challenge_id"}
    return {table: [tuple(r) for r in await conn.fetch(
        f"SELECT xmin::text, * FROM {table} ORDER BY {order}")]  # noqa: S608
        for table, order in tables.items()}


def _load(database_url: str, event_path: Path, data_dir: Path):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        conn = await _connect(database_url)
        try:
            await migrate(conn)
            event = parse_event(event_path)
            report = await load_event(conn, event, ensure_tokens(event, data_dir))
            return report, await _snapshot(conn)
        finally:
            await conn.close()
    return run(go())


def test_reloading_the_same_file_changes_nothing(database_url: str, example_event: Path,
                                                 tmp_path: Path) -> None:
    first, before = _load(database_url, example_event, tmp_path / "data")
    assert first.changed
    assert len(before["challenge"]) == 4 and len(before["team"]) == 4
    assert len(before["registration"]) == 8 and len(before["credential"]) == 12
    second, after = _load(database_url, example_event, tmp_path / "data")
    assert not second.changed
    assert after == before


def test_editing_titles_and_registrations_updates_them(database_url: str, example_event: Path,
                                                       tmp_path: Path) -> None:
    _load(database_url, example_event, tmp_path / "data")
    text = example_event.read_text()
    text = text.replace('title = "Multiple sclerosis — EDSS at two years from MRI"',
                        'title = "EDSS prediction"')
    text = text.replace('name = "Nodule Hunters"\nchallenges = ["nodules", "nodules-3d"]',
                        'name = "Nodule Hunters"\nchallenges = ["nodules", "nodules-3d", "edss"]')
    text = text.replace('name = "Pixel Anatomy"\nchallenges = ["sarcopenia", "edss"]',
                        'name = "Pixel Anatomy"\nchallenges = ["sarcopenia"]')
    example_event.write_text(text)
    report, snap = _load(database_url, example_event, tmp_path / "data")
    assert report.challenges_changed == 1 and report.registrations_changed == 2

    async def check() -> None:
        conn = await _connect(database_url)
        try:
            assert await conn.fetchval("SELECT title FROM challenge WHERE slug = 'edss'") == \
                "EDSS prediction"
            rows = await conn.fetch(
                """SELECT t.name, c.slug FROM registration r JOIN team t ON t.id = r.team_id
                   JOIN challenge c ON c.id = r.challenge_id ORDER BY 1, 2""")
            pairs = {(r["name"], r["slug"]) for r in rows}
            assert ("Nodule Hunters", "edss") in pairs
            assert ("Pixel Anatomy", "edss") not in pairs
        finally:
            await conn.close()
    run(check())


def test_removing_a_team_or_challenge_keeps_its_rows(database_url: str, example_event: Path,
                                                     tmp_path: Path) -> None:
    _load(database_url, example_event, tmp_path / "data")
    text = example_event.read_text()
    text = text.replace(
        '\n[[teams]]\nname = "Nodule Hunters"\nchallenges = ["nodules", "nodules-3d"]\n', "")
    example_event.write_text(text)
    _, snap = _load(database_url, example_event, tmp_path / "data")

    async def check() -> None:
        conn = await _connect(database_url)
        try:
            row = await conn.fetchrow("SELECT in_event FROM team WHERE name = 'Nodule Hunters'")
            assert row is not None and row["in_event"] is False
        finally:
            await conn.close()
    run(check())
    assert len(snap["credential"]) == 11  # its token no longer opens anything


def test_only_token_hashes_are_stored(database_url: str, example_event: Path,
                                      tmp_path: Path) -> None:
    _, snap = _load(database_url, example_event, tmp_path / "data")
    credentials = ensure_tokens(parse_event(example_event), tmp_path / "data")
    stored = {bytes(row[1]) for row in snap["credential"]}
    assert stored == {hash_token(c.token) for c in credentials}
    dump = repr(snap)
    for credential in credentials:
        assert credential.token not in dump
    roles = sorted(row[2] for row in snap["credential"])
    assert roles == ["center"] * 3 + ["jury", "organizer"] + ["reviewer"] * 3 + ["team"] * 4
    assert Credential(Role.JURY, None, "x").label == "jury"


def test_a_migration_changed_after_it_was_applied_is_refused(empty_database_url: str,
                                                             tmp_path: Path) -> None:
    from server.database import MigrationChanged

    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_first.sql").write_text("CREATE TABLE first (id int);")

    async def go() -> None:
        conn = await _connect(empty_database_url)
        try:
            assert await migrate(conn, folder) == ["0001_first"]
            # A database migrated before texts were recorded gets the text it has now.
            await conn.execute("UPDATE schema_migration SET sha256 = NULL")
            assert await migrate(conn, folder) == []
            assert await conn.fetchval("SELECT sha256 FROM schema_migration") is not None
            (folder / "0001_first.sql").write_text("CREATE TABLE first (id bigint);")
            (folder / "0002_second.sql").write_text("CREATE TABLE second (id int);")
            with pytest.raises(MigrationChanged, match="0001_first.sql was changed after it "
                                                       "was applied"):
                await migrate(conn, folder)
            assert await conn.fetchval("SELECT to_regclass('second')") is None
        finally:
            await conn.close()
    run(go())


def test_a_declared_ranking_and_kind_options_are_stored_and_read_back(
        database_url: str, example_event: Path, tmp_path: Path) -> None:
    from server.store import challenges as store

    _load(database_url, example_event, tmp_path / "data")
    text = example_event.read_text()
    example_event.write_text(text.replace(
        'truth = "truth/sarcopenia"',
        'truth = "truth/sarcopenia"\nranking = {scheme = "rank-then-aggregate", '
        'metrics = ["dice", "surface_mse"], tie_break = "dice"}'))
    report, _ = _load(database_url, example_event, tmp_path / "data")
    assert report.challenges_changed == 1
    again, _ = _load(database_url, example_event, tmp_path / "data")
    assert not again.changed   # the same declaration, stored as jsonb, is no change

    async def read() -> store.Challenge | None:
        conn = await _connect(database_url)
        try:
            return await store.challenge(conn, "sarcopenia")
        finally:
            await conn.close()

    stored = run(read())
    assert stored is not None
    assert stored.ranking == {"scheme": "rank-then-aggregate",
                              "metrics": ["dice", "surface_mse"], "tie_break": "dice"}
    assert stored.options == {"hu_window": [-29.0, 150.0]}
    assert stored.scoring_options().hu_window == (-29.0, 150.0)
    from server import kinds
    assert kinds.of(stored).score_label == "mean rank"
    example_event.write_text(text)   # the declaration removed: the kind's rule again
    _load(database_url, example_event, tmp_path / "data")
    stored = run(read())
    assert stored is not None and stored.ranking is None
    assert kinds.of(stored).ranking == kinds.get("segmentation-surface").ranking
