"""Benchmark: 20 teams download a 1 GiB release at once, from Podium and from nginx.

Usage:  .venv/bin/python bench/download.py [--size-mib 1024] [--teams 20] [--repeat 3]

Everything lives in a temporary folder and only 127.0.0.1 is used. The release is a stored
(uncompressed) zip of random data, so Podium serves it as it is; nginx (Debian's, our own
instance with a temporary config) serves the very same file (Podium hard-links the zip into
its data directory: one inode, one copy in the page cache). `podium serve` runs with its
embedded PostgreSQL, the challenge is started with the organizer token, and every team
downloads with its own token.

The client is curl in separate processes: `--parallel` transfers written to /dev/null, split
over --client-procs processes, the same for both servers. Throughput is all bytes received
divided by the wall time from the first request to the last byte; each transfer's status and
size are checked. Runs alternate nginx, Podium, nginx, … --repeat times each; best and median
are reported, with the CPU the server, the curl clients, softirq (loopback's TCP work) and the
rest of the machine used during each run. Before each run the script waits (--settle) for the
machine to go quiet: on a shared machine another job's burst would be measured too.

Before the timed runs (which also warm both servers) one untimed pass downloads the archive for
every team at once and checks each copy's SHA-256 against the `release.sha256` the API
publishes, and a resumed download (the second half, with Range) is checked byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SLUG = "validation"
MEMBER = 64 << 20  # bytes of random data per zip member
MB = 1e6
START_TIMEOUT = 120  # seconds for `podium serve` to load the event and print its banner
TRANSFER_TIMEOUT = 300  # seconds for one download, so a stuck server cannot hang the bench
# curl's report of each transfer: status, bytes, seconds to the first byte and to the end.
WRITE_OUT = r"%{http_code} %{size_download} %{time_starttransfer} %{time_total}\n"
COLUMNS = [("run", 3), ("server", 6), ("seconds", 7), ("MB/s", 5), ("1st byte s", 10),
           ("fastest s", 9), ("slowest s", 9), ("server CPU s", 12), ("client CPU s", 12),
           ("softirq s", 9), ("others s", 8)]


# --- the event ---------------------------------------------------------------------------

def make_release(path: Path, size: int) -> str:
    """A valid stored zip holding `size` bytes of random data; returns its SHA-256."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for n, offset in enumerate(range(0, size, MEMBER)):
            archive.writestr(f"images/{n:04d}.bin", os.urandom(min(MEMBER, size - offset)))
    return file_sha256(path)


def file_sha256(path: Path, start: int = 0) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        handle.seek(start)
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_event(folder: Path, release: Path, teams: int) -> tuple[str, dict[str, str]]:
    """The event file (tokens written into it); returns the organizer's and teams' tokens."""
    (folder / "truth.csv").write_text("id,value\n" + "".join(f"{n},{n % 7}\n"
                                                           for n in range(10)))
    organizer = secrets.token_hex(16)
    tokens = {f"Team {n:02d}": secrets.token_hex(16) for n in range(1, teams + 1)}
    text = [
        '[event]\nname = "Download benchmark"\n',
        f'[access]\norganizer_token = "{organizer}"\njury_token = "{secrets.token_hex(16)}"\n',
        f'[[challenges]]\nslug = "{SLUG}"\ntitle = "Validation set"\nkind = "regression"\n'
        f'duration_minutes = 60\ntruth = "truth.csv"\n'
        f'release = "{release.relative_to(folder).as_posix()}"\n',
    ]
    text += [f'[[teams]]\nname = "{name}"\nchallenges = ["{SLUG}"]\ntoken = "{token}"\n'
             for name, token in tokens.items()]
    (folder / "event.toml").write_text("\n".join(text))
    return organizer, tokens


# --- the servers ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def start_podium(folder: Path, data_dir: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    args = [sys.executable, "-m", "server", "serve", "--event", str(folder / "event.toml"),
            "--port", "0", "--data-dir", str(data_dir)]
    env = {k: v for k, v in os.environ.items() if k != "PODIUM_DATABASE_URL"}
    with log.open("a") as stderr:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   env=env, cwd=ROOT)
    assert process.stdout is not None
    watchdog = threading.Timer(START_TIMEOUT, process.kill)  # a hung start ends the bench
    watchdog.start()
    url = ""
    try:
        for line in process.stdout:  # the release is hashed at load: a few seconds
            if line.startswith("Podium is serving"):
                url = line.rsplit(" at ", 1)[1].strip().rstrip("/")
            if url and "team links:" in line:  # the banner's last line; logs go to stderr
                return process, url
    finally:
        watchdog.cancel()
    process.wait()
    raise SystemExit(f"podium serve exited ({process.returncode}):\n{log.read_text()[-3000:]}")


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes auto;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/zip;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def start_nginx(nginx: str, folder: Path, root: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    tmp = folder / "nginx"
    tmp.mkdir()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, root=root))
    with (tmp / "stderr.log").open("w") as stderr:
        process = subprocess.Popen([nginx, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"),
                                    "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=stderr)
    wait_for_port(port, process)
    return process, port


def stop(process: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM) -> None:
    if process is None:
        return
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout:
        process.stdout.close()


def api(url: str, method: str = "GET", token: str | None = None, body: Any = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# --- the clients ---------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (nginx's workers), from /proc."""
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in [pid, *map(int, children)]:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy, and how many of them in softirq (where
    loopback's TCP receive work is counted), from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / hz, softirq / hz


def settle(limit: float) -> bool:
    """Waits (at most `limit` seconds) for a half second in which the machine is nearly idle:
    on a shared machine other jobs come and go, and a run next to one measures them too."""
    deadline = time.monotonic() + limit
    while True:
        busy = machine_cpu()[0]
        time.sleep(0.5)
        if machine_cpu()[0] - busy < 0.1:  # under a fifth of one core
            return True
        if time.monotonic() > deadline:
            return False


@dataclass
class Run:
    server: str
    seconds: float
    received: int
    first_byte: float  # the last download to get its first byte, seconds after the start
    fastest: float  # one download's own time: how evenly the bandwidth is shared
    slowest: float
    server_cpu: float
    client_cpu: float
    softirq: float
    others: float  # CPU used by the rest of the machine: a busy neighbour skews the run

    @property
    def mb_s(self) -> float:
        return self.received / self.seconds / MB


def timed_run(server: str, pid: int, url: str, tokens: list[str | None], size: int,
              procs: int, folder: Path) -> Run:
    """Every token downloads `url` once, all at the same time, into /dev/null."""
    groups = [tokens[i::procs] for i in range(procs)]
    configs = []
    for n, group in enumerate(groups):
        blocks = []
        for token in group:
            block = [f'url = "{url}"', 'output = "/dev/null"',
                     f'write-out = "{WRITE_OUT}"', f"max-time = {TRANSFER_TIMEOUT}"]
            if token:
                block.append(f'header = "Authorization: Bearer {token}"')
            blocks.append("\n".join(block))
        config = folder / f"curl-{n}.conf"
        config.write_text("\nnext\n".join(blocks) + "\n")
        configs.append(config)
    server_before, client_before = cpu_seconds(pid), children_cpu()
    busy_before, softirq_before = machine_cpu()
    start = time.perf_counter()
    clients = [subprocess.Popen(["curl", "--silent", "--show-error", "--parallel",
                                 "--parallel-immediate", "--parallel-max", str(len(tokens)),
                                 "--config", str(config)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for config in configs]
    # curl draws a progress meter in parallel mode even with --silent: stderr is kept for errors.
    answers = [client.communicate() for client in clients]
    outputs = [out for out, _ in answers]
    seconds = time.perf_counter() - start
    server_cpu = cpu_seconds(pid) - server_before
    client_cpu = children_cpu() - client_before  # the curl processes, now waited for
    busy_after, softirq_after = machine_cpu()
    busy, softirq = busy_after - busy_before, softirq_after - softirq_before
    others = busy - softirq - server_cpu - client_cpu
    lines = [line.split() for out in outputs for line in out.splitlines()]
    if any(c.returncode for c in clients) or len(lines) != len(tokens):
        raise SystemExit(f"{server}: curl failed: {[err[-500:] for _, err in answers]}")
    for code, got, _, _ in lines:
        if code != "200" or int(got) != size:
            raise SystemExit(f"{server}: a download got HTTP {code} and {got} of {size} bytes")
    return Run(server, seconds, sum(int(got) for _, got, _, _ in lines),
               max(float(first) for _, _, first, _ in lines),
               min(float(t) for *_, t in lines), max(float(t) for *_, t in lines),
               server_cpu, client_cpu, softirq,
               max(others, 0.0))


def hashed_download(url: str, token: str, results: list[tuple[int, str]], index: int) -> None:
    curl = subprocess.Popen(["curl", "--silent", "--show-error", "--fail",
                             "--max-time", str(TRANSFER_TIMEOUT),
                             "--header", f"Authorization: Bearer {token}", url],
                            stdout=subprocess.PIPE, bufsize=0)
    assert curl.stdout is not None
    digest, got = hashlib.sha256(), 0
    buffer = memoryview(bytearray(1 << 20))
    while n := curl.stdout.readinto(buffer):  # type: ignore[attr-defined]
        digest.update(buffer[:n])
        got += n
    curl.wait()
    results[index] = (got if curl.returncode == 0 else -1, digest.hexdigest())


def verify_all(url: str, tokens: list[str], size: int, sha256: str) -> float:
    """Every team downloads at once; each copy's size and SHA-256 is checked. Untimed."""
    results: list[tuple[int, str]] = [(0, "")] * len(tokens)
    threads = [threading.Thread(target=hashed_download, args=(url, token, results, i))
               for i, token in enumerate(tokens)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    bad = [i for i, (got, digest) in enumerate(results) if got != size or digest != sha256]
    if bad:
        raise SystemExit(f"{len(bad)} of {len(tokens)} downloads differ from the release: "
                         f"{[results[i] for i in bad][:3]}")
    return seconds


def verify_range(url: str, token: str, archive: Path, size: int) -> str:
    """A download resumed at the middle gets exactly the second half."""
    half = size // 2
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}",
                                                   "Range": f"bytes={half}-"})
    digest, got = hashlib.sha256(), 0
    with urllib.request.urlopen(request, timeout=60) as response:
        status, content_range = response.status, response.headers.get("Content-Range")
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            got += len(chunk)
    expected = f"bytes {half}-{size - 1}/{size}"
    same = digest.hexdigest() == file_sha256(archive, half)
    if status != 206 or content_range != expected or got != size - half or not same:
        raise SystemExit(f"Range: HTTP {status}, {content_range!r} (wanted {expected!r}), "
                         f"{got} of {size - half} bytes, the tail's SHA-256 "
                         f"{'matches' if same else 'differs'}")
    return f"HTTP 206, {content_range}, {got} bytes, SHA-256 of the tail matches"


# --- main ----------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="random data in the zip")
    parser.add_argument("--teams", type=int, default=20, help="concurrent downloads")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per server")
    parser.add_argument("--client-procs", type=int, default=2,
                        help="curl processes the downloads are split over")
    parser.add_argument("--settle", type=float, default=10,
                        help="seconds to wait, before each run, for other jobs to go quiet")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the untimed pass that hashes every team's copy")
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or not shutil.which("curl"):
        raise SystemExit("needs nginx and curl: apt-get install -y nginx curl")
    tmp_root = Path(tempfile.gettempdir())
    need = 2 * args.size_mib * 2**20 + 2**30  # the zip, a copy if it cannot be hard-linked
    if shutil.disk_usage(tmp_root).free < need:
        raise SystemExit(f"{tmp_root} has less than {need / 2**30:.1f} GiB free")

    podium = nginx_process = None
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp:
        folder = Path(tmp)
        try:
            event = folder / "event"
            (event / "release").mkdir(parents=True)
            archive = event / "release" / "validation.zip"
            start = time.perf_counter()
            sha256 = make_release(archive, args.size_mib << 20)
            size = archive.stat().st_size
            organizer, team_tokens = write_event(event, archive, args.teams)
            tokens = list(team_tokens.values())
            print(f"release: {size:,} bytes ({size / 2**30:.2f} GiB), stored zip of random data, "
                  f"made in {time.perf_counter() - start:.1f} s; {args.teams} teams")

            start = time.perf_counter()
            podium, base = start_podium(event, folder / "data", folder / "podium.log")
            print(f"podium serve: {base} (embedded PostgreSQL), ready in "
                  f"{time.perf_counter() - start:.1f} s")
            if os.environ.get("AIOHTTP_NOSENDFILE"):
                print("AIOHTTP_NOSENDFILE is set: Podium reads the file in chunks instead of "
                      "using sendfile")
            dataset = f"{base}/api/v1/challenges/{SLUG}/dataset"
            status, _, _ = api(dataset, token=tokens[0])
            if status != 403:
                raise SystemExit(f"before the start the dataset answered {status}, not 403")
            status, _, body = api(f"{base}/api/v1/challenges/{SLUG}/start", "POST",
                                  organizer, {})
            if status != 200:
                raise SystemExit(f"start: HTTP {status}: {body[:300]!r}")
            _, _, body = api(f"{base}/api/v1/challenges/{SLUG}", token=organizer)
            published = json.loads(body)["release"]
            if (published["size"], published["sha256"]) != (size, sha256):
                raise SystemExit(f"published release {published} is not the zip we made")
            served = next((folder / "data").rglob("*.zip"), None)
            shared = served is not None and served.stat().st_ino == archive.stat().st_ino
            print(f"Podium's copy: {'hard link (same inode)' if shared else 'a separate copy'}")

            nginx_process, port = start_nginx(nginx, folder, archive.parent)
            nginx_url = f"http://127.0.0.1:{port}/{archive.name}"
            print(f"nginx: {nginx_url} ({nginx})")

            print("Range check (Podium): " + verify_range(dataset, tokens[0], archive, size))
            if not args.no_verify:
                seconds = verify_all(dataset, tokens, size, sha256)
                print(f"SHA-256 check: all {args.teams} concurrent downloads from Podium match "
                      f"release.sha256 ({args.teams * size / seconds / MB:.0f} MB/s while "
                      f"hashing, {seconds:.1f} s)")

            runs: list[Run] = []
            print("\n" + " ".join(f"{name:>{width}}" for name, width in COLUMNS))
            for n in range(args.repeat):
                for server, pid, url, who in (
                        ("nginx", nginx_process.pid, nginx_url, [None] * args.teams),
                        ("podium", podium.pid, dataset, tokens)):
                    quiet = settle(args.settle)
                    run = timed_run(server, pid, url, list(who), size, args.client_procs,
                                    folder)
                    runs.append(run)
                    row = [n + 1, server, f"{run.seconds:.2f}", f"{run.mb_s:.0f}",
                           f"{run.first_byte:.3f}", f"{run.fastest:.2f}", f"{run.slowest:.2f}",
                           *(f"{v:.1f}" for v in (run.server_cpu, run.client_cpu, run.softirq,
                                                  run.others))]
                    print(" ".join(f"{v:>{width}}" for v, (_, width) in zip(row, COLUMNS,
                                                                            strict=True))
                          + ("" if quiet else "  (machine busy before the run)"), flush=True)
        finally:
            stop(nginx_process, signal.SIGQUIT)
            stop(podium)

    def speeds(server: str) -> list[float]:
        return [r.mb_s for r in runs if r.server == server]

    best = {s: max(speeds(s)) for s in ("podium", "nginx")}
    median = {s: statistics.median(speeds(s)) for s in ("podium", "nginx")}
    # The server's own CPU per GB sent holds from one machine to another better than MB/s,
    # which on loopback also measures the client's copies.
    cpu_per_gb = {s: statistics.median(r.server_cpu / (r.received / 1e9) for r in runs
                                       if r.server == s) for s in ("podium", "nginx")}
    print(f"\n{'server':8} {'best MB/s':>10} {'median MB/s':>12} {'server CPU s/GB':>16}")
    for server in ("podium", "nginx"):
        print(f"{server:8} {best[server]:10.0f} {median[server]:12.0f} "
              f"{cpu_per_gb[server]:16.3f}")
    ratio = median["podium"] / median["nginx"]
    print(f"podium / nginx: {ratio:.2f} (median), {best['podium'] / best['nginx']:.2f} (best); "
          f"target >= 0.80: {'met' if ratio >= 0.8 else 'NOT met'}")
    print(json.dumps({
        "bench": "download", "teams": args.teams, "archive_bytes": size,
        "client_procs": args.client_procs,
        "aiohttp_sendfile": not os.environ.get("AIOHTTP_NOSENDFILE"),
        "podium_mb_s": round(median["podium"]), "nginx_mb_s": round(median["nginx"]),
        "podium_best_mb_s": round(best["podium"]), "nginx_best_mb_s": round(best["nginx"]),
        "ratio": round(ratio, 3), "ratio_best": round(best["podium"] / best["nginx"], 3),
        "podium_cpu_s_per_gb": round(cpu_per_gb["podium"], 3),
        "nginx_cpu_s_per_gb": round(cpu_per_gb["nginx"], 3),
    }))


if __name__ == "__main__":
    main()
