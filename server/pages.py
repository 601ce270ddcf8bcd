"""HTML pages. The browser logs in once with its token link; a cookie carries it afterwards."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import queries
from server.access import hash_token
from server.auth import SESSION_COOKIE, principal_of, public
from server.challenge import challenge_json
from server.errors import Unauthorized
from server.keys import EVENT, POOL, TEMPLATES

SESSION_DAYS = 7


def render(request: web.Request, name: str, **context: Any) -> web.Response:
    template = request.app[TEMPLATES].get_template(name)
    html = template.render(event=request.app[EVENT], principal=principal_of(request), **context)
    return web.Response(text=html, content_type="text/html")


@public
async def index(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        now = await queries.database_now(conn)
        rows = await queries.fetch_challenges(conn)
    return render(request, "index.html", challenges=[challenge_json(r, now) for r in rows])


@public
async def login(request: web.Request) -> web.StreamResponse:
    if request.method == "POST":
        token = str((await request.post()).get("token", "")).strip()
    else:
        token = request.query.get("token", "").strip()
    if not token:
        return render(request, "login.html", error=None)
    async with request.app[POOL].acquire() as conn:
        principal = await queries.principal_for_token(conn, hash_token(token))
    if principal is None:
        raise Unauthorized("this login link or token is not recognised; ask the organizers "
                           "for yours", code="invalid_token")
    # Redirect so the token leaves the address bar and the browser history.
    response = web.HTTPSeeOther("/")
    response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_DAYS * 86400, httponly=True,
                        samesite="Lax", path="/")
    raise response


@public
async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def setup(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_route("GET", "/login", login)
    app.router.add_route("POST", "/login", login)
    app.router.add_post("/logout", logout)
