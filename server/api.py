"""The JSON API under /api/v1 (SPEC §5) and the health check."""

from __future__ import annotations

from aiohttp import web

from server import queries
from server.access import Role
from server.auth import principal_of, public, requires
from server.challenge import challenge_json, iso
from server.errors import NotFound
from server.keys import POOL


@public
async def get_time(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        now = await queries.database_now(conn)
    return web.json_response({"server_time": iso(now)})


@public
async def list_challenges(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        now = await queries.database_now(conn)
        rows = await queries.fetch_challenges(conn)
    return web.json_response([challenge_json(r, now) for r in rows])


@public
async def get_challenge(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    async with request.app[POOL].acquire() as conn:
        now = await queries.database_now(conn)
        row = await queries.fetch_challenge(conn, slug)
        known = [] if row else [r["slug"] for r in await queries.fetch_challenges(conn)]
    if row is None:
        raise NotFound(f"no challenge {slug!r}; challenges: {', '.join(known)}",
                       code="unknown_challenge")
    return web.json_response(challenge_json(row, now, detail=True))


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
    return web.json_response({"status": "ok", "database": "ok"})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", health)
    r.add_get("/api/v1/time", get_time)
    r.add_get("/api/v1/challenges", list_challenges)
    r.add_get("/api/v1/challenges/{slug}", get_challenge)
    r.add_get("/api/v1/me", whoami)
    r.add_get("/api/v1/teams", list_teams)
