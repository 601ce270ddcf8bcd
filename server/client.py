"""`podium submit` and `podium watch`: a team's upload from a terminal or a pipeline, and the
live board in a terminal (SPEC §5, §6). Both talk to a running server over HTTP and the
websocket; neither needs the event file or the database.

`add_commands` registers them on the `podium` subparsers; each handler takes the parsed
Namespace and returns the exit code (see EXIT_* below and docs/cli.md).

A server may be given without a scheme (`10.0.0.5:8080`): http is assumed, and https taken
instead when the server answers so (a redirect to https, or a TLS port that hangs up on plain
HTTP). Times are printed in the event's time zone, named; the JSON keeps the API's UTC.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import re
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from aiohttp import payload
from aiohttp.abc import AbstractStreamWriter

EXIT_OK = 0
EXIT_REFUSED = 1  # refused by the server, or the submission is invalid
EXIT_USAGE = 2
EXIT_MISMATCH = 3  # the server stored other bytes than the ones sent
EXIT_NETWORK = 4  # no receipt: the upload is not acknowledged
EXIT_NO_RESULT = 5  # acknowledged, but no result within --wait

DEFAULT_WAIT_S = 120.0
CHUNK = 256 * 1024
FINAL = ("scored", "invalid")
POLL_S = 1.0

METRICS: dict[str, list[str]] = {
    "segmentation-surface": ["dice", "surface_mse"],
    "binary-probability": ["auc"],
    "regression": ["mse"],
}


class UsageError(Exception):
    """A mistake in how the command was called: message on stderr, exit 2."""


def add_commands(subparsers: Any) -> None:
    """Registers `submit` and `watch` on `parser.add_subparsers()`'s result."""
    submit = subparsers.add_parser(
        "submit", help="upload a submission file and print the receipt",
        description="Upload FILE to a challenge, print the receipt and check its SHA-256. "
                    "Exit 0 accepted (and scored, with --wait), 1 refused or invalid, 2 usage "
                    "error, 3 SHA-256 mismatch, 4 network failure (not acknowledged: send "
                    "again), 5 accepted but no result within --wait.")
    submit.add_argument("--server", default=None,
                        help="the server's address, e.g. 10.0.0.5:8080 or "
                             "https://podium.example (or PODIUM_SERVER)")
    submit.add_argument("--token", default=None, help="your team's token (or PODIUM_TOKEN)")
    submit.add_argument("--challenge", required=True, metavar="SLUG",
                        help="the challenge, e.g. nodules")
    submit.add_argument("file", metavar="FILE", type=Path, nargs="?",
                        help="the .csv, .xlsx or .zip to upload")
    submit.add_argument("--wait", nargs="?", const=DEFAULT_WAIT_S, default=None,
                        type=_seconds_or_file, metavar="SECONDS",
                        help=f"wait for the result, up to SECONDS (default {DEFAULT_WAIT_S:g})")
    submit.add_argument("--json", action="store_true",
                        help="print only the final JSON object on stdout")
    submit.set_defaults(handler=submit_command)

    watch = subparsers.add_parser(
        "watch", help="the live board in a terminal",
        description="Show each challenge's clock and leaderboard, redrawn on every change.")
    watch.add_argument("--server", default=None,
                       help="the server's address (or PODIUM_SERVER)")
    watch.add_argument("--token", default=None,
                       help="a jury, organizer or team token (or PODIUM_TOKEN); without one, "
                            "only public boards show")
    watch.add_argument("--challenge", default=None, metavar="SLUG",
                       help="show this challenge only")
    watch.add_argument("--once", action="store_true",
                       help="print one snapshot and exit")
    watch.set_defaults(handler=watch_command)


class _NotSeconds(str):
    """What followed --wait was not a number: most likely FILE (`--wait preds.csv`)."""


def _seconds_or_file(raw: str) -> float | _NotSeconds:
    try:
        return float(raw)
    except ValueError:
        return _NotSeconds(raw)


# -- submit ---------------------------------------------------------------------------------

def submit_command(args: argparse.Namespace) -> int:
    try:
        server, assumed = server_address(args.server or os.environ.get("PODIUM_SERVER"))
        token = args.token or os.environ.get("PODIUM_TOKEN")
        if not token:
            raise UsageError("no token: pass --token TOKEN or set PODIUM_TOKEN "
                             "(your team's token is in your login link)")
        path, wait = _file_and_wait(args.file, args.wait)
        if not path.is_file():
            raise UsageError(f"submission file {path} not found")
        try:
            file = path.open("rb")
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except UsageError as exc:
        print(f"podium: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with file:
        return asyncio.run(submit(server, token, args.challenge, file, path.name, wait=wait,
                                  as_json=args.json, out=sys.stdout, err=sys.stderr,
                                  scheme_assumed=assumed))


def _file_and_wait(file: Path | None, wait: float | str | None) -> tuple[Path, float | None]:
    if isinstance(wait, _NotSeconds):
        if file is not None:
            raise UsageError(f"--wait takes a number of seconds, not {wait!r}")
        return Path(wait), DEFAULT_WAIT_S
    if file is None:
        raise UsageError("which file? podium submit --challenge SLUG FILE")
    if wait is not None and not (isinstance(wait, float) and wait > 0 and math.isfinite(wait)):
        raise UsageError("--wait takes a positive number of seconds")
    return file, wait


def server_address(raw: str | None) -> tuple[str, bool]:
    """The server's base address, checked: http(s)://host[:port][/prefix], no trailing /; and
    whether its scheme was assumed (none given: http, until the server says otherwise)."""
    if not raw:
        raise UsageError("no server: pass --server URL or set PODIUM_SERVER, "
                         "e.g. 10.0.0.5:8080")
    text = raw.strip()
    assumed = "://" not in text
    parts = urlsplit(f"http://{text}" if assumed else text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"bad server address {raw!r}: expected HOST:PORT, http://HOST:PORT "
                         "or https://HOST")
    try:
        parts.port  # noqa: B018 -- raises on a malformed port
    except ValueError:
        raise UsageError(f"bad port in server address {raw!r}") from None
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", "")), assumed


def server_url(raw: str | None) -> str:
    """The server's base address with its scheme (http when none is given)."""
    return server_address(raw)[0]


def tls_context() -> ssl.SSLContext:
    """The certificates to trust: the system's, or the file SSL_CERT_FILE names (a venue's
    own authority), read when the command runs."""
    return ssl.create_default_context()


def _session(**kwargs: Any) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_context()), **kwargs)


PLAIN_TO_TLS = "sent to HTTPS port"  # nginx's 400 page for plain HTTP on its TLS port
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=10)


async def settle_scheme(server: str, assumed: bool) -> str:
    """The address to use: `server` as given, or, when its http scheme was only assumed, https
    if the server answers so — a redirect to https, nginx's "sent to HTTPS port" page, or a
    connection that a TLS port closes on plain HTTP while https answers."""
    if not assumed:
        return server
    parts = urlsplit(server)
    secure = urlunsplit(("https", parts.netloc, parts.path, "", ""))
    async with _session(timeout=PROBE_TIMEOUT) as session:
        try:
            async with session.get(f"{server}/api/v1/time", allow_redirects=False) as answer:
                location = urlsplit(answer.headers.get("Location", ""))
                if answer.status in (301, 302, 303, 307, 308) and location.scheme == "https":
                    return urlunsplit(("https", location.netloc or parts.netloc, parts.path,
                                       "", ""))
                if answer.status == 400 and PLAIN_TO_TLS in await answer.text():
                    return secure
                return server
        except aiohttp.ClientConnectorError:
            return server  # nothing listens: the upload will say so
        except (aiohttp.ClientError, TimeoutError):
            pass  # a TLS port hangs up on plain HTTP: ask it in TLS
        try:
            async with session.get(f"{secure}/api/v1/time") as answer:
                await answer.read()
                return secure
        except (aiohttp.ClientError, TimeoutError):
            return server


async def event_timezone(session: aiohttp.ClientSession, server: str) -> str | None:
    """The zone the event's people read times in, from `GET /api/v1/time`; None if the
    server does not say."""
    try:
        async with session.get(f"{server}/api/v1/time", timeout=PROBE_TIMEOUT) as answer:
            body = await answer.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    zone = body.get("timezone") if isinstance(body, dict) else None
    return zone if isinstance(zone, str) and _known_zone(zone) else None


def _known_zone(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def wall_clock(moment: str | None, zone: str | None) -> str:
    """An API time (UTC) as the room reads it: `10:05:09 Europe/Paris`; the UTC text itself
    when the zone is unknown."""
    when = parse_time(moment)
    if when is None:
        return "-"
    if zone is None:
        return str(moment)
    return f"{datetime.fromtimestamp(when, ZoneInfo(zone)):%H:%M:%S} {zone}"


class Progress:
    """Upload progress on stderr: a bar redrawn in place on a terminal, else a line per 10%."""

    def __init__(self, total: int, stream: TextIO, *, tty: bool | None = None,
                 clock: Any = time.monotonic) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.clock = clock
        self.started = clock()
        self._last_draw = -1.0
        self._last_decile = 0

    def update(self, sent: int) -> None:
        now = self.clock()
        if self.tty:
            if sent >= self.total or now - self._last_draw >= 0.1:
                self._last_draw = now
                self.stream.write("\r" + self.line(sent, now, bar=True))
                if sent >= self.total:
                    self.stream.write("\n")
                self.stream.flush()
            return
        decile = 10 if self.total == 0 else sent * 10 // self.total
        if decile > self._last_decile:
            self._last_decile = decile
            self.stream.write(f"upload: {self.line(sent, now, bar=False)}\n")
            self.stream.flush()

    def line(self, sent: int, now: float, *, bar: bool) -> str:
        fraction = 1.0 if self.total == 0 else sent / self.total
        elapsed = max(now - self.started, 1e-6)
        text = (f"{fraction:4.0%}  {_size(sent)}/{_size(self.total)}  "
                f"{_size(sent / elapsed)}/s")
        if not bar:
            return text
        filled = int(fraction * 30)
        return f"[{'#' * filled}{'.' * (30 - filled)}] {text}"


    def close(self, sent: int) -> None:
        """Ends a bar left half-drawn when the server answered before the last byte."""
        if self.tty and self._last_draw >= 0 and sent < self.total:
            self.stream.write("\n")
            self.stream.flush()


def _size(n: float) -> str:
    if n < 1e3:
        return f"{n:.0f} B"
    if n < 1e6:
        return f"{n / 1e3:.1f} kB"
    return f"{n / 1e6:.1f} MB"


class FileUpload(payload.Payload):
    """A file streamed from disk in chunks, hashed (SHA-256) as it is sent, with progress.

    The hash is of the bytes actually sent, so comparing it with the server's receipt proves the
    server stored exactly this file. Reads and hashing run in a thread; `writer.write` waits
    while the socket's buffer is full, so the progress follows the network, not the disk."""

    def __init__(self, file: BinaryIO, size: int, filename: str, progress: Progress) -> None:
        super().__init__(file, content_type="application/octet-stream", filename=filename)
        self._size = size
        self.file = file
        self.progress = progress
        self.digest = hashlib.sha256()
        self.sent = 0
        self.finished_at: float | None = None  # time.monotonic() when the last byte went out

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a streamed upload cannot be decoded")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter,
                                content_length: int | None) -> None:
        size = self._size or 0
        if content_length is not None:
            size = min(size, content_length)
        self.file.seek(0)
        self.digest, self.sent = hashlib.sha256(), 0
        while self.sent < size:
            chunk = await asyncio.to_thread(self._read, min(CHUNK, size - self.sent))
            if not chunk:
                raise OSError("the file shrank while it was being sent")
            await writer.write(chunk)
            self.sent += len(chunk)
            self.progress.update(self.sent)
        if size == 0:
            self.progress.update(0)
        self.finished_at = time.monotonic()

    def _read(self, n: int) -> bytes:
        chunk = self.file.read(n)
        self.digest.update(chunk)
        return chunk


@dataclass
class Reply:
    status: int
    body: Any  # the decoded JSON, or None
    text: str


async def _reply(response: aiohttp.ClientResponse) -> Reply:
    raw = await response.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return Reply(response.status, body, raw[:500].decode("utf-8", "replace"))


async def submit(server: str, token: str, challenge: str, file: BinaryIO, filename: str, *,
                 wait: float | None, as_json: bool, out: TextIO, err: TextIO,
                 scheme_assumed: bool = False) -> int:
    """Uploads `file` to `challenge`; prints the receipt (and the result with `wait`); returns
    the exit code."""
    server = await settle_scheme(server, scheme_assumed)
    size = os.fstat(file.fileno()).st_size
    upload = FileUpload(file, size, filename, Progress(size, err))
    form = aiohttp.MultipartWriter("form-data")
    part = form.append_payload(upload)
    part.set_content_disposition("form-data", name="file", filename=filename)
    url = f"{server}/api/v1/challenges/{challenge}/submissions"
    params = {"wait": f"{wait:g}"} if wait else {}
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    # sock_read starts once the body is sent: the server may hold the answer for `wait`.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30,
                                    sock_read=(wait or 0) + 60)

    def fail(code: str, message: str, exit_code: int, **extra: Any) -> int:
        print(f"podium: {message}", file=err)
        if as_json:
            print(json.dumps({"error": {"code": code, "message": message, **extra}}), file=out)
        return exit_code

    async with _session(timeout=timeout, headers=headers) as session:
        try:
            try:
                async with session.post(url, data=form, params=params) as response:
                    reply = await _reply(response)
            finally:
                upload.progress.close(upload.sent)
        except aiohttp.InvalidURL as exc:
            return fail("bad_url", f"bad server address: {exc}", EXIT_USAGE)
        except aiohttp.ClientConnectorError as exc:
            return fail("unreachable", f"cannot reach the server at {server} "
                        f"({exc.strerror or exc}). The upload is NOT acknowledged: check the "
                        "address and the network, then send it again.", EXIT_NETWORK)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            sent = f"{upload.sent:,} of {size:,} bytes sent"
            return fail("connection_lost", f"the connection failed before the server answered "
                        f"({_describe(exc)}; {sent}). No receipt was received, so the upload "
                        "is NOT acknowledged: send it again.", EXIT_NETWORK)
        # 507 storage_full is a refusal with a message (the server's disk or the team's quota),
        # not a failure to retry blindly; other 5xx are.
        refused = reply.status >= 400 and _is_error(reply.body) and \
            (reply.status < 500 or reply.status == 507)
        if reply.status >= 400 and not refused:
            detail = _error_text(reply)
            code = EXIT_NETWORK if reply.status >= 500 else EXIT_REFUSED
            note = " The upload is NOT acknowledged: send it again." if code == EXIT_NETWORK \
                else ""
            return fail("http_error", f"the server answered HTTP {reply.status}: {detail}.{note}",
                        code)
        if reply.status >= 400:
            error = reply.body["error"]
            print(f"podium: the server refused the upload (HTTP {reply.status}, "
                  f"{error.get('code')}): {error.get('message')}", file=err)
            for key, value in error.items():
                if key not in ("code", "message"):
                    print(f"  {key}: {value}", file=err)
            if as_json:
                print(json.dumps(reply.body), file=out)
            return EXIT_REFUSED
        state = reply.body
        if not isinstance(state, dict) or "id" not in state or "sha256" not in state:
            return fail("bad_receipt", f"the server answered HTTP {reply.status} without a "
                        f"receipt: {_error_text(reply)}", EXIT_NETWORK)

        local = upload.digest.hexdigest()
        if state["sha256"] != local or state.get("size") != size:
            message = ("SHA-256 MISMATCH: the server stored different bytes than the ones sent "
                       f"(server {state['sha256']}, {state.get('size')} bytes; local {local}, "
                       f"{size} bytes). Do not trust this submission: send the file again and "
                       "tell the organizers.")
            banner = "!" * 72
            print(f"{banner}\npodium: {message}\n{banner}", file=err)
            if as_json:
                print(json.dumps({"error": {"code": "sha256_mismatch", "message": message,
                                            "receipt": state, "local_sha256": local}}),
                      file=out)
            return EXIT_MISMATCH
        zone = None if as_json else await event_timezone(session, server)
        if not as_json:
            _print_receipt(state, out, zone)

        if not wait:
            if as_json:
                print(json.dumps(state), file=out)
            return EXIT_OK
        if state.get("status") not in FINAL:
            sent_at = upload.finished_at or time.monotonic()
            state = await _poll(session, server, state, sent_at + wait, err)
        if as_json:
            print(json.dumps(state), file=out)
        else:
            _print_result(state, out)
        if state.get("status") == "scored":
            return EXIT_OK
        if state.get("status") == "invalid":
            return EXIT_REFUSED
        print(f"podium: no result after {wait:g} s (status {state.get('status')}); the upload "
              f"IS acknowledged (receipt above). Check later: GET "
              f"{server}/api/v1/submissions/{state['id']}", file=err)
        return EXIT_NO_RESULT


async def _poll(session: aiohttp.ClientSession, server: str, state: dict[str, Any],
                until: float, err: TextIO) -> dict[str, Any]:
    """Asks for the submission until it is final or the time is up; a failed poll is retried
    (the upload is acknowledged already)."""
    url = f"{server}/api/v1/submissions/{state['id']}"
    while time.monotonic() < until:
        await asyncio.sleep(min(POLL_S, max(0.0, until - time.monotonic())))
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
                reply = await _reply(response)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            print(f"podium: asking for the result failed ({_describe(exc)}); retrying",
                  file=err)
            continue
        if reply.status == 200 and isinstance(reply.body, dict):
            state = reply.body
            if state.get("status") in FINAL:
                break
        else:
            print(f"podium: asking for the result: HTTP {reply.status}: {_error_text(reply)}",
                  file=err)
    return state


def _is_error(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


def _error_text(reply: Reply) -> str:
    if _is_error(reply.body):
        error = reply.body["error"]
        return f"{error.get('code')}: {error.get('message')}"
    return reply.text.strip() or "(empty body)"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _print_receipt(state: dict[str, Any], out: TextIO, zone: str | None = None) -> None:
    print(f"receipt: submission {state['id']}", file=out)
    received = state.get("received_at")
    shown = f"{wall_clock(received, zone)} ({received})" if zone else str(received)
    print(f"  received_at  {shown}", file=out)
    print(f"  sha256       {state['sha256']}  (matches the local file)", file=out)
    print(f"  size         {state.get('size'):,} bytes", file=out)
    out.flush()


def _print_result(state: dict[str, Any], out: TextIO) -> None:
    print(f"status: {state.get('status')}", file=out)
    metrics = state.get("metrics")
    if isinstance(metrics, dict):
        shown = "  ".join(f"{k} {_number(v)}" for k, v in metrics.items())
        print(f"metrics: {shown}", file=out)
    elif state.get("status") == "scored":
        print("metrics: not shown to teams for this challenge (its feedback policy shows the "
              "status only)", file=out)
    for error in state.get("errors") or []:
        where = f" [{error['id']}]" if error.get("id") else ""
        print(f"error: {error.get('code')}{where}: {error.get('message')}", file=out)
    for warning in state.get("warnings") or []:
        where = f" [{warning['id']}]" if warning.get("id") else ""
        print(f"warning: {warning.get('code')}{where}: {warning.get('message')}", file=out)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# -- watch ----------------------------------------------------------------------------------

CLEAR = "\x1b[H\x1b[2J"
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
ONCE_TIMEOUT_S = 10.0
_CHANNEL_IN_MESSAGE = re.compile(r"'(leaderboard:[^']+)'")


def websocket_url(server: str) -> str:
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


def backoff_delays(first: float = 0.5, cap: float = 10.0) -> Iterator[float]:
    """0.5, 1, 2, 4, 8, 10, 10, … seconds between reconnection attempts."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def parse_time(moment: str | None) -> float | None:
    """Seconds since the epoch of an API time (ISO 8601, `Z`), or None."""
    if not moment:
        return None
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


def format_remaining(seconds: float) -> str:
    """A countdown: `1:59:58` from an hour up, `09:05` below, never negative."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _clock_time(moment: float, zone: str | None = None) -> str:
    """HH:MM:SS in the event's zone (this machine's when the server does not name one)."""
    return datetime.fromtimestamp(moment, ZoneInfo(zone) if zone else None).strftime("%H:%M:%S")


def remaining_s(challenge: dict[str, Any], offset_s: float, now: float) -> float | None:
    """Seconds left on a running challenge by the server's clock (local `now` + offset), or the
    frozen remaining time of a paused one."""
    deadline = parse_time(challenge.get("deadline"))
    if challenge.get("state") == "running" and deadline is not None:
        return deadline - (now + offset_s)
    value = challenge.get("remaining_s")
    return float(value) if isinstance(value, int | float) else None


def _clock_line(challenge: dict[str, Any], offset_s: float, now: float,
                zone: str | None = None) -> str:
    state = challenge.get("state", "?")
    left = remaining_s(challenge, offset_s, now)
    if state == "waiting":
        duration = challenge.get("duration_s")
        return (f"waiting · {format_remaining(duration)} once started"
                if isinstance(duration, int | float) else "waiting")
    if state == "running" and left is not None:
        deadline = parse_time(challenge.get("deadline"))
        # The server's deadline in the event's zone; without one, this machine's clock at it.
        at = _clock_time(deadline, zone) + f" {zone}" if zone and deadline \
            else _clock_time(deadline - offset_s) if deadline else ""
        until = f" (deadline {at})" if deadline else ""
        return f"running · {format_remaining(left)} left{until}"
    if state == "paused" and left is not None:
        return f"paused · {format_remaining(left)} left, clock stopped"
    return str(state)


def render_board(challenge: dict[str, Any], board: dict[str, Any] | None, offset_s: float,
                 now: float, zone: str | None = None) -> str:
    """One challenge as text: title, state and time left, then its board.

    `challenge` is one entry of a `clock` message; `board` the latest `leaderboard` message for
    it, or the `error` message its subscription got, or None while none came; `offset_s` the
    server's clock minus the local one; `now` the local time (epoch seconds)."""
    slug = challenge.get("slug", "?")
    lines = [f"{challenge.get('title', slug)}  [{slug}]"]
    status = _clock_line(challenge, offset_s, now, zone)
    if board is not None and board.get("type") == "leaderboard" and board.get("frozen"):
        status += "  ❄ FROZEN (board as it stood at the freeze)"
    lines.append(status)
    for extension in challenge.get("extensions") or []:
        left = remaining_s({**extension, "state": extension.get("state")}, offset_s, now)
        shown = format_remaining(left) if left is not None else extension.get("state")
        lines.append(f"  extra time for {extension.get('team')}: {shown} left")
    if challenge.get("extension_s"):
        lines.append(f"  includes your team's extra {format_remaining(challenge['extension_s'])}")

    if board is None:
        lines.append("  (waiting for the board…)")
    elif board.get("type") == "error":
        error = board.get("error") or {}
        code = error.get("code")
        if code == "unknown_channel":
            lines.append(f"  no live board from this server ({code}: {error.get('message')})")
        elif code in ("forbidden", "unauthorized", "invalid_token", "not_visible"):
            lines.append("  board not visible to this token")
        else:
            lines.append(f"  board unavailable ({code}: {error.get('message')})")
    else:
        lines.extend(_board_rows(str(challenge.get("kind")), board.get("rows") or [], zone))
    return "\n".join(lines)


def _board_rows(kind: str, rows: list[dict[str, Any]], zone: str | None = None) -> list[str]:
    if not rows:
        return ["  no teams on this board yet"]
    metrics = METRICS.get(kind) or sorted({k for r in rows for k in (r.get("metrics") or {})})
    columns = [*metrics, "score"] if kind == "segmentation-surface" else metrics
    ranked: list[dict[str, Any]] = []
    unranked: list[dict[str, Any]] = []
    for row in rows:
        valid = row.get("valid", True) and row.get("rank") is not None
        (ranked if valid else unranked).append(row)
    ranked.sort(key=lambda r: (r["rank"], str(r.get("team", "")).lower()))
    ranks = [r["rank"] for r in ranked]
    width = min(28, max(4, *(len(str(r.get("team", ""))) for r in rows)))
    head = f"  {'#':>3}  {'team':<{width}}" + "".join(f"  {c:>11}" for c in columns) \
        + f"  {'subs':>4}  counted"
    out = [head]
    for row in ranked:
        rank = f"{row['rank']}{'=' if ranks.count(row['rank']) > 1 else ''}"
        values = dict(row.get("metrics") or {})
        if "score" in columns:
            values["score"] = row.get("score")
        cells = "".join(f"  {_cell(values.get(c), metric=c != 'score'):>11}"
                        for c in columns)
        out.append(f"  {rank:>3}  {_fit(row.get('team'), width):<{width}}{cells}  "
                   f"{row.get('submissions', 0):>4}  {_counted_at(row.get('received_at'), zone)}")
    for row in unranked:
        cells = "".join(f"  {'-':>11}" for _ in columns)
        out.append(f"  {'-':>3}  {_fit(row.get('team'), width):<{width}}{cells}  "
                   f"{row.get('submissions', 0):>4}  -         no valid submission")
    return out


def _fit(team: Any, width: int) -> str:
    text = str(team or "?")
    return text if len(text) <= width else text[: width - 1] + "…"


def _cell(value: Any, *, metric: bool) -> str:
    if value is None:
        return "-"
    if not isinstance(value, int | float):
        return str(value)
    if not metric and float(value).is_integer():
        return f"{value:.0f}"  # a rank sum
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"


def _counted_at(received_at: str | None, zone: str | None = None) -> str:
    moment = parse_time(received_at)
    return _clock_time(moment, zone) if moment is not None else "-"


@dataclass
class WatchState:
    """What `watch` knows: the latest clock, each board, and the subscriptions of the current
    connection. `apply` takes one message and answers the channels to subscribe to (again)."""

    only: str | None = None
    challenges: list[dict[str, Any]] = field(default_factory=list)
    boards: dict[str, dict[str, Any]] = field(default_factory=dict)
    offset_s: float = 0.0
    clock_seen: bool = False
    notice: str | None = None
    subscribed: set[str] = field(default_factory=set)
    seqs: dict[str, int] = field(default_factory=dict)
    fresh: set[str] = field(default_factory=set)
    timezone: str | None = None  # the event's, from the clock messages

    def connected(self) -> None:
        """A new connection starts with no subscription; boards stay shown until replaced."""
        self.subscribed.clear()
        self.seqs.clear()
        self.fresh.clear()
        self.clock_seen = False

    def shown(self) -> list[dict[str, Any]]:
        return [c for c in self.challenges if self.only is None or c.get("slug") == self.only]

    @property
    def unknown_challenge(self) -> bool:
        return self.clock_seen and self.only is not None and not self.shown()

    def complete(self) -> bool:
        """A snapshot of everything shown has arrived (for --once)."""
        return self.clock_seen and all(
            f"leaderboard:{c['slug']}" not in self.fresh and c["slug"] in self.boards
            for c in self.shown())

    def apply(self, message: dict[str, Any], received_at: float) -> list[str]:
        server_time = parse_time(message.get("server_time"))
        if server_time is not None:
            self.offset_s = server_time - received_at
        kind = message.get("type")
        if kind == "clock":
            self.challenges = list(message.get("challenges") or [])
            self.clock_seen = True
            zone = message.get("timezone")
            if isinstance(zone, str) and _known_zone(zone):
                self.timezone = zone
            wanted = [f"leaderboard:{c['slug']}" for c in self.shown()]
            new = [c for c in wanted if c not in self.subscribed]
            self.subscribed.update(new)
            self.fresh.update(new)
            return new
        if kind == "leaderboard":
            return self._leaderboard(message)
        if kind == "resync":
            channels = [c for c in message.get("channels") or sorted(self.subscribed | {"clock"})
                        if isinstance(c, str)]
            self.seqs.clear()
            self.fresh.update(c for c in channels if c.startswith("leaderboard:"))
            return channels
        if kind == "error":
            channel = _error_channel(message)
            if channel is not None and channel.startswith("leaderboard:"):
                self.boards[channel.split(":", 1)[1]] = message
                self.fresh.discard(channel)
            else:
                error = message.get("error") or {}
                self.notice = f"{error.get('code')}: {error.get('message')}"
        return []

    def _leaderboard(self, message: dict[str, Any]) -> list[str]:
        slug = str(message.get("challenge"))
        channel = f"leaderboard:{slug}"
        seq = message.get("seq")
        last = self.seqs.get(channel)
        again: list[str] = []
        if channel in self.fresh or last is None or not isinstance(seq, int):
            self.fresh.discard(channel)
        elif seq <= last:
            return []  # older than what is shown
        elif seq > last + 1:
            # A change was missed: the board below is newer, but ask for a fresh snapshot as
            # the contract says, and take whatever seq it carries.
            self.fresh.add(channel)
            again = [channel]
        if isinstance(seq, int):
            self.seqs[channel] = seq
        self.boards[slug] = message
        return again


def _error_channel(message: dict[str, Any]) -> str | None:
    error = message.get("error") or {}
    channel = message.get("channel") or error.get("channel")
    if isinstance(channel, str):
        return channel
    found = _CHANNEL_IN_MESSAGE.search(str(error.get("message", "")))
    return found.group(1) if found else None


def render_screen(state: WatchState, server: str, status: str, now: float) -> str:
    zone = state.timezone
    server_clock = _clock_time(now + state.offset_s, zone) if state.clock_seen or \
        state.challenges else "--:--:--"
    if zone:
        server_clock += f" {zone}"
    lines = [f"Podium · {server} · server time {server_clock} · {status}"]
    if state.notice:
        lines.append(f"server says: {state.notice}")
    lines.append("")
    if not state.challenges:
        lines.append("(waiting for the clock…)")
    for challenge in state.shown():
        lines.append(render_board(challenge, state.boards.get(challenge["slug"]),
                                  state.offset_s, now, zone))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def watch_command(args: argparse.Namespace) -> int:
    try:
        server, assumed = server_address(args.server or os.environ.get("PODIUM_SERVER"))
    except UsageError as exc:
        print(f"podium: {exc}", file=sys.stderr)
        return EXIT_USAGE
    token = args.token or os.environ.get("PODIUM_TOKEN")
    try:
        return asyncio.run(watch(server, token, args.challenge, once=args.once,
                                 out=sys.stdout, err=sys.stderr, scheme_assumed=assumed))
    except KeyboardInterrupt:
        return EXIT_OK


async def watch(server: str, token: str | None, only: str | None, *, once: bool,
                out: TextIO, err: TextIO, scheme_assumed: bool = False) -> int:
    """Shows the boards until cancelled (or, with `once`, prints one snapshot); returns the
    exit code: 0, 2 for an unknown challenge, 4 when `once` cannot reach the server."""
    server = await settle_scheme(server, scheme_assumed)
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, WebSocketException

    state = WatchState(only=only)
    status = "connecting…"
    headers = {"Authorization": f"Bearer {token}"} if token else None
    url = websocket_url(server)
    delays = backoff_delays()

    def draw() -> None:
        if not once:
            out.write(CLEAR + render_screen(state, server, status, time.time()))
            out.flush()

    async def ticker() -> None:
        while True:
            await asyncio.sleep(1.0 - time.time() % 1.0)
            draw()

    if not once:
        out.write(HIDE_CURSOR)
    refresher = None if once else asyncio.create_task(ticker())
    try:
        while True:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    if once:
                        await stack.enter_async_context(asyncio.timeout(ONCE_TIMEOUT_S))
                    ws = await stack.enter_async_context(
                        connect(url, additional_headers=headers, proxy=None, open_timeout=10))
                    state.connected()
                    delays = backoff_delays()
                    status = "live"
                    await ws.send(_subscribe(["clock"]))
                    async for raw in ws:
                        try:
                            message = json.loads(raw)
                        except ValueError:
                            continue
                        if not isinstance(message, dict):
                            continue
                        again = state.apply(message, time.time())
                        if state.unknown_challenge:
                            slugs = ", ".join(c.get("slug", "?") for c in state.challenges)
                            print(f"podium: no challenge {only!r}; challenges: {slugs}",
                                  file=err)
                            return EXIT_USAGE
                        if again:
                            await ws.send(_subscribe(again))
                        if once and state.complete():
                            out.write(render_screen(state, server, "snapshot", time.time()))
                            return EXIT_OK
                        draw()
                    raise ConnectionError("the server closed the connection")
            except TimeoutError:
                if once and state.clock_seen:
                    out.write(render_screen(state, server, "snapshot (some boards did not "
                                            "answer)", time.time()))
                    return EXIT_OK
                problem = "timed out"
            except InvalidStatus as exc:
                problem = f"the server refused the websocket: HTTP " \
                          f"{exc.response.status_code}"
            except (OSError, WebSocketException) as exc:
                problem = _describe(exc)
            if once:
                print(f"podium: cannot reach the server at {server} ({problem})", file=err)
                return EXIT_NETWORK
            delay = next(delays)
            status = f"reconnecting… ({problem}; next try in {delay:g} s)"
            draw()
            await asyncio.sleep(delay)
            status = "reconnecting…"
    finally:
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        if not once:
            out.write(SHOW_CURSOR + "\n")
            out.flush()


def _subscribe(channels: list[str]) -> str:
    return json.dumps({"type": "subscribe", "channels": channels})


