"""HTML pages. The browser logs in once from the login page; a session cookie carries it
afterwards (server/session.py)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from server import kinds, queries
from server.access import Principal, Role, hash_token
from server.auth import principal_of, public, requires, session_id
from server.challenge import challenges_for, unknown_challenge
from server.deliberation.plots import team_colours
from server.errors import BadLogin, InvalidToken
from server.keys import CONFIG, EVENT, POOL, TEMPLATES
from server.leaderboard import may_view
from server.resources import resource_dir
from server.session import cookie_name, operator_name, served_over_https
from server.storage import STORAGE, disk_report
from server.store import challenges as challenge_store
from server.store import registrations as registration_store
from server.store import submissions as submission_store
from server.store.sessions import (
    SESSION_LIFETIME,
    open_session,
    operator_of,
    revoke_session,
    set_operator,
)
from server.submission import submission_json, team_standing

LOGIN_BODY_BYTES = 4096
LOGIN_BODY_TIMEOUT_S = 10.0
# Where a login lands, by role.
ROLE_HOME = {Role.ORGANIZER: "/organizer", Role.JURY: "/jury", Role.TEAM: "/team",
             Role.CENTER: "/center", Role.REVIEWER: "/review"}
NOT_RECOGNISED = "this login link or token is not recognised; ask the organizers for yours"


def duration(seconds: float) -> str:
    """H:MM:SS or M:SS, rounded up: a clock never shows 0:00 while time is left."""
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def registration_phase(event: Any, now: datetime) -> str | None:
    """`before`, `open` or `closed` for an event that takes registrations, else None."""
    from server.registration import phase_at

    return phase_at(event.registration, now) if event.registration is not None else None


def render(request: web.Request, name: str, **context: Any) -> web.Response:
    template = request.app[TEMPLATES].get_template(name)
    # The shared bar's Register link: pages that read the database's clock pass the phase;
    # the others show the link by the server's own clock (the form is gated by the database's).
    context.setdefault("registration_phase",
                       registration_phase(request.app[EVENT], datetime.now(UTC)))
    html = template.render(event=request.app[EVENT], principal=principal_of(request), **context)
    return web.Response(text=html, content_type="text/html")


async def colours(conn: Any) -> dict[str, str]:
    """Each team's colour, the same on every board and plot (`team_colours`): the teams of
    the event file and those that registered, as the results read them."""
    return team_colours(r["name"] for r in await conn.fetch(
        "SELECT name FROM team WHERE in_event"))


def visible_boards(challenges: list[dict[str, Any]], viewer: Principal | None) -> set[str]:
    """The challenges whose live board `viewer` may see (their `leaderboard` setting)."""
    return {c["slug"] for c in challenges if may_view(c["leaderboard"], viewer)}


@public
async def index(request: web.Request) -> web.Response:
    from server.registration import when

    event = request.app[EVENT]
    async with request.app[POOL].acquire() as conn:
        _, challenges = await challenges_for(conn, principal_of(request), detail=True)
        now = await queries.database_now(conn)
    rules = event.registration
    dates = ({"opens": when(rules.opens, event.timezone),
              "closes": when(rules.closes, event.timezone)} if rules is not None else None)
    return render(request, "index.html", challenges=challenges,
                  public_boards=visible_boards(challenges, None),
                  registration_phase=registration_phase(event, now), registration_dates=dates)


@public
async def clock(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        _, challenges = await challenges_for(conn, principal_of(request))
    return render(request, "clock.html", challenges=challenges)


@requires(Role.ORGANIZER)
async def organizer(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        _, challenges = await challenges_for(conn, principal_of(request))
        counts = await queries.challenge_counts(conn)
        teams = await queries.registered_teams(conn)
        operator = await operator_of(conn, session_id(request))
        waiting = (await registration_store.waiting_count(conn)
                   if request.app[EVENT].registration is not None else 0)
    storage = await disk_report(request.app[STORAGE])
    return render(request, "organizer.html", challenges=challenges, counts=counts,
                  teams={c["slug"]: teams.get(c["slug"], []) for c in challenges},
                  storage=storage, operator=operator, waiting_registrations=waiting)


@requires(Role.TEAM)
async def team(request: web.Request) -> web.Response:
    principal = principal_of(request)
    assert principal is not None and principal.team_id is not None
    async with request.app[POOL].acquire() as conn:
        _, challenges = await challenges_for(conn, principal)
        mine = set(await queries.team_challenges(conn, principal.team_id))
        rows = await submission_store.submissions(conn, team_id=principal.team_id, limit=500)
        shown = [c for c in challenges if c["slug"] in mine]
        standings = {}
        for c in shown:
            challenge = await challenge_store.challenge(conn, c["slug"])
            assert challenge is not None
            standings[c["slug"]] = await team_standing(conn, challenge, principal.team_id)
        details = {c["slug"]: c for c in (await challenges_for(conn, principal, detail=True))[1]}
    return render(request, "team.html", challenges=shown,
                  submissions=[submission_json(r, principal) for r in rows],
                  releases={c["slug"]: c["release"] for c in shown if "release" in c},
                  formats={k: kind.format_json() for k, kind in kinds.all_kinds().items()},
                  standings=standings,
                  boards=visible_boards([details[c["slug"]] for c in shown], principal),
                  feedback={c["slug"]: details[c["slug"]]["team_feedback"] for c in shown})


@requires(Role.JURY, Role.ORGANIZER)
async def jury(request: web.Request) -> web.Response:
    slug = request.match_info.get("slug")
    async with request.app[POOL].acquire() as conn:
        _, challenges = await challenges_for(conn, principal_of(request), slug=slug)
        if slug and not challenges:
            raise await unknown_challenge(conn, slug)
        palette = await colours(conn)
    if slug and request.query.get("reveal") == "1":
        # The reveal page is rendered with the challenge's title only: each place comes from
        # the server when the jury reveals it (jury_api.reveal_step).
        return render(request, "reveal.html", challenge=challenges[0])
    return render(request, "jury.html", challenges=challenges, single=bool(slug),
                  colours=palette)


@public
async def public_board(request: web.Request) -> web.Response:
    """The room's board: each challenge's live board where the event lets this screen see it,
    a "results at the ceremony" slate where it does not. `?challenge=SLUG` shows one."""
    slug = request.query.get("challenge")
    viewer = principal_of(request)
    async with request.app[POOL].acquire() as conn:
        _, challenges = await challenges_for(conn, viewer, slug=slug, detail=True)
        if slug and not challenges:
            raise await unknown_challenge(conn, slug)
        palette = await colours(conn)
    return render(request, "board.html", challenges=challenges, colours=palette,
                  visible=visible_boards(challenges, viewer))


@public
async def favicon(request: web.Request) -> web.FileResponse:
    return web.FileResponse(resource_dir("static") / "favicon.svg",
                            headers={"Content-Type": "image/svg+xml",
                                     "Cache-Control": "max-age=86400"})


def label(principal: Principal) -> str:
    """How a page names who is signed in."""
    if principal.role is Role.TEAM:
        return f"team {principal.team_name}"
    if principal.role is Role.CENTER:
        return f"center {principal.member_name}"
    if principal.role is Role.REVIEWER:
        return f"reviewer {principal.member_name}"
    return "the jury" if principal.role is Role.JURY else "the organizers"


@public
async def login_page(request: web.Request) -> web.StreamResponse:
    """The login page. A link with `?token=` fills it in and asks before anything changes:
    following a link (from any site) never signs a browser in or switches its team."""
    token = request.query.get("token", "").strip()
    offer = None
    if token:
        async with request.app[POOL].acquire() as conn:
            offer = await queries.principal_for_token(conn, hash_token(token))
        if offer is None:
            raise InvalidToken(NOT_RECOGNISED)
    current = principal_of(request)
    response = render(request, "login.html", token=token if offer else "",
                      offer=label(offer) if offer else None,
                      offer_role=str(offer.role) if offer else None,
                      current=label(current) if current else None,
                      home=ROLE_HOME[current.role] if current else None,
                      same=offer is not None and offer == current)
    response.headers["Cache-Control"] = "no-store"  # the page holds the token
    return response


@public
async def login(request: web.Request) -> web.StreamResponse:
    """POST from the login page (the middleware refuses another site's): opens a session."""
    if request.content_length is not None and request.content_length > LOGIN_BODY_BYTES:
        raise BadLogin("a login form is a token and nothing else")
    try:
        async with asyncio.timeout(LOGIN_BODY_TIMEOUT_S):
            form = await request.post()
    except TimeoutError:
        raise BadLogin("the login form took too long to arrive") from None
    token = str(form.get("token", "")).strip()
    if not token:
        raise BadLogin("paste your access token, or open your login link")
    token_hash = hash_token(token)
    async with request.app[POOL].acquire() as conn:
        principal = await queries.principal_for_token(conn, token_hash)
        if principal is None:
            raise InvalidToken(NOT_RECOGNISED)
        old = session_id(request)
        if old:
            await revoke_session(conn, old)
        new = await open_session(conn, token_hash)
        if principal.role is Role.ORGANIZER:
            # Asked once, here: the log names this person from whichever browser they use.
            await set_operator(conn, new, operator_name(form.get("operator")))
    config = request.app[CONFIG]
    response = web.HTTPSeeOther(ROLE_HOME[principal.role])
    response.set_cookie(cookie_name(config), new, max_age=int(SESSION_LIFETIME.total_seconds()),
                        httponly=True, samesite="Lax", path="/",
                        secure=served_over_https(config))
    raise response


@public
async def logout(request: web.Request) -> web.StreamResponse:
    current = session_id(request)
    if current:
        async with request.app[POOL].acquire() as conn:
            await revoke_session(conn, current)
    config = request.app[CONFIG]
    response = web.HTTPSeeOther("/")
    response.del_cookie(cookie_name(config), path="/", secure=served_over_https(config),
                        httponly=True, samesite="Lax")
    raise response


def setup(app: web.Application) -> None:
    app[TEMPLATES].filters["duration"] = duration
    app.router.add_get("/", index)
    app.router.add_get("/clock", clock)
    app.router.add_get("/organizer", organizer)
    app.router.add_get("/team", team)
    app.router.add_get("/jury", jury)
    app.router.add_get("/jury/{slug}", jury)
    app.router.add_get("/board", public_board)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
