"""Who may call what, and from where.

Every route declares its roles with `@requires(...)` or `@public`; the middleware refuses a
route that declares nothing, so a new route cannot be open by mistake.

A request proves who it is with `Authorization: Bearer TOKEN` (scripts) or the session cookie
(the browser pages). A browser sends the cookie with whatever request any page makes, so a
state-changing request that does not carry a bearer token must come from Podium's own pages:
`Sec-Fetch-Site: same-origin`, or an `Origin` that is this server's. A request with neither
header is not from a browser (every current browser sends them on such requests), and a
script cannot hold another person's cookie.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from yarl import URL

from server.access import Principal, Role, hash_token
from server.errors import CrossOrigin, InvalidToken, SessionExpired, TokenRequired, WrongRole
from server.keys import CONFIG, POOL, PRINCIPAL
from server.queries import principal_for_token
from server.session import cookie_name
from server.store.sessions import principal_for_session

_POLICY = "__podium_roles__"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Any])


def requires(*roles: Role) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        setattr(handler, _POLICY, frozenset(roles))
        return handler
    return mark


def public(handler: H) -> H:
    setattr(handler, _POLICY, frozenset())
    return handler


def route_policy(route: web.AbstractRoute) -> frozenset[Role] | None:
    """The roles a route needs: empty for public, None when the route declared nothing."""
    if isinstance(route.resource, web.StaticResource):
        return frozenset()
    return getattr(route.handler, _POLICY, None)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def session_id(request: web.Request) -> str | None:
    return request.cookies.get(cookie_name(request.app[CONFIG])) or None


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parsed = URL(url)
    except ValueError:
        return None
    if not parsed.scheme or not parsed.host:
        return None
    return parsed.scheme.lower(), parsed.host.lower(), parsed.port


def own_origins(request: web.Request) -> set[tuple[str, str, int | None]]:
    """This server as the browser addressed it, and as its public address says."""
    found = {_origin(f"{request.scheme}://{request.host}"),
             _origin(request.app[CONFIG].public_url)}
    return {o for o in found if o is not None}


def same_origin(request: web.Request) -> bool:
    """Whether the browser says this request comes from one of Podium's own pages."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # no browser sent this
    return _origin(origin) in own_origins(request)


async def authenticate(request: web.Request, token: str | None, session: str | None
                       ) -> Principal | None:
    async with request.app[POOL].acquire() as conn:
        if token is not None:
            return await principal_for_token(conn, hash_token(token))
        assert session is not None
        return await principal_for_session(conn, session)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    policy = route_policy(route)
    if policy is None and not isinstance(request.match_info.http_exception, web.HTTPException):
        raise RuntimeError(f"route {route.method} {route.resource} declares no access policy")
    if isinstance(route.resource, web.StaticResource):
        return await handler(request)  # no database lookup for a stylesheet
    token = bearer_token(request)
    if token is None and request.method not in SAFE_METHODS and not same_origin(request):
        raise CrossOrigin()
    session = None if token is not None else session_id(request)
    principal = await authenticate(request, token, session) if token or session else None
    if principal is not None:
        request[PRINCIPAL] = principal
    if policy:
        if token is None and session is None:
            raise TokenRequired()
        if principal is None and token is not None:
            raise InvalidToken()
        if principal is None:
            raise SessionExpired()
        if principal.role not in policy:
            raise WrongRole((str(r) for r in policy), str(principal.role))
    return await handler(request)


def principal_of(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)
