"""The batches' routes (docs/api.md, docs/datasets.md "Batches"): what is open for a team and
its archive, the organizers' schedule and opening, and the console's datasets view."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web

from server.access import Role
from server.auth import principal_of, requires, session_id
from server.challenge import team_challenge
from server.dataset.batch import (
    BatchState,
    next_opening,
    open_now,
    packed_batch,
    part_of,
    require_open,
    spec_of,
    state_at,
)
from server.dataset.cohort import split_json, stored_split
from server.dataset.views import _body, _challenge
from server.errors import NoSplit
from server.event import BatchSpec, ChallengeSpec
from server.isotime import iso
from server.keys import CONFIG, EVENT, POOL
from server.pages import render
from server.release.download import LoggedFileResponse
from server.session import operator_name
from server.store import batches as batch_store
from server.store import registrations as registration_store
from server.store.batches import PackedBatch, TeamDownloads
from server.store.sessions import operator_of


def local_time(moment: datetime | None, timezone: str) -> str | None:
    """`2019-09-11 09:00:00 Europe/Paris`: a schedule's times always with their date."""
    if moment is None:
        return None
    return f"{moment.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M:%S} {timezone}"


def _archive_url(slug: str, name: str) -> str:
    return f"/api/v1/challenges/{slug}/batches/{name}/archive"


def batch_json(challenge: ChallengeSpec, spec: BatchSpec, packed: PackedBatch | None,
               now: datetime, timezone: str, *, organizer: bool) -> dict[str, Any]:
    opened_at = packed.opened_at if packed is not None else None
    state = state_at(spec, opened_at, now)
    downloadable = spec.sealed or state is BatchState.OPEN
    shown: dict[str, Any] = {
        "name": spec.name, "set": spec.set, "part": spec.part, "parts": spec.parts,
        "state": str(state), "opens": iso(spec.opens),
        "opens_local": local_time(spec.opens, timezone),
        "opened_at": iso(opened_at), "sealed": spec.sealed,
        "archive": _archive_url(challenge.slug, spec.name) if downloadable else None,
        "packed": packed is not None,
        "exams": len(packed.exams) if packed is not None else None,
        "size": packed.size if packed is not None else None,
        "sha256": packed.sha256 if packed is not None else None,
    }
    if spec.sealed:
        # The key goes out with the opening; organizers see it once the batch is packed.
        reveal = organizer or state is BatchState.OPEN
        shown["key"] = packed.key if packed is not None and reveal else None
    if organizer:
        shown["opened_by"] = packed.opened_by if packed is not None else None
    return shown


def _downloads_json(rows: list[TeamDownloads]) -> list[dict[str, Any]]:
    return [{"team": r.team, "downloads": r.downloads, "complete": r.complete,
             "bytes": r.bytes} for r in rows]


async def schedule(conn: asyncpg.Connection, challenge: ChallengeSpec, timezone: str, *,
                   organizer: bool) -> dict[str, Any]:
    """The question's batches as a team (what it may download, the next opening) or an
    organizer (all of them, with each team's downloads) sees them."""
    now = await batch_store.now(conn)
    packed = await batch_store.packed(conn, challenge.slug)
    shown = [batch_json(challenge, b, packed.get(b.name), now, timezone, organizer=organizer)
             for b in challenge.batches]
    opened = {n: p.opened_at for n, p in packed.items()}
    coming = next_opening(challenge.batches, opened, now)
    body: dict[str, Any] = {"challenge": challenge.slug, "server_time": iso(now),
                            "next_opens": iso(coming),
                            "next_opens_local": local_time(coming, timezone)}
    if organizer:
        counts = await batch_store.downloads(conn, challenge.slug)
        sizes = await _planned_sizes(conn, challenge)
        for row in shown:
            row["downloads"] = _downloads_json(counts.get(row["name"], []))
            if row["exams"] is None:
                row["exams"] = sizes.get(row["name"])
        body["batches"] = shown
    else:
        body["batches"] = [row for row in shown if row["archive"] is not None]
    return body


async def _planned_sizes(conn: asyncpg.Connection, challenge: ChallengeSpec) -> dict[str, int]:
    """The exams each batch not yet packed would hold under the split in force."""
    if not challenge.batches:
        return {}
    try:
        _, result, _ = await stored_split(conn, challenge)
    except NoSplit:
        return {}
    return {b.name: len(part_of([e.id for e in result.members(b.set)], b.part, b.parts))
            for b in challenge.batches}


@requires(Role.TEAM, Role.ORGANIZER)
async def list_batches(request: web.Request) -> web.Response:
    challenge = _challenge(request)
    principal = principal_of(request)
    assert principal is not None
    async with request.app[POOL].acquire() as conn:
        if principal.role is Role.TEAM:
            assert principal.team_id is not None
            await team_challenge(conn, challenge.slug, principal.team_id)
        body = await schedule(conn, challenge, request.app[EVENT].timezone,
                              organizer=principal.role is Role.ORGANIZER)
    return web.json_response(body)


@requires(Role.TEAM)
async def archive(request: web.Request) -> web.StreamResponse:
    challenge = _challenge(request)
    principal = principal_of(request)
    assert principal is not None and principal.team_id is not None
    spec = spec_of(challenge, request.match_info["name"])
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        stored = await team_challenge(conn, challenge.slug, principal.team_id)
        now = await batch_store.now(conn)
        packed = await batch_store.packed_one(conn, challenge.slug, spec.name)
        require_open(challenge, spec, packed, now, request.app[EVENT].timezone)
    packed = await packed_batch(pool, challenge, spec, request.app[CONFIG].data_dir)
    challenge_id, team_id, size = stored.id, principal.team_id, packed.size

    async def log_download(response: web.StreamResponse, range_start: int,
                           complete: bool) -> None:
        sent = response.content_length or 0 if complete else 0
        async with pool.acquire() as conn:
            await batch_store.log_download(
                conn, challenge_id, spec.name, team_id, range_start, sent,
                complete and response.status in (200, 206) and range_start + sent >= size)

    return LoggedFileResponse(packed.path, log_download, headers={
        "Content-Disposition": f'attachment; filename="{packed.file_name}"',
        "Content-Type": "application/zip", "X-Content-SHA256": packed.sha256})


@requires(Role.ORGANIZER)
async def open_batch(request: web.Request) -> web.Response:
    """Opens a batch now (packing it first, which releases its set); opening twice keeps
    the first opening."""
    challenge = _challenge(request)
    spec = spec_of(challenge, request.match_info["name"])
    body = await _body(request)
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        by = operator_name(body.get("by")) or await operator_of(conn, session_id(request))
    packed = await open_now(pool, challenge, spec, request.app[CONFIG].data_dir, by)
    async with pool.acquire() as conn:
        now = await batch_store.now(conn)
    return web.json_response(batch_json(challenge, spec, packed, now,
                                        request.app[EVENT].timezone, organizer=True))


@requires(Role.ORGANIZER)
async def datasets_page(request: web.Request) -> web.Response:
    """Per question: the split's report, the batch schedule with each team's downloads, and
    the registrations waiting for approval."""
    event = request.app[EVENT]
    questions = []
    async with request.app[POOL].acquire() as conn:
        waiting = await registration_store.waiting_count(conn)
        for challenge in event.challenges:
            if challenge.splits is None and not challenge.batches:
                continue
            try:
                report: dict[str, Any] | None = await split_json(
                    conn, challenge, request.app[CONFIG].data_dir)
            except NoSplit:
                report = None
            for row in report["sets"] if report else []:
                released = row["released_at"]
                row["released_local"] = local_time(
                    datetime.fromisoformat(released) if released else None, event.timezone)
            shown = await schedule(conn, challenge, event.timezone, organizer=True)
            for batch in shown["batches"]:
                opened = batch["opened_at"]
                batch["opened_local"] = local_time(
                    datetime.fromisoformat(opened) if opened else None, event.timezone)
            questions.append({
                "slug": challenge.slug, "title": challenge.title, "split": report,
                "declared": [{"set": n, "size": s} for n, s in challenge.splits.sets]
                if challenge.splits else [],
                "schedule": shown})
    return render(request, "organizer_datasets.html", questions=questions, waiting=waiting,
                  registration=event.registration is not None)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/challenges/{slug}/batches", list_batches)
    app.router.add_get("/api/v1/challenges/{slug}/batches/{name}/archive", archive)
    app.router.add_post("/api/v1/challenges/{slug}/batches/{name}/open", open_batch)
    app.router.add_get("/organizer/datasets", datasets_page)
