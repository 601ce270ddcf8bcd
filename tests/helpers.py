"""What tests share: the server in this process or as a subprocess, a clock tests can move, and
small editors for event files. Fixtures live in conftest.py and build on these.

Two ways to run Podium in a test:
- `AppServer`: `create_app(config)` in this process, on a real loopback socket, with its own
  event loop in a thread. For HTTP and websocket behaviour (roles, refusals, boards, seq,
  freeze, origin, receipts): no interpreter to start, tokens known at once.
- `ServerProcess`: `podium serve` as a subprocess. Only where the process boundary is the point:
  restarts, kill -9, two servers on one database, the banner, the log on stderr.
Both answer the same calls (`url`, `tokens()`, `request`, `json`, `upload`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = ROOT / "examples" / "jfr2019"
EXAMPLE_EVENT = EXAMPLE_DIR / "event.toml"
PODIUM = [sys.executable, "-m", "server"]

T = TypeVar("T")

_counter = itertools.count()


def run(coro: Coroutine[Any, Any, T]) -> T:
    # In a thread of its own: Playwright's sync API keeps an event loop in the main thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def _admin(cluster: str, sql: str) -> None:
    conn = await asyncpg.connect(cluster)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def new_database(cluster: str, template: str | None = None) -> Iterator[str]:
    """A new database on the cluster (empty, or a copy of `template`), dropped on exit;
    yields its URL."""
    name = f"podium_test_{os.getpid()}_{os.urandom(4).hex()}"
    run(_admin(cluster, f'CREATE DATABASE "{name}"' +
               (f' TEMPLATE "{template}"' if template else "")))
    try:
        yield with_database(cluster, name)
    finally:
        run(_admin(cluster, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def wait_for(condition: Callable[[], T], timeout: float = 60, what: str = "condition",
              every: float = 0.05) -> T:
    """Polls until `condition()` is truthy and returns it; fails after a generous timeout.
    For waiting on an event (a row scored, a file written), never for letting time pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class DatabaseClock:
    """The server's only clock is the database's `podium_now()` (migration 0006). A test
    replaces that function to freeze time or move it, instead of sleeping and hoping."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.frozen: datetime | None = None
        self.offset = timedelta()

    def _define(self, body: str) -> None:
        async def define() -> None:
            conn = await asyncpg.connect(self.database_url)
            try:
                await conn.execute(
                    "CREATE OR REPLACE FUNCTION podium_now() RETURNS timestamptz "
                    f"LANGUAGE sql VOLATILE PARALLEL SAFE AS $$ {body} $$")
            finally:
                await conn.close()
        run(define())

    def _read(self, clock: str) -> datetime:
        async def read() -> datetime:
            conn = await asyncpg.connect(self.database_url)
            try:
                value = await conn.fetchval(f"SELECT {clock}()")
                assert isinstance(value, datetime)
                return value
            finally:
                await conn.close()
        return run(read())

    def now(self) -> datetime:
        return self._read("podium_now")

    def freeze(self, at: datetime | None = None) -> datetime:
        """Stops the clock (at `at`, or now to the whole second, so that what the API shows,
        rounded to the millisecond, compares exactly): every reading returns that instant."""
        self.frozen = (at or self.now().replace(microsecond=0)).astimezone(UTC)
        self._define(f"SELECT timestamptz '{self.frozen.isoformat()}'")
        return self.frozen

    def run_from(self, at: datetime) -> datetime:
        """Sets the clock running at the real rate from `at`, as of this call. The server
        credits a request with the time it waited before reading the clock (its began is that
        reading less the wait): against a frozen clock that credit could take a request that
        arrives after this call back before `at`; against this one it never can."""
        self.frozen = None
        self.offset = at - self._read("clock_timestamp")
        self._define(f"SELECT clock_timestamp() + interval '{self.offset.total_seconds()} s'")
        return self.now()

    def advance(self, seconds: float) -> datetime:
        """Moves the clock forward: a frozen clock jumps and stays; a running one runs ahead."""
        if self.frozen is not None:
            return self.freeze(self.frozen + timedelta(seconds=seconds))
        self.offset += timedelta(seconds=seconds)
        self._define(f"SELECT clock_timestamp() + interval '{self.offset.total_seconds()} s'")
        return self.now()


class Client:
    """HTTP calls shared by both ways of running the server."""

    url: str = ""

    def tokens(self) -> dict[str, str]:
        raise NotImplementedError

    def request(self, method: str, path: str, token: str | None = None,
                body: bytes | None = None, headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=dict(headers or {}))
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            # Closed here: an HTTPError keeps its socket, and the traceback's reference cycle
            # would leave it for the garbage collector to report during some later test.
            with exc:
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

    def act(self, slug: str, action: str, **body: Any) -> dict[str, Any]:
        """An organizer action that must succeed (start, pause, …); returns the challenge."""
        status, answer = self.json("POST", f"/api/v1/challenges/{slug}/{action}",
                                   self.tokens()["organizer"], body)
        assert status == 200, (action, status, answer)
        assert isinstance(answer, dict)
        return answer

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"


def _tokens_of(event: Path, data_dir: Path) -> dict[str, str]:
    # Read from the data dir's tokens.json (as the server wrote it) plus the event file's own:
    # no command spawned, no truth loaded.
    from server.access import ensure_tokens
    from server.event import parse_event

    return {c.label: c.token for c in ensure_tokens(parse_event(event), data_dir)}


def scorers_of(pid: int) -> list[Any]:
    """The live scoring processes of the server process `pid` (this one, for an AppServer):
    the children of its fork server (see server/worker.py), itself a child of the server."""
    import psutil

    found = []
    for child in psutil.Process(pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if "multiprocessing.forkserver" in " ".join(child.cmdline()):
                found += [p for p in child.children() if p.status() != psutil.STATUS_ZOMBIE]
    return found


@dataclass
class AppServer(Client):
    """`create_app(config)` on 127.0.0.1, served by this process from a thread of its own."""

    event: Path
    data_dir: Path
    database_url: str
    scoring_workers: int = 1
    config_overrides: dict[str, Any] = field(default_factory=dict)
    ssl_context: Any = None  # an ssl.SSLContext to serve https
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: Any = None
    _tokens: dict[str, str] | None = None

    def start(self) -> AppServer:
        from aiohttp import web

        from server.app import create_app, start_serving
        from server.config import Config
        from server.event import check_truth, parse_event

        event = check_truth(parse_event(self.event))
        config = Config(event_path=event.path, host="127.0.0.1", port=0,
                        data_dir=self.data_dir.resolve(), database_url=self.database_url,
                        scoring_workers=self.scoring_workers)
        config = replace(config, **self.config_overrides)
        loop = asyncio.new_event_loop()
        started: concurrent.futures.Future[str] = concurrent.futures.Future()

        async def serve() -> None:
            if self.ssl_context is None:
                runner = await start_serving(create_app(config, event))
            else:
                # Over TLS, for the clients' tests: aiohttp's own TLS site, without the guard.
                runner = web.AppRunner(create_app(config, event), handle_signals=False)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context).start()
            self._runner = runner
            scheme = "https" if self.ssl_context is not None else "http"
            started.set_result(f"{scheme}://127.0.0.1:{runner.addresses[0][1]}")

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                started.set_exception(exc)
                return
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=main, name="podium-app", daemon=True)
        self._thread.start()
        self.url = started.result(timeout=120)
        self._tokens = _tokens_of(self.event, self.data_dir)
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Runs a coroutine on the server's own loop (to reach its pool or hub)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            self.call(self._runner.cleanup(), timeout=60)
            self._runner = None
        self.call(_cancel_the_rest(), timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()
        self._loop = self._thread = None

    def tokens(self) -> dict[str, str]:
        assert self._tokens is not None, "start() first"
        return self._tokens

    @property
    def app(self) -> Any:
        assert self._runner is not None
        return self._runner.app


async def _cancel_the_rest() -> None:
    """Cancels and awaits what is left on a stopped server's loop (a handler whose client
    went away as the server stopped), as asyncio.run does before closing its loop."""
    rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


@dataclass
class ServerProcess(Client):
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
    _tokens: dict[str, str] | None = None

    def start(self, timeout: float = 120) -> ServerProcess:
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

    def scorers(self) -> list[Any]:
        """The server's live scoring processes (`scorers_of` its process)."""
        assert self.process is not None
        return scorers_of(self.process.pid)

    def dicom_node(self) -> Any:
        """The server's DICOM node process (server/inclusion/node_process.py), or None."""
        import psutil

        assert self.process is not None
        for child in psutil.Process(self.process.pid).children():
            with contextlib.suppress(psutil.NoSuchProcess):
                if "server.inclusion.node_process" in " ".join(child.cmdline()) and \
                        child.status() != psutil.STATUS_ZOMBIE:
                    return child
        return None

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path and self.stderr_path.exists() \
            else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        if self.process.stdout:
            self.process.stdout.close()
        return code

    def tokens(self) -> dict[str, str]:
        """Every role's token, read once from the data dir (the server wrote tokens.json)."""
        if self._tokens is None:
            event = self.event if not self.demo else self.data_dir / "demo" / "event.toml"
            self._tokens = _tokens_of(event, self.data_dir)
        return self._tokens


def set_challenge_keys(event: Path, slug: str, **values: Any) -> None:
    """Rewrites (or adds) keys of one [[challenges]] table of an event file; None removes."""
    lines = event.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "[[challenges]]"]
    # A challenge's own keys end at the next table header: its [challenges.inclusion], the
    # next [[challenges]], [[teams]] ...
    ends = [next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
                 len(lines)) for start in starts]
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


async def load_event_into(database_url: str, event: Path, data_dir: Path) -> None:
    """Migrates the test's database and loads the event file, as a server's start does,
    without serving it: for tests of the store."""
    import asyncpg

    from server.access import ensure_tokens
    from server.database import migrate
    from server.event import parse_event
    from server.loader import load_event

    spec = parse_event(event)
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        await load_event(conn, spec, ensure_tokens(spec, data_dir))
    finally:
        await conn.close()
