"""Uploads (`POST /api/v1/challenges/{slug}/submissions`, docs/api.md).

The request's start is read from the database's clock before a byte of the body is read; the
body is streamed to disk while hashed, never held in memory; the file is fsynced and renamed
into place, and only then is the submission row inserted, in a transaction that checks the
deadline again against the database's clock. 202 means: the bytes and the row are durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from server import queries
from server.access import Principal, Role
from server.auth import principal_of, requires
from server.challenge import team_challenge
from server.countdown import upload_deadline, upload_refusal
from server.durable import fsync_dir
from server.errors import (
    BadUpload,
    BadWait,
    DeadlinePassed,
    FileTooLarge,
    NotStarted,
    RateLimited,
    SubmissionLimit,
    TooManyPending,
    UploadInterrupted,
    UploadTimeout,
)
from server.form import FormError, FormReader, Part, Read, boundary_of
from server.isotime import iso, wall_clock
from server.keys import ARRIVED, CONFIG, EVENT, POOL, SCORING
from server.leaderboard import bump_board
from server.storage import admit_upload, refuse_if_disk_full
from server.store import challenges as challenge_store
from server.store import submissions as submission_store
from server.store.challenges import Challenge
from server.store.extensions import team_extension
from server.submission import (
    announce,
    count_for_team,
    insert_submission,
    submission_json,
)

log = logging.getLogger(__name__)

MULTIPART_OVERHEAD = 64 * 1024
MAX_WAIT_S = 300.0


@dataclass
class RateLimiter:
    """A token bucket per team, per process: `burst` uploads at once, then one per `every_s`."""

    burst: int = 6
    every_s: float = 10.0
    _buckets: dict[int, tuple[float, float]] = field(default_factory=dict)

    def take(self, team_id: int, now: float | None = None) -> float:
        """0 if allowed (and counted), else the seconds to wait."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(team_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) / self.every_s)
        if tokens < 1:
            self._buckets[team_id] = (tokens, now)
            return (1 - tokens) * self.every_s
        self._buckets[team_id] = (tokens - 1, now)
        return 0.0


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
MAX_PENDING = web.AppKey("max_pending", int)


def safe_filename(name: str | None) -> str:
    """The client's file name reduced to a harmless basename that keeps its suffix."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "upload"
    if len(base) > 100:
        stem, dot, suffix = base.partition(".")
        base = stem[: 100 - len(suffix) - 1] + dot + suffix
    return base


def _deadline_passed(challenge: Challenge, extension: timedelta, now: datetime, timezone: str
                     ) -> DeadlinePassed:
    deadline = upload_deadline(challenge.countdown, extension)
    when = wall_clock(deadline, timezone, day_of=now) if deadline is not None else "unknown"
    return DeadlinePassed(when, wall_clock(now, timezone), deadline_iso=iso(deadline),
                          server_time_iso=iso(now))


def _check_time(challenge: Challenge, extension: timedelta, began: datetime, now: datetime,
                timezone: str) -> None:
    refusal = upload_refusal(challenge.countdown, began, now, extension=extension,
                             grace=challenge.upload_grace)
    if refusal == "not_started":
        raise NotStarted(f"challenge {challenge.slug!r} has not started yet; uploads open "
                         "when the organizers start its clock", server_time=iso(now))
    if refusal == "deadline_passed":
        raise _deadline_passed(challenge, extension, now, timezone)


async def _receive(request: web.Request, target: Path, limit: int) -> tuple[str, int, str]:
    """Streams the multipart field `file` to `target`; returns (sha256, size, filename)."""
    if request.content_length is not None and request.content_length > limit + \
            MULTIPART_OVERHEAD:
        raise FileTooLarge(limit)
    try:
        form = FormReader(_body_reader(request), boundary_of(request.headers.get("Content-Type")))
        part = await form.file_part("file")
        return await _store(form, part, target, limit)
    except FormError as exc:
        raise BadUpload(str(exc)) from None


async def _store(form: FormReader, part: Part, target: Path, limit: int
                 ) -> tuple[str, int, str]:
    """The file part's bytes to `target`, hashed and counted against `limit`, then fsynced."""
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        async for chunk in form.body():
            size += len(chunk)
            if size > limit:
                raise FileTooLarge(limit)
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        await asyncio.to_thread(os.fsync, out.fileno())
    return digest.hexdigest(), size, safe_filename(part.filename)


def _body_reader(request: web.Request) -> Read:
    """The request body's next bytes, with the idle timeout; a vanished client is
    UploadInterrupted."""
    idle = request.app[CONFIG].upload_idle_timeout_s

    async def read() -> bytes:
        try:
            async with asyncio.timeout(idle):
                return await request.content.readany()
        except TimeoutError:
            raise UploadTimeout(idle) from None
        except (ConnectionError, web.RequestPayloadError) as exc:
            raise UploadInterrupted("the connection closed before the upload was complete "
                                    f"({exc})") from None

    return read


@requires(Role.TEAM)
async def upload(request: web.Request) -> web.Response:
    principal = principal_of(request)
    assert principal is not None and principal.team_id is not None
    team_id = principal.team_id
    slug = request.match_info["slug"]
    wait = _wait_seconds(request)  # refused before the upload is stored, not after
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        began = await _request_began(request, conn)
        challenge = await team_challenge(conn, slug, team_id)
        extension = await team_extension(conn, challenge.id, team_id)
        _check_time(challenge, extension, began, began, request.app[EVENT].timezone)
        total, pending = await count_for_team(conn, challenge.id, team_id)
    _check_limits(request, challenge, principal, total, pending)
    space = await admit_upload(request, challenge, team_id, total)  # 507 storage_full
    try:
        folder = request.app[CONFIG].data_dir / "submissions" / slug / str(team_id)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        partial = folder / f".{uuid.uuid4().hex}.part"
        try:
            sha256, size, filename = await _receive(request, partial,
                                                   challenge.max_upload_bytes)
            space.check(size)
            body_done = asyncio.get_running_loop().time()
            final = folder / f"{uuid.uuid4().hex[:12]}_{filename}"
            await asyncio.to_thread(os.replace, partial, final)
            await asyncio.to_thread(fsync_dir, folder)
        except UploadInterrupted as exc:
            partial.unlink(missing_ok=True)
            log.warning("upload by %s for %s dropped: %s", principal.team_name, slug, exc.message)
            raise
        except BaseException as exc:
            partial.unlink(missing_ok=True)
            refuse_if_disk_full(exc)
            raise
        try:
            receipt = await _record(pool, challenge.id, principal, began, body_done, sha256, size,
                                    filename, final, request.app[EVENT].timezone)
        except BaseException as exc:
            final.unlink(missing_ok=True)
            refuse_if_disk_full(exc)
            raise
    finally:
        # Stored (it now counts in the team's total) or refused, dropped, failed (its file is
        # gone): either way its admitted bytes no longer count as in flight.
        space.release()
    request.app[SCORING].wake()  # no need to wait for the announcement to come back
    if wait:
        final_state = await _wait_for_result(request, receipt["id"], wait)
        if final_state is not None:
            return web.json_response(final_state, status=202)
    return web.json_response(receipt, status=202)


async def _request_began(request: web.Request, conn: asyncpg.Connection) -> datetime:
    """When the request began, by the database's clock: its now, less the time the request
    has already spent waiting in this process (for a connection, the token lookup)."""
    now = await queries.database_now(conn)
    waited = asyncio.get_running_loop().time() - request[ARRIVED]
    return now - timedelta(seconds=max(0.0, waited))


def _check_limits(request: web.Request, challenge: Challenge, principal: Principal,
                  total: int, pending: int) -> None:
    assert principal.team_id is not None
    _check_submission_limit(challenge, total)
    if pending >= request.app[MAX_PENDING]:
        raise TooManyPending(pending)
    wait = request.app[RATE_LIMITER].take(principal.team_id)
    if wait:
        raise RateLimited(wait)


def _check_submission_limit(challenge: Challenge, total: int) -> None:
    """Before the body is read, and again in the transaction that records the upload."""
    if challenge.max_submissions is not None and total >= challenge.max_submissions:
        raise SubmissionLimit(challenge.slug, challenge.max_submissions)


async def _record(pool: asyncpg.Pool, challenge_id: int, principal: Principal,
                  began: datetime, body_done: float, sha256: str, size: int, filename: str,
                  path: Path, timezone: str) -> dict[str, Any]:
    assert principal.team_id is not None
    async with pool.acquire() as conn, conn.transaction():
        # The challenge row is locked as the board's version bump below will lock it (taking
        # a weaker lock first and upgrading would deadlock two uploads): this also waits for an
        # organizer's action in flight, and serialises a team's uploads for max_submissions.
        challenge = await challenge_store.challenge_by_id(conn, challenge_id,
                                                          lock="FOR NO KEY UPDATE")
        assert challenge is not None
        # The upload finished when its last byte was on disk, by the database's clock: waiting
        # here for the row lock behind other uploads must not count against the team.
        now = await queries.database_now(conn)
        waited = asyncio.get_running_loop().time() - body_done
        finished = now - timedelta(seconds=max(0.0, waited))
        extension = await team_extension(conn, challenge_id, principal.team_id)
        _check_time(challenge, extension, began, finished, timezone)
        total, _ = await count_for_team(conn, challenge_id, principal.team_id)
        _check_submission_limit(challenge, total)
        inserted = await insert_submission(
            conn, challenge_id=challenge_id, team_id=principal.team_id, request_began_at=began,
            received_at=finished, sha256=sha256, size=size, filename=filename,
            stored_path=str(path))
        await announce(conn, inserted["id"], challenge.slug, principal.team_id, "queued")
        await bump_board(conn, challenge_id)  # the team's submission count changed
    return {"id": inserted["id"], "received_at": iso(inserted["received_at"]),
            "sha256": sha256, "size": size, "filename": filename, "status": "queued"}


def _wait_seconds(request: web.Request) -> float:
    raw = request.query.get("wait")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise BadWait() from None
    return max(0.0, min(value, MAX_WAIT_S))


class ResultWaiters:
    """Uploads with `?wait` waiting for their submission's final state (scored or invalid),
    woken by its announcement, whichever process scored it."""

    def __init__(self) -> None:
        self._waiting: dict[int, set[asyncio.Event]] = {}

    @contextlib.contextmanager
    def waiting(self, submission_id: int) -> Iterator[asyncio.Event]:
        """An event set when the submission reaches a final state, for the `with` block."""
        event = asyncio.Event()
        self._waiting.setdefault(submission_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._waiting.get(submission_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiting[submission_id]

    def on_submission(self, event: dict[str, Any]) -> None:
        if event.get("status") in FINAL_STATES:
            for waiting in self._waiting.get(int(event["id"]), ()):
                waiting.set()


RESULT_WAITERS = web.AppKey("result_waiters", ResultWaiters)
FINAL_STATES = ("scored", "invalid")


async def _wait_for_result(request: web.Request, submission_id: int, seconds: float
                           ) -> dict[str, Any] | None:
    with request.app[RESULT_WAITERS].waiting(submission_id) as done:
        async with request.app[POOL].acquire() as conn:
            row = await submission_store.submission(conn, submission_id)
        if row is not None and not row.final:
            try:
                await asyncio.wait_for(done.wait(), seconds)
            except TimeoutError:
                return None
        async with request.app[POOL].acquire() as conn:
            row = await submission_store.submission(conn, submission_id)
    assert row is not None
    return submission_json(row, principal_of(request))
