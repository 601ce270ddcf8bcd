"""The application over HTTP: routes, roles, sessions and the clock in this process; the access
log and a restart against the server as a subprocess."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.access import Role
from server.app import create_app
from server.auth import route_policy
from server.config import Config
from server.countdown import ACTIONS
from server.event import parse_event
from tests.helpers import EXAMPLE_EVENT, AppServer, DatabaseClock, ServerProcess, wait_for

ROOT = Path(__file__).resolve().parent.parent
PATH_VALUES = {"slug": "nodules", "id": "1", "axis": "axial", "index": "0", "name": "batch-1"}


def declared_routes() -> list[tuple[str, str, frozenset[Role]]]:
    app = create_app(Config(event_path=EXAMPLE_EVENT), parse_event(EXAMPLE_EVENT))
    routes = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path") or info.get("prefix")
        assert path, route
        policy = route_policy(route)
        assert policy is not None, f"{route.method} {path} declares no access policy"
        for action in ACTIONS if "{action}" in path else ("",):
            concrete = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)],
                              path.replace("{action}", action))
            routes.append((route.method, concrete, policy))
    return routes


def test_every_route_declares_who_may_call_it() -> None:
    routes = declared_routes()
    assert ("GET", "/api/v1/time", frozenset()) in routes
    assert ("GET", "/api/v1/teams", frozenset({Role.ORGANIZER, Role.JURY})) in routes
    # Registration: the page and the form are public, every decision the organizers'.
    assert {("GET", "/register", frozenset()), ("POST", "/api/v1/registrations", frozenset()),
            ("GET", "/organizer/registrations", frozenset({Role.ORGANIZER}))} <= set(routes)
    for action in ("approve", "reject", "token", "revoke"):
        assert ("POST", f"/api/v1/registrations/1/{action}", frozenset({Role.ORGANIZER})
                ) in routes
    # Batches: a team downloads, an organizer opens; both see the schedule.
    batches = "/api/v1/challenges/nodules/batches"
    assert {("GET", batches, frozenset({Role.TEAM, Role.ORGANIZER})),
            ("GET", f"{batches}/batch-1/archive", frozenset({Role.TEAM})),
            ("POST", f"{batches}/batch-1/open", frozenset({Role.ORGANIZER})),
            ("GET", "/organizer/datasets", frozenset({Role.ORGANIZER}))} <= set(routes)


def test_every_api_route_is_documented() -> None:
    doc = (ROOT / "docs" / "api.md").read_text()
    for method, path, _ in declared_routes():
        if path.startswith("/api/"):
            documented = re.sub(r"/1(?=/|$)", "/{id}",
                                path.replace(PATH_VALUES["slug"], "{slug}")).replace(
                "/axial/0", "/{axis}/{index}").replace("/batch-1", "/{name}")
            assert f"{method} {documented}" in doc, f"{method} {documented} not in docs/api.md"


def test_public_endpoints(server: AppServer) -> None:
    status, body = server.json("GET", "/api/v1/time")
    assert status == 200
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["server_time"])

    status, challenges = server.json("GET", "/api/v1/challenges")
    assert status == 200
    assert [c["slug"] for c in challenges] == ["sarcopenia", "nodules", "edss", "nodules-3d"]
    first = challenges[0]
    assert set(first) == {"slug", "title", "kind", "duration_s", "state", "started_at",
                          "deadline", "remaining_s", "server_time", "release"}
    assert (first["kind"], first["duration_s"], first["state"], first["remaining_s"]) == (
        "segmentation-surface", 3600, "waiting", 3600)

    status, one = server.json("GET", "/api/v1/challenges/nodules")
    assert status == 200
    assert one["duration_s"] == 7200 and one["format"]["files"] == [".csv", ".xlsx"]
    assert one["upload_grace_seconds"] == 30

    status, body = server.json("GET", "/api/v1/challenges/lungs")
    assert status == 404
    assert body["error"]["code"] == "unknown_challenge"
    assert "sarcopenia, nodules, edss" in body["error"]["message"]

    status, body = server.json("GET", "/api/v1/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"

    status, body = server.json("GET", "/healthz")
    assert status == 200 and (body["status"], body["database"]) == ("ok", "ok")
    assert body["loop_lag_ms"] >= 0 and body["connections"]["open"] >= 1

    status, headers, html = server.request("GET", "/")
    assert status == 200 and b"Pulmonary nodules" in html


def test_roles_on_every_route(server: AppServer) -> None:
    tokens = server.tokens()
    by_role = {Role.ORGANIZER: tokens["organizer"], Role.JURY: tokens["jury"],
               Role.TEAM: tokens["Nodule Hunters"], Role.CENTER: tokens["CHU de Lyon"],
               Role.REVIEWER: tokens["Dr Leroy"]}
    checked = 0

    def call(method: str, path: str, token: str | None = None) -> tuple[int, str | None]:
        body = json.dumps({"seconds": 60}).encode() if method == "POST" else None
        status, headers, raw = server.request(method, path, token, body,
                                              {"Content-Type": "application/json"} if body
                                              else {})
        if not headers.get("Content-Type", "").startswith("application/json"):
            return status, None  # pages (HTML), downloads (zip, xlsx, csv)
        parsed = json.loads(raw)
        return status, parsed["error"]["code"] if isinstance(parsed, dict) and \
            "error" in parsed else None

    for method, path, policy in declared_routes():
        if not policy:
            continue
        status, code = call(method, path)
        assert status == 401 and code in ("unauthorized", None), (method, path)
        status, code = call(method, path, "not-a-token-of-this-event")
        assert status == 401 and code in ("invalid_token", None), (method, path)
        for role, token in by_role.items():
            status, code = call(method, path, token)
            if role in policy:
                # Let in: any refusal now is about the domain (e.g. a closed challenge).
                assert status != 401 and code not in ("forbidden",), (path, role, code)
            else:
                assert status == 403 and code in ("forbidden", None), (path, role)
        checked += 1
    assert checked >= 8


def test_a_team_sees_only_itself(server: AppServer) -> None:
    tokens = server.tokens()
    status, me = server.json("GET", "/api/v1/me", token=tokens["Myelin Minds"])
    assert status == 200
    assert me == {"role": "team", "team": "Myelin Minds", "challenges": ["nodules", "edss"]}
    status, _ = server.json("GET", "/api/v1/teams", token=tokens["Myelin Minds"])
    assert status == 403


def test_a_login_link_opens_the_login_page_which_signs_in_by_post(server: AppServer
                                                                   ) -> None:
    import http.cookiejar
    import urllib.parse
    import urllib.request

    tokens = server.tokens()
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{server.url}/login?token={tokens['jury']}") as response:
        # The link alone changes nothing: it shows the page that asks.
        assert response.url.endswith("/login?token=" + tokens["jury"])
        assert b"Sign in as the jury?" in response.read()
    assert not list(jar)
    form = urllib.parse.urlencode({"token": tokens["jury"]}).encode()
    with opener.open(f"{server.url}/login", data=form) as response:
        # Redirected to the jury's page: the token leaves the address bar.
        assert response.url == server.url + "/jury"
        assert b"jury" in response.read()
    cookie = next(iter(jar))
    assert cookie.name == "podium_session" and cookie.value != tokens["jury"]
    with opener.open(f"{server.url}/api/v1/me") as response:
        assert json.loads(response.read()) == {"role": "jury"}
    status, _, html = server.request("GET", "/login?token=wrong-token")
    assert status == 401 and b"not recognised" in html


@pytest.mark.slow  # reads the log a server process writes on stderr
def test_access_log_is_json_without_tokens(server_process: ServerProcess) -> None:
    server = server_process
    tokens = server.tokens()
    server.json("GET", "/api/v1/teams", token=tokens["organizer"])
    server.request("GET", f"/login?token={tokens['organizer']}")

    def teams_lines() -> list[dict[str, object]]:
        records = [json.loads(line) for line in server.stderr().splitlines()
                   if line.startswith("{")]
        return [r for r in records if r["path"] == "/api/v1/teams"]

    teams = wait_for(teams_lines, what="the access log line")
    wait_for(lambda: any(r["path"] == "/login" for r in (
        json.loads(line) for line in server.stderr().splitlines() if line.startswith("{"))),
        what="the login's log line")
    assert teams and teams[-1]["status"] == 200 and teams[-1]["role"] == "organizer"
    assert {"ts", "remote", "method", "path", "status", "bytes", "ms"} <= set(teams[-1])
    assert tokens["organizer"] not in server.stderr()


@pytest.mark.slow  # a server process stopped and started again
def test_restart_on_the_same_data_keeps_everything(server_process: ServerProcess) -> None:
    server = server_process
    tokens = server.tokens()
    _, before = server.json("GET", "/api/v1/challenges")
    assert server.stop() == 0
    server.start()
    assert server.tokens() == tokens
    _, after = server.json("GET", "/api/v1/challenges")
    strip = [{k: v for k, v in c.items() if k != "server_time"} for c in before]
    assert [{k: v for k, v in c.items() if k != "server_time"} for c in after] == strip
    status, _ = server.json("GET", "/api/v1/teams", token=tokens["jury"])
    assert status == 200
    assert "unchanged" in server.stderr().splitlines()[-1] or "unchanged" in server.stderr()


def test_server_time_is_the_databases(server: AppServer, clock: DatabaseClock) -> None:
    moment = clock.freeze(datetime(2019, 10, 14, 9, 30, tzinfo=UTC))
    _, body = server.json("GET", "/api/v1/time")
    assert datetime.fromisoformat(body["server_time"].replace("Z", "+00:00")) == moment
