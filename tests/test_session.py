"""Cookie sessions over HTTP: what the cookie holds, logout, the origin rule for cookie-borne
changes, and the security headers on every response. (In a real browser: test_pages_security.)"""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.parse
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server.app import SECURITY_HEADERS
from tests.helpers import AppServer, Client, DatabaseClock, run


def raw(server: Client, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def login(server: Client, token: str, headers: dict[str, str] | None = None
          ) -> tuple[int, http.client.HTTPMessage, bytes]:
    form = urllib.parse.urlencode({"token": token}).encode()
    return raw(server, "POST", "/login", form,
               {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})


def session_cookie(headers: http.client.HTTPMessage) -> tuple[str, str]:
    set_cookie = headers["Set-Cookie"]
    assert set_cookie, headers
    name, _, rest = set_cookie.partition("=")
    return name, rest.split(";", 1)[0]


def cookie_header(value: str, name: str = "podium_session") -> dict[str, str]:
    return {"Cookie": f"{name}={value}"}


def me(server: Client, headers: dict[str, str]) -> tuple[int, Any]:
    status, _, body = raw(server, "GET", "/api/v1/me", headers=headers)
    return status, json.loads(body)


def stored_sessions(database_url: str) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch("SELECT id_hash, token_hash, revoked_at, expires_at "
                                    "FROM browser_session ORDER BY created_at")
        finally:
            await conn.close()
    return run(go())


def test_the_cookie_holds_a_random_session_id_stored_hashed_and_revoked_at_logout(
        server: Client, database_url: str) -> None:
    token = server.tokens()["Lumbar Lab"]
    status, headers, _ = login(server, token, {"Origin": server.url})
    assert status == 303 and headers["Location"] == "/team"
    name, value = session_cookie(headers)
    assert name == "podium_session" and token not in headers["Set-Cookie"]
    assert "HttpOnly" in headers["Set-Cookie"] and "Secure" not in headers["Set-Cookie"]
    (row,) = stored_sessions(database_url)
    assert bytes(row["id_hash"]) == hashlib.sha256(value.encode()).digest()
    assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
    assert row["revoked_at"] is None
    assert me(server, cookie_header(value)) == (200, {"role": "team", "team": "Lumbar Lab",
                                                      "challenges": ["sarcopenia", "nodules"]})

    status, headers, _ = raw(server, "POST", "/logout",
                             headers={**cookie_header(value), "Origin": server.url})
    assert status == 303 and "podium_session=" in headers["Set-Cookie"]
    (row,) = stored_sessions(database_url)
    assert row["revoked_at"] is not None
    status, body = me(server, cookie_header(value))  # a copy of the old cookie is worth nothing
    assert (status, body["error"]["code"]) == (401, "session_expired")

    # Logging in again replaces a session: the one the browser had is revoked.
    first = session_cookie(login(server, token)[1])[1]
    second = session_cookie(login(server, server.tokens()["Pixel Anatomy"],
                                  cookie_header(first))[1])[1]
    assert me(server, cookie_header(first))[0] == 401
    assert me(server, cookie_header(second))[1]["team"] == "Pixel Anatomy"


def test_a_session_ends_after_its_lifetime_by_the_databases_clock(
        server: Client, clock: DatabaseClock) -> None:
    from server.store.sessions import SESSION_LIFETIME

    clock.freeze()
    value = session_cookie(login(server, server.tokens()["jury"])[1])[1]
    clock.advance(SESSION_LIFETIME.total_seconds() - 1)
    assert me(server, cookie_header(value))[1]["role"] == "jury"
    clock.advance(2)
    status, body = me(server, cookie_header(value))
    assert (status, body["error"]["code"]) == (401, "session_expired")


@pytest.mark.parametrize("foreign", [
    {"Origin": "http://127.0.0.1:1"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"},
    {"Sec-Fetch-Site": "cross-site"},
], ids=["other-port", "null-origin", "same-site", "cross-site"])
def test_a_change_riding_the_cookie_from_another_origin_is_refused(
        server: Client, foreign: dict[str, str]) -> None:
    tokens = server.tokens()
    organizer = session_cookie(login(server, tokens["organizer"])[1])[1]
    start = "/api/v1/challenges/nodules/start"
    status, _, body = raw(server, "POST", start, b"{}",
                          {**cookie_header(organizer), "Content-Type": "application/json",
                           **foreign})
    assert (status, json.loads(body)["error"]["code"]) == (403, "cross_origin")
    _, challenge = server.json("GET", "/api/v1/challenges/nodules")
    assert challenge["state"] == "waiting"
    # Logging in (or out) from another site is refused the same way.
    status, headers, body = login(server, tokens["Lumbar Lab"], foreign)
    assert status == 403 and b'data-code="cross_origin"' in body
    assert "Set-Cookie" not in headers
    assert me(server, cookie_header(organizer)) == (200, {"role": "organizer"})


def test_own_pages_and_bearer_tokens_are_unchanged(server: Client) -> None:
    tokens = server.tokens()
    organizer = session_cookie(login(server, tokens["organizer"])[1])[1]
    json_body = {"Content-Type": "application/json"}
    status, _, _ = raw(server, "POST", "/api/v1/challenges/nodules/start", b"{}",
                       {**cookie_header(organizer), **json_body, "Origin": server.url,
                        "Sec-Fetch-Site": "same-origin"})
    assert status == 200
    # A script with a bearer token is not a browser riding a cookie: no origin rule.
    status, _, _ = raw(server, "POST", "/api/v1/challenges/nodules/pause", b"{}",
                       {"Authorization": f"Bearer {tokens['organizer']}", **json_body,
                        "Origin": "http://elsewhere.example"})
    assert status == 200


def test_over_https_the_cookie_is_secure_with_the_host_prefix(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    base = "https://podium.example.org"
    server = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=0,
                       config_overrides={"base_url": base}).start()
    try:
        status, headers, _ = login(server, server.tokens()["jury"], {"Origin": base})
        assert status == 303
        cookie = headers["Set-Cookie"]
        assert cookie.startswith("__Host-podium_session=")
        assert {"Secure", "HttpOnly", "Path=/", "SameSite=Lax"} <= {
            p.strip() for p in cookie.split(";")}
        assert "Domain" not in cookie
        value = session_cookie(headers)[1]
        assert me(server, cookie_header(value, "__Host-podium_session")) == (
            200, {"role": "jury"})
        assert me(server, cookie_header(value))[0] == 401  # the plain name means nothing here
    finally:
        server.stop()


def test_every_response_carries_the_security_headers(server: Client) -> None:
    tokens = server.tokens()
    cookies = {role: cookie_header(session_cookie(login(server, tokens[name])[1])[1])
               for role, name in [("organizer", "organizer"), ("jury", "jury"),
                                  ("team", "Myelin Minds")]}
    pages = [("/", None), ("/clock", None), ("/board", None), ("/login", None),
             (f"/login?token={tokens['jury']}", None), ("/organizer", "organizer"),
             ("/jury", "jury"), ("/jury/nodules", "jury"), ("/team", "team"),
             ("/static/podium.js", None), ("/static/podium.css", None), ("/api/v1/time", None),
             ("/api/v1/challenges", None), ("/healthz", None), ("/no-such-page", None),
             ("/organizer", None)]
    for path, role in pages:
        status, headers, body = raw(server, "GET", path, headers=cookies[role] if role else {})
        assert status in (200, 401, 404), (path, status)
        for name, value in SECURITY_HEADERS.items():
            assert headers[name] == value, (path, name, headers[name])
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        if headers.get_content_type() == "text/html":
            assert b"<script>" not in body and b" onclick=" not in body, path
    assert SECURITY_HEADERS["X-Frame-Options"] == "DENY"
    assert SECURITY_HEADERS["Referrer-Policy"] == "no-referrer"
    assert SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"


def test_a_login_body_is_bounded(server: Client) -> None:
    status, _, body = raw(server, "POST", "/login", b"token=" + b"x" * 10_000,
                          {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and b'data-code="bad_login"' in body


def test_a_websocket_from_another_origin_is_refused(server: Client) -> None:
    jury = session_cookie(login(server, server.tokens()["jury"])[1])[1]
    handshake = {"Upgrade": "websocket", "Connection": "Upgrade",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
                 **cookie_header(jury)}
    status, _, body = raw(server, "GET", "/ws", headers={**handshake,
                                                         "Origin": "http://127.0.0.1:1"})
    assert (status, json.loads(body)["error"]["code"]) == (403, "bad_origin")
    status, _, _ = raw(server, "GET", "/ws", headers={**handshake, "Origin": server.url})
    assert status == 101
