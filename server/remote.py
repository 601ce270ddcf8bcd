"""A running Podium server as `podium submit` and `podium watch` reach it (docs/cli.md): its
address and token (settings of their own, from flags or PODIUM_SERVER / PODIUM_TOKEN), the
scheme to use, the certificates to trust, its time zone and its times.

A server may be given without a scheme (`10.0.0.5:8080`): http is assumed, and https taken
instead when the server answers so (a redirect to https, or a TLS port that hangs up on plain
HTTP). Times are printed in the event's time zone, named; the JSON keeps the API's UTC.
"""

from __future__ import annotations

import argparse
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp

from server import settings
from server.command import UsageError
from server.settings import setting

CLIENTS = ("submit", "watch")


@dataclass(frozen=True)
class Remote:
    """The server a command talks to, and the token it shows."""

    server: str | None = setting(None, "the server's address (required), e.g. 10.0.0.5:8080 or "
                                 "https://podium.example", commands=CLIENTS, env="PODIUM_SERVER",
                                 metavar="URL", default_text="none")
    token: str | None = setting(None, "the token: a team's for submit; a jury, organizer or "
                                "team token for watch, which without one shows public boards "
                                "only", commands=CLIENTS, env="PODIUM_TOKEN", metavar="TOKEN",
                                secret=True, default_text="none")

    @classmethod
    def from_arguments(cls, args: argparse.Namespace, command: str) -> Remote:
        return cls(**settings.values(args, cls, command))

    def address(self) -> tuple[str, bool]:
        """`server_address` of the server given; UsageError when none is."""
        return server_address(self.server)


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


def client_session(**kwargs: Any) -> aiohttp.ClientSession:
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
    async with client_session(timeout=PROBE_TIMEOUT) as session:
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
    return zone if isinstance(zone, str) and known_zone(zone) else None


def known_zone(zone: str) -> bool:
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


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def parse_time(moment: str | None) -> float | None:
    """Seconds since the epoch of an API time (ISO 8601, `Z`), or None."""
    if not moment:
        return None
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()

