"""The JSON API under /api/v1 (docs/api.md) and the health check."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg
from aiohttp import web

from server import intake, queries
from server.access import Role
from server.auth import principal_of, public, requires, session_id
from server.challenge import challenges_for, team_challenge, unknown_challenge
from server.countdown import store
from server.dataset import final
from server.errors import BadJson, BadName, MisplacedOption, NoSession, UnknownSubmission
from server.isotime import iso
from server.keys import CONNECTIONS, EVENT, LOOP_MONITOR, POOL
from server.leaderboard import board
from server.release import download
from server.session import operator_name
from server.storage import STORAGE, disk_report
from server.store import challenges as challenge_store
from server.store import submissions as submission_store
from server.store.sessions import operator_of, set_operator
from server.submission import (
    may_see,
    submission_json,
    team_standing,
)


@public
async def get_time(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        now = await queries.database_now(conn)
    # The zone people read times in (pages, receipts, the command line); times stay UTC.
    return web.json_response({"server_time": iso(now), "timezone": request.app[EVENT].timezone})


@public
async def list_challenges(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        _, challenges = await challenges_for(conn, principal_of(request))
    return web.json_response(challenges)


@public
async def get_challenge(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    async with request.app[POOL].acquire() as conn:
        _, found = await challenges_for(conn, principal_of(request), slug=slug, detail=True)
        if not found:
            raise await unknown_challenge(conn, slug)
    return web.json_response(found[0])


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise BadJson() from None
    if not isinstance(body, dict):
        raise BadJson("the body must be a JSON object")
    return body


@requires(Role.ORGANIZER)
async def countdown_action(request: web.Request) -> web.Response:
    slug, action = request.match_info["slug"], request.match_info["action"]
    body = await _json_body(request)
    team_name = body.get("team")
    if team_name is not None and action != "extend":
        raise MisplacedOption("only extend takes a team")
    keep = body.get("keep_extensions", False)
    if not isinstance(keep, bool) or (keep and action != "close"):
        raise MisplacedOption("keep_extensions is true or false, and only close takes it")
    if action == "start":
        spec = next((c for c in request.app[EVENT].challenges if c.slug == slug), None)
        if spec is not None:
            final.check_startable(spec)
    async with request.app[POOL].acquire() as conn:
        # Who acts: the name a script sends, else the one given at the console's login.
        by = operator_name(body.get("by")) or await operator_of(conn, session_id(request))
        actor = f"organizer ({by})" if by else "organizer"
        await store.act(conn, slug, action, actor=actor, seconds=body.get("seconds"),
                        team=None if team_name is None else str(team_name),
                        keep_extensions=keep)
        _, found = await challenges_for(conn, principal_of(request), slug=slug, detail=True)
    return web.json_response(found[0])


@requires(Role.TEAM, Role.JURY, Role.ORGANIZER)
async def get_submission(request: web.Request) -> web.Response:
    principal = principal_of(request)
    try:
        submission_id = int(request.match_info["id"])
    except ValueError:
        raise UnknownSubmission("submission ids are numbers, e.g. /api/v1/submissions/12"
                                ) from None
    async with request.app[POOL].acquire() as conn:
        row = await submission_store.submission(conn, submission_id)
    # A team asking for another team's submission learns nothing, not even that it exists.
    if row is None or not may_see(principal, row):
        raise UnknownSubmission(f"no submission {submission_id} of yours")
    return web.json_response(submission_json(row, principal))


@requires(Role.TEAM, Role.JURY, Role.ORGANIZER)
async def list_submissions(request: web.Request) -> web.Response:
    principal = principal_of(request)
    assert principal is not None
    slug = request.match_info["slug"]
    async with request.app[POOL].acquire() as conn:
        challenge = await challenge_store.challenge(conn, slug)
        if challenge is None:
            raise await unknown_challenge(conn, slug)
        team_id = principal.team_id if principal.role is Role.TEAM else None
        rows = await submission_store.submissions(conn, challenge_id=challenge.id, team_id=team_id)
    return web.json_response([submission_json(r, principal) for r in rows])


@requires(Role.TEAM)
async def standing(request: web.Request) -> web.Response:
    """A team's own standing on a challenge (`team_standing`)."""
    principal = principal_of(request)
    assert principal is not None and principal.team_id is not None
    async with request.app[POOL].acquire() as conn:
        challenge = await team_challenge(conn, request.match_info["slug"], principal.team_id)
        return web.json_response(await team_standing(conn, challenge, principal.team_id))


@public
async def get_leaderboard(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        return web.json_response(await board(conn, request.match_info["slug"],
                                             principal_of(request)))


@requires(Role.ORGANIZER, Role.JURY)
async def counts(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        return web.json_response(await queries.challenge_counts(conn))


@requires(Role.ORGANIZER)
async def set_operator_name(request: web.Request) -> web.Response:
    """`{"name": "Alice"}`: who is at this browser's console, kept with its session so the
    log names a person; a script (Bearer token) sends `by` with each action instead."""
    session = session_id(request)
    if session is None or request.headers.get("Authorization"):
        raise NoSession()
    name = operator_name((await _json_body(request)).get("name"))
    if name is None:
        raise BadName()
    async with request.app[POOL].acquire() as conn:
        await set_operator(conn, session, name)
    return web.json_response({"operator": name})


@requires(Role.ORGANIZER)
async def status(request: web.Request) -> web.Response:
    """What the console watches besides the clocks: the scoring queue and the disk."""
    async with request.app[POOL].acquire() as conn:
        queue = await queries.scoring_queue(conn)
        now = await queries.database_now(conn)
    disk = await disk_report(request.app[STORAGE])
    return web.json_response({"queue": queue, "disk": dataclasses.asdict(disk),
                              "server_time": iso(now)})


@requires(Role.ORGANIZER, Role.JURY)
async def countdown_log(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await store.fetch_log(conn)
    return web.json_response([log_entry_json(r) for r in rows])


def log_entry_json(r: asyncpg.Record) -> dict[str, Any]:
    return {"id": r["id"], "challenge": r["slug"], "action": r["action"],
            "seconds": r["seconds"], "team": r["team"], "actor": r["actor"],
            "state_after": r["state_after"], "deadline_after": iso(r["deadline_after"]),
            "at": iso(r["at"])}


@requires(Role.ORGANIZER, Role.JURY, Role.TEAM)
async def whoami(request: web.Request) -> web.Response:
    principal = principal_of(request)
    assert principal is not None
    body: dict[str, object] = {"role": str(principal.role)}
    if principal.role is Role.TEAM and principal.team_id is not None:
        async with request.app[POOL].acquire() as conn:
            body["team"] = principal.team_name
            body["challenges"] = await queries.team_challenges(conn, principal.team_id)
    return web.json_response(body)


@requires(Role.ORGANIZER, Role.JURY)
async def list_teams(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await queries.fetch_teams(conn)
    return web.json_response([{"name": r["name"], "challenges": list(r["challenges"])}
                              for r in rows])


@public
async def health(request: web.Request) -> web.Response:
    try:
        async with request.app[POOL].acquire(timeout=5) as conn:
            await conn.fetchval("SELECT 1")
    except Exception as exc:  # any failure to reach the database is what this reports
        return web.json_response({"status": "unavailable", "database": str(exc)}, status=503)
    return web.json_response({
        "status": "ok", "database": "ok",
        "loop_lag_ms": round(request.app[LOOP_MONITOR].worst_lag_s() * 1000, 1),
        "connections": request.app[CONNECTIONS].stats()})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", health)
    r.add_get("/api/v1/time", get_time)
    r.add_get("/api/v1/challenges", list_challenges)
    r.add_get("/api/v1/challenges/{slug}", get_challenge)
    r.add_post(r"/api/v1/challenges/{slug}/{action:start|pause|resume|extend|close}",
               countdown_action)
    r.add_post("/api/v1/challenges/{slug}/submissions", intake.upload)
    r.add_get("/api/v1/challenges/{slug}/submissions", list_submissions)
    r.add_get("/api/v1/submissions/{id}", get_submission)
    r.add_get("/api/v1/challenges/{slug}/leaderboard", get_leaderboard)
    r.add_get("/api/v1/challenges/{slug}/standing", standing)
    r.add_get("/api/v1/challenges/{slug}/dataset", download.dataset)
    r.add_get("/api/v1/countdown-log", countdown_log)
    r.add_get("/api/v1/counts", counts)
    r.add_get("/api/v1/status", status)
    r.add_post("/api/v1/operator", set_operator_name)
    r.add_get("/api/v1/me", whoami)
    r.add_get("/api/v1/teams", list_teams)
