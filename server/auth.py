"""Who may call what. Every route declares its roles with `@requires(...)` or `@public`; the
middleware refuses a route that declares nothing, so a new route cannot be open by mistake."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from server.access import Principal, Role, hash_token
from server.errors import Forbidden, Unauthorized
from server.keys import POOL, PRINCIPAL
from server.queries import principal_for_token

SESSION_COOKIE = "podium_session"
_POLICY = "__podium_roles__"

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


def request_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(SESSION_COOKIE) or None


async def authenticate(request: web.Request, token: str) -> Principal | None:
    async with request.app[POOL].acquire() as conn:
        return await principal_for_token(conn, hash_token(token))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    policy = route_policy(route)
    if policy is None and not isinstance(request.match_info.http_exception, web.HTTPException):
        raise RuntimeError(f"route {route.method} {route.resource} declares no access policy")
    if isinstance(route.resource, web.StaticResource):
        return await handler(request)  # no database lookup for a stylesheet
    token = request_token(request)
    principal = await authenticate(request, token) if token else None
    if principal is not None:
        request[PRINCIPAL] = principal
    if policy:
        if token is None:
            raise Unauthorized("this needs an access token: send 'Authorization: Bearer TOKEN' "
                               "or log in with your link", code="unauthorized")
        if principal is None:
            raise Unauthorized("this access token is not recognised; check it with the "
                               "organizers (podium tokens)", code="invalid_token")
        if principal.role not in policy:
            allowed = " or ".join(sorted(str(r) for r in policy))
            raise Forbidden(f"this needs the {allowed} role; your token is {principal.role}",
                            code="forbidden")
    return await handler(request)


def principal_of(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)
