"""Registration over HTTP against the application and PostgreSQL: closed and open by the
database's clock, refusals that store nothing, approval that creates the team and shows its
token once, a new token revoking the old, and registered teams surviving a restart and the
event file's reload."""

from __future__ import annotations

import http.client
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server.access import ensure_tokens
from server.errors import EventFileError
from server.event import parse_event
from server.loader import load_event
from server.registration import VISITORS
from tests.browser import log_in
from tests.helpers import EXAMPLE_DIR, AppServer, DatabaseClock, new_database, run
from tests.pages import LAPTOP, PROJECTOR, new_page, script_errors
from tests.test_registration import form, member, with_registration
from tests.test_session import cookie_header, login, me, session_cookie

OPEN = datetime(2019, 9, 10, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def registering(pg_cluster: str, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[AppServer, DatabaseClock]]:
    """The example event taking registrations, served once for this module's tests (each
    uses teams and people of its own); the clock frozen inside the dates."""
    folder = tmp_path_factory.mktemp("registering")
    shutil.copytree(EXAMPLE_DIR, folder / "event", ignore=shutil.ignore_patterns("submissions"))
    event_file = with_registration(folder / "event" / "event.toml")
    with new_database(pg_cluster) as url:
        app = AppServer(event_file, folder / "data", url, scoring_workers=0).start()
        clock = DatabaseClock(url)
        yield app, clock
        app.stop()


@pytest.fixture(autouse=True)
def inside_the_dates(registering: tuple[AppServer, DatabaseClock]) -> None:
    server, clock = registering
    clock.freeze(OPEN)
    limit(server, burst=100)


def people(tag: str, *roles: str) -> list[dict[str, str]]:
    """Members of this test's own (their e-mails at `tag`.example)."""
    chosen = roles or ("radiologist", "data-scientist", "engineer")
    kinds = ["other", "lab", "company"]
    return [member(f"{tag.title()}{i} Person", role, kinds[i % 3],
                   email=f"p{i}@{tag}.example") for i, role in enumerate(chosen)]


def limit(server: AppServer, burst: int, every_s: float = 60.0) -> None:
    """The server's own limiter of public forms, set for this test (one visitor: the test)."""
    limiter = server.app[VISITORS]
    limiter.burst, limiter.every_s = burst, every_s
    limiter._buckets.clear()


def stored(server: AppServer, sql: str, *args: Any) -> Any:
    async def go() -> Any:
        conn = await asyncpg.connect(server.database_url)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()
    return run(go())


def send(server: AppServer, data: Any) -> tuple[int, Any]:
    return server.json("POST", "/api/v1/registrations", body=data)


def chunked(server: AppServer, body: bytes) -> tuple[int, str | None]:
    """The form sent with `Transfer-Encoding: chunked`, 1 KiB a piece, as a script might."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", "/api/v1/registrations",
                     body=(body[i:i + 1024] for i in range(0, len(body), 1024)),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        response = conn.getresponse()
        answer = json.loads(response.read())
        return response.status, answer.get("error", {}).get("code")
    finally:
        conn.close()


def error(answer: tuple[int, Any]) -> tuple[int, str, str | None]:
    status, body = answer
    return status, body["error"]["code"], body["error"].get("field")


def test_registration_opens_and_closes_by_the_database_clock(
        registering: tuple[AppServer, DatabaseClock]) -> None:
    server, clock = registering
    before = stored(server, "SELECT count(*) FROM team_application")
    clock.freeze(datetime(2019, 9, 1, 6, 59, 59, tzinfo=UTC))
    status, body = send(server, form(team="Early", members=people("early")))
    assert status == 403 and body["error"]["code"] == "registration_closed"
    assert "opens on 2019-09-01 09:00 Europe/Paris" in body["error"]["message"]
    _, _, page = server.request("GET", "/register")
    assert b'data-phase="before"' in page and b'id="register-form"' not in page
    clock.freeze(datetime(2019, 9, 30, 16, tzinfo=UTC))  # 18:00 in Paris: closed
    assert error(send(server, form(team="Late", members=people("late"))))[:2] == (
        403, "registration_closed")
    assert stored(server, "SELECT count(*) FROM team_application") == before
    clock.freeze(OPEN)
    status, _, page = server.request("GET", "/register")
    assert status == 200 and b'data-phase="open"' in page
    # The questions with their criteria, the event's page, the charter and its version.
    assert b"Sarcopenia" in page and b"slice thickness" in page
    assert b"clinical: age</dt><dd>type number, min 18, max 100" in page
    assert b"<h2>About the challenge</h2>" in page and b"re-identification" in page
    assert b'name="charter_version" value="2019-1"' in page


def test_refusals_name_the_field_and_store_nothing(
        registering: tuple[AppServer, DatabaseClock]) -> None:
    server, _ = registering
    count = "SELECT count(*) FROM team_application WHERE team_name LIKE 'Ref %'"
    assert send(server, form(team="Ref One", members=people("ref")))[0] == 201
    # The same person (another case) in another team for the same question.
    other = form(team="Ref Two", members=people("reftwo"))
    other["members"][2]["email"] = "P2@REF.example"
    assert error(send(server, other)) == (409, "already_in_team", "members[2].email")
    # ... for another question, they may.
    assert send(server, other | {"challenges": ["edss"]})[0] == 201
    fresh = people("refthree")
    assert error(send(server, form(team="ref one", members=fresh))) == (
        409, "team_name_taken", "team")
    assert error(send(server, form(team="Nodule Hunters", members=fresh)))[1] == \
        "team_name_taken"  # a team of the event file
    assert error(send(server, form(team="Ref Duo", members=fresh[:2]))) == (
        422, "registration_invalid", "members")
    assert error(send(server, form(team="Ref Old", members=fresh, charter_version="2018"))) == (
        409, "charter_outdated", "charter_version")
    status, _, raw = server.request("POST", "/api/v1/registrations", None, b"{" * 40_000,
                                    {"Content-Type": "application/json"})
    assert status == 413 and json.loads(raw)["error"]["code"] == "form_too_large"
    # Sent in pieces without a length, it is counted as it arrives: a valid one is taken...
    assert chunked(server, json.dumps(form(team="Ref Pieces", members=people("refpieces"))
                                      ).encode())[0] == 201
    # ... and one that grows past the limit is refused all the same.
    assert chunked(server, b" " * 40_000 + b"{}") == (413, "form_too_large")
    assert error(send(server, [1]))[1] == "registration_invalid"
    # Another site's page cannot post the form in a visitor's name.
    status, _, _ = server.request("POST", "/api/v1/registrations", None,
                                  json.dumps(form(team="Ref Evil", members=fresh)).encode(),
                                  {"Content-Type": "application/json",
                                   "Origin": "https://evil.example"})
    assert status == 403
    assert stored(server, count) == 3
    assert stored(server, "SELECT count(*) FROM team_application_seat WHERE email LIKE "
                          "'%@ref%.example'") == 9
    # A visitor sending form after form is slowed down.
    limit(server, burst=1)
    assert send(server, form(team="Ref Flood", members=fresh))[0] == 201
    assert error(send(server, form(team="Ref Flood 2", members=people("flood"))))[:2] == (
        429, "rate_limited")


def test_approval_issues_the_token_once_and_a_new_one_revokes_it(
        registering: tuple[AppServer, DatabaseClock]) -> None:
    server, _ = registering
    organizer = server.tokens()["organizer"]
    mine = people("approve")
    _, first = send(server, form(team="Lyon Vision", members=mine))
    shared = people("paris")
    shared[1] = mine[1]  # the same person, for another question
    _, second = send(server, form(team="Paris Pixels", challenges=["edss"], members=shared))
    status, listed = server.json("GET", "/api/v1/registrations", organizer)
    assert status == 200
    ours = {a["team"]: a for a in listed}
    assert (ours["Lyon Vision"]["state"], ours["Paris Pixels"]["state"]) == ("waiting",
                                                                            "waiting")
    assert [a["state"] for a in listed].index("waiting") == 0  # the waiting ones first
    assert ours["Lyon Vision"]["members"][0] == mine[0]
    assert ours["Lyon Vision"]["charter_version"] == "2019-1"
    assert ours["Lyon Vision"]["charter_accepted_at"] == "2019-09-10T12:00:00.000Z"
    assert stored(server, "SELECT charter_text FROM team_application WHERE id = $1",
                  first["id"]).startswith("# Ethical charter")
    assert server.json("GET", "/api/v1/registrations", server.tokens()["Nodule Hunters"]
                       )[0] == 403

    status, approved = server.json("POST", f"/api/v1/registrations/{first['id']}/approve",
                                   organizer)
    assert status == 200 and approved["state"] == "approved" and approved["token_active"]
    token = approved["token"]
    assert server.json("GET", "/api/v1/me", token) == (200, {
        "role": "team", "team": "Lyon Vision", "challenges": ["nodules"]})
    # Shown once: the list never carries it, the database keeps its hash only.
    _, listed = server.json("GET", "/api/v1/registrations", organizer)
    assert token not in json.dumps(listed) and all("token" not in a for a in listed)
    assert error(server.json("POST", f"/api/v1/registrations/{first['id']}/approve",
                             organizer))[:2] == (409, "registration_decided")
    status, headers, _ = login(server, token)
    cookie = cookie_header(session_cookie(headers)[1])
    assert me(server, cookie)[0] == 200

    _, again = server.json("POST", f"/api/v1/registrations/{first['id']}/token", organizer)
    assert again["token"] != token
    assert server.json("GET", "/api/v1/me", token)[0] == 401
    assert me(server, cookie)[0] == 401  # its browser sessions end with it
    assert server.json("GET", "/api/v1/me", again["token"])[0] == 200
    _, revoked = server.json("POST", f"/api/v1/registrations/{first['id']}/revoke", organizer)
    assert not revoked["token_active"]
    assert server.json("GET", "/api/v1/me", again["token"])[0] == 401

    # A rejection frees the name and the seats.
    _, rejected = server.json("POST", f"/api/v1/registrations/{second['id']}/reject",
                              organizer, {"reason": "the charter was not signed"})
    assert (rejected["state"], rejected["reason"]) == ("rejected", "the charter was not signed")
    assert error(server.json("POST", f"/api/v1/registrations/{second['id']}/token",
                             organizer))[:2] == (409, "registration_decided")
    assert send(server, form(team="Paris Pixels", challenges=["edss"], members=shared))[0] == 201
    assert error(server.json("POST", "/api/v1/registrations/999999/approve", organizer)
                 )[:2] == (404, "unknown_registration")


def test_a_registered_team_survives_a_restart_and_the_event_files_reload(
        registering: tuple[AppServer, DatabaseClock]) -> None:
    server, _ = registering
    organizer = server.tokens()["organizer"]
    _, first = send(server, form(team="Restart Rangers", members=people("restart")))
    _, approved = server.json("POST", f"/api/v1/registrations/{first['id']}/approve",
                              organizer)
    token = approved["token"]
    server.stop()
    server.start()
    assert server.json("GET", "/api/v1/me", token) == (200, {
        "role": "team", "team": "Restart Rangers", "challenges": ["nodules"]})
    _, teams = server.json("GET", "/api/v1/teams", organizer)
    assert "Restart Rangers" in json.dumps(teams)
    # An event-file team may not take a registered team's name: the load is refused whole.
    text = server.event.read_text()
    renamed = server.event.with_name("renamed.toml")
    renamed.write_text(text.replace('name = "Nodule Hunters"', 'name = "RESTART RANGERS"', 1))
    event = parse_event(renamed)

    async def reload() -> None:
        conn = await asyncpg.connect(server.database_url)
        try:
            await load_event(conn, event, ensure_tokens(event, server.data_dir))
        finally:
            await conn.close()
    with pytest.raises(EventFileError, match="is the name of a team that registered") as caught:
        run(reload())
    assert caught.value.key == "teams[1].name"
    # Reloading the event file as it is keeps the registered team, its question and token.
    event = parse_event(server.event)
    run(reload())
    assert server.json("GET", "/api/v1/me", token) == (200, {
        "role": "team", "team": "Restart Rangers", "challenges": ["nodules"]})


def _shoot(page: Any, name: str) -> None:
    """With PODIUM_SCREENS=docs/screens, the page at the projector's and a laptop's size."""
    folder = os.environ.get("PODIUM_SCREENS")
    if not folder:
        return
    for size, suffix in ((PROJECTOR, "1920"), (LAPTOP, "1366")):
        page.set_viewport_size(size)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(Path(folder) / f"{name}-{suffix}.png"))
    page.set_viewport_size(LAPTOP)


def test_a_team_registers_an_organizer_approves_and_the_token_shown_once_signs_in(
        registering: tuple[AppServer, DatabaseClock], browser: Any) -> None:
    server, _ = registering
    visitor = new_page(browser, server.url, viewport=LAPTOP)
    errors = script_errors(visitor)
    visitor.goto(f"{server.url}/register")
    assert visitor.locator(".register-member").count() == 3  # min_members rows to fill
    visitor.fill("input[name=team]", "Browser Bunch")
    for index, person in enumerate(people("browser")):
        row = visitor.locator(".register-member").nth(index)
        for key in ("name", "email", "affiliation"):
            row.locator(f"[data-key={key}]").fill(person[key])
        row.locator("[data-key=role]").select_option(person["role"])
        row.locator("[data-key=kind]").select_option(person["kind"])
    visitor.check("input[name=challenges][value=nodules]")
    _shoot(visitor, "register")
    # Sent without the charter: the server's refusal is shown and its field marked.
    visitor.click("#register-form button[type=submit]")
    alert = visitor.locator("[data-register-error]")
    alert.wait_for()
    assert alert.inner_text() == "the charter must be read and accepted"
    assert visitor.locator("[data-field=charter].invalid").count() == 1
    visitor.check("input[name=charter_accepted]")
    visitor.click("#register-form button[type=submit]")
    visitor.locator("[data-register-done]").wait_for()
    assert visitor.inner_text("[data-done-team]") == "Browser Bunch"

    # The organizer signs in by the login form's POST (the team below, by its page).
    organizer = new_page(browser, server.url, viewport=LAPTOP)
    signed_in = organizer.context.request.post(
        f"{server.url}/login", form={"token": server.tokens()["organizer"]}, max_redirects=0)
    assert signed_in.status == 303
    organizer.on("dialog", lambda dialog: dialog.accept())
    organizer.goto(f"{server.url}/organizer/registrations")
    row = organizer.locator("tr", has_text="Browser Bunch")
    assert "waiting" in row.locator(".state").inner_text()
    assert "Browser0 Person <p0@browser.example>, radiologist" in row.inner_text()
    _shoot(organizer, "registrations")
    row.locator("button[data-action=approve]").click()
    organizer.locator("[data-token-box]:not([hidden])").wait_for()
    token = organizer.inner_text("[data-token-value]")
    assert "approved" in row.locator(".state").inner_text()
    # Shown once: a reload of the console no longer has it.
    organizer.reload()
    assert token not in organizer.content()

    team = new_page(browser, server.url, viewport=LAPTOP)
    log_in(team, server.url, token)      # the login link, as the team opens it
    assert team.url == f"{server.url}/team"
    assert "Browser Bunch" in team.inner_text(".who-name")
    assert errors == []
