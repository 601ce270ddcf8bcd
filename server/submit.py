"""`podium submit`: a team's upload from a terminal or a pipeline (docs/cli.md). The file is
streamed from disk and hashed as it is sent; the receipt's SHA-256 is checked against the bytes
sent; with --wait, the result is printed with its errors and warnings. Exit codes: EXITS["submit"]
in server/command.py.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import aiohttp
from aiohttp import payload
from aiohttp.abc import AbstractStreamWriter

from server import settings
from server.command import ExitCode, UsageError, add_parser
from server.remote import (
    Remote,
    client_session,
    describe,
    event_timezone,
    settle_scheme,
    wall_clock,
)

DEFAULT_WAIT_S = 120.0
CHUNK = 256 * 1024
FINAL = ("scored", "invalid")
POLL_S = 1.0


def add_command(subparsers: Any) -> None:
    """Registers `submit` on `parser.add_subparsers()`'s result."""
    parser = add_parser(
        subparsers, "submit", help="upload a submission file and print the receipt",
        description="Upload FILE to a challenge, print the receipt and check its SHA-256.")
    settings.add_arguments(parser, Remote, "submit")
    parser.add_argument("--challenge", required=True, metavar="SLUG",
                        help="the challenge, e.g. nodules")
    parser.add_argument("file", metavar="FILE", type=Path, nargs="?",
                        help="the .csv, .xlsx or .zip to upload")
    parser.add_argument("--wait", nargs="?", const=DEFAULT_WAIT_S, default=None,
                        type=_seconds_or_file, metavar="SECONDS",
                        help=f"wait for the result, up to SECONDS (default {DEFAULT_WAIT_S:g})")
    parser.add_argument("--json", action="store_true",
                        help="print only the final JSON object on stdout")
    parser.set_defaults(handler=submit_command)


class _NotSeconds(str):
    """What followed --wait was not a number: most likely FILE (`--wait preds.csv`)."""


def _seconds_or_file(raw: str) -> float | _NotSeconds:
    try:
        return float(raw)
    except ValueError:
        return _NotSeconds(raw)


def submit_command(args: argparse.Namespace) -> ExitCode:
    remote = Remote.from_arguments(args, "submit")
    server, assumed = remote.address()
    if not remote.token:
        raise UsageError("no token: pass --token TOKEN or set PODIUM_TOKEN "
                         "(your team's token is in your login link)")
    path, wait = _file_and_wait(args.file, args.wait)
    if not path.is_file():
        raise UsageError(f"submission file {path} not found")
    try:
        file = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    with file:
        return asyncio.run(submit(server, remote.token, args.challenge, file, path.name,
                                  wait=wait, as_json=args.json, out=sys.stdout, err=sys.stderr,
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
                 scheme_assumed: bool = False) -> ExitCode:
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

    def fail(code: str, message: str, exit_code: ExitCode, **extra: Any) -> ExitCode:
        print(f"podium: {message}", file=err)
        if as_json:
            print(json.dumps({"error": {"code": code, "message": message, **extra}}), file=out)
        return exit_code

    async with client_session(timeout=timeout, headers=headers) as session:
        try:
            try:
                async with session.post(url, data=form, params=params) as response:
                    reply = await _reply(response)
            finally:
                upload.progress.close(upload.sent)
        except aiohttp.InvalidURL as exc:
            return fail("bad_url", f"bad server address: {exc}", ExitCode.USAGE)
        except aiohttp.ClientConnectorError as exc:
            return fail("unreachable", f"cannot reach the server at {server} "
                        f"({exc.strerror or exc}). The upload is NOT acknowledged: check the "
                        "address and the network, then send it again.", ExitCode.NETWORK)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            sent = f"{upload.sent:,} of {size:,} bytes sent"
            return fail("connection_lost", f"the connection failed before the server answered "
                        f"({describe(exc)}; {sent}). No receipt was received, so the upload "
                        "is NOT acknowledged: send it again.", ExitCode.NETWORK)
        # 507 storage_full is a refusal with a message (the server's disk or the team's quota),
        # not a failure to retry blindly; other 5xx are.
        refused = reply.status >= 400 and _is_error(reply.body) and \
            (reply.status < 500 or reply.status == 507)
        if reply.status >= 400 and not refused:
            detail = _error_text(reply)
            code = ExitCode.NETWORK if reply.status >= 500 else ExitCode.REFUSED
            note = " The upload is NOT acknowledged: send it again." if code == ExitCode.NETWORK \
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
            return ExitCode.REFUSED
        state = reply.body
        if not isinstance(state, dict) or "id" not in state or "sha256" not in state:
            return fail("bad_receipt", f"the server answered HTTP {reply.status} without a "
                        f"receipt: {_error_text(reply)}", ExitCode.NETWORK)

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
            return ExitCode.MISMATCH
        zone = None if as_json else await event_timezone(session, server)
        if not as_json:
            _print_receipt(state, out, zone)

        if not wait:
            if as_json:
                print(json.dumps(state), file=out)
            return ExitCode.OK
        if state.get("status") not in FINAL:
            sent_at = upload.finished_at or time.monotonic()
            state = await _poll(session, server, state, sent_at + wait, err)
        if as_json:
            print(json.dumps(state), file=out)
        else:
            _print_result(state, out)
        if state.get("status") == "scored":
            return ExitCode.OK
        if state.get("status") == "invalid":
            return ExitCode.REFUSED
        print(f"podium: no result after {wait:g} s (status {state.get('status')}); the upload "
              f"IS acknowledged (receipt above). Check later: GET "
              f"{server}/api/v1/submissions/{state['id']}", file=err)
        return ExitCode.NO_RESULT


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
            print(f"podium: asking for the result failed ({describe(exc)}); retrying",
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
