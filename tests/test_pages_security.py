"""Attacks through a victim's browser, in real headless Chromium: a page on another port of the
same host (same site, so SameSite=Lax cookies go with its requests) tries to act with the
victim's session, or to sign the victim's browser in as another team. And every page runs
under the strict Content-Security-Policy without a violation, names escaped."""

from __future__ import annotations

import html
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import log_in, sign_in
from tests.helpers import EXAMPLE_DIR, AppServer, Client, add_teams

NODULES = (EXAMPLE_DIR / "submissions" / "nodules-nodule-hunters.csv").read_text()


class AttackerSite:
    """Another web server on 127.0.0.1: serves whatever page the test sets."""

    def __init__(self) -> None:
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                body = site.page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.page = ""
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def attacker() -> Iterator[AttackerSite]:
    site = AttackerSite()
    yield site
    site.close()


def auto_form(action: str, fields: dict[str, str]) -> str:
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    return (f'<form id="f" method="post" action="{html.escape(action)}" '
            f'enctype="application/x-www-form-urlencoded">{inputs}</form>'
            '<script>document.getElementById("f").submit();</script>')


def whoami(page: Any, server: Client) -> Any:
    return page.evaluate("fetch('/api/v1/me').then(r => r.json())") \
        if page.url.startswith(server.url) else None


def test_a_form_on_another_port_cannot_pause_the_organizers_challenge(
        server: Client, browser: Any, attacker: AttackerSite) -> None:
    tokens = server.tokens()
    server.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
    context = browser.new_context()
    page = context.new_page()
    log_in(page, server.url, tokens["organizer"])
    assert page.url == f"{server.url}/organizer"
    attacker.page = auto_form(f"{server.url}/api/v1/challenges/nodules/pause", {"x": "1"})
    with page.expect_navigation(url=f"{server.url}/api/v1/challenges/nodules/pause"):
        page.goto(attacker.url)
    assert '"cross_origin"' in page.content()
    _, challenge = server.json("GET", "/api/v1/challenges/nodules")
    assert challenge["state"] == "running"
    # The organizer's own console still acts.
    page.goto(f"{server.url}/organizer")
    assert page.evaluate("Podium.api('POST', '/api/v1/challenges/nodules/pause')"
                         ".then(c => c.state)") == "paused"
    context.close()


def test_a_no_cors_fetch_on_another_port_cannot_upload_as_the_team(
        server: Client, browser: Any, attacker: AttackerSite) -> None:
    tokens = server.tokens()
    server.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
    context = browser.new_context()
    page = context.new_page()
    log_in(page, server.url, tokens["Nodule Hunters"])
    attacker.page = (
        "<script>"
        "const form = new FormData();"
        f"form.append('file', new Blob([{NODULES!r}]), 'p.csv');"
        f"fetch('{server.url}/api/v1/challenges/nodules/submissions',"
        " {method: 'POST', mode: 'no-cors', credentials: 'include', body: form})"
        ".then(() => { document.title = 'sent'; }, () => { document.title = 'failed'; });"
        "</script>")
    page.goto(attacker.url)
    page.wait_for_function("document.title === 'sent' || document.title === 'failed'")
    _, stored = server.json("GET", "/api/v1/challenges/nodules/submissions", tokens["jury"])
    assert stored == []
    context.close()


def test_a_login_link_from_another_site_does_not_switch_the_team(
        server: Client, browser: Any, attacker: AttackerSite) -> None:
    tokens = server.tokens()
    context = browser.new_context()
    page = context.new_page()
    log_in(page, server.url, tokens["Lumbar Lab"])
    # The attacker links to its own team's login link: the page only asks.
    attacker.page = f'<a id="go" href="{server.url}/login?token={tokens["Pixel Anatomy"]}">go</a>'
    page.goto(attacker.url)
    with page.expect_navigation():
        page.click("#go")
    assert page.url == f"{server.url}/login"  # the token left the address bar
    assert "You are signed in as team Lumbar Lab; switch to team Pixel Anatomy?" in \
        page.inner_text("main")
    assert whoami(page, server)["team"] == "Lumbar Lab"
    # Nor does a form that posts the attacker's token to /login.
    attacker.page = auto_form(f"{server.url}/login", {"token": tokens["Pixel Anatomy"]})
    with page.expect_navigation(url=f"{server.url}/login"):
        page.goto(attacker.url)
    assert 'data-code="cross_origin"' in page.content()
    page.goto(f"{server.url}/team")
    assert whoami(page, server)["team"] == "Lumbar Lab"

    # The person at the keyboard may switch on purpose: the old session is then revoked.
    old = next(c["value"] for c in context.cookies() if c["name"] == "podium_session")
    page.goto(f"{server.url}/login?token={tokens['Pixel Anatomy']}")
    with page.expect_navigation(url=f"{server.url}/team"):
        page.click("form[data-login-offer] button[type=submit]")
    assert whoami(page, server)["team"] == "Pixel Anatomy"
    status, _, _ = server.request("GET", "/api/v1/me", headers={"Cookie":
                                                                f"podium_session={old}"})
    assert status == 401
    # Logging out ends the session in the browser too.
    page.click("header form[action='/logout'] button")
    page.wait_for_url(f"{server.url}/")
    assert page.evaluate("fetch('/api/v1/me').then(r => r.status)") == 401
    context.close()


CSP_LISTENER = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""
EVIL = "<img src=x onerror=window.__pwned=1>"


def test_every_page_runs_under_the_policy_with_names_escaped(
        example_event: Path, database_url: str, tmp_path: Path, browser: Any) -> None:
    add_teams(example_event, [EVIL], ["nodules"])
    server = AppServer(example_event, tmp_path / "data", database_url).start()
    try:
        tokens = server.tokens()
        server.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
        server.upload("nodules", tokens[EVIL], "p.csv", NODULES.encode(), "?wait=60")
        server.upload("nodules", tokens["Lumbar Lab"], "p.csv", NODULES.encode(), "?wait=60")
        visits = [
            (None, "/", "table.challenges tbody tr"),
            (None, "/clock", '[data-clock="nodules"][data-state="running"]'),
            (None, "/login", "form.login"),
            ("organizer", "/organizer", '[data-clock="nodules"][data-state="running"]'),
            ("jury", "/jury", f'[data-board="nodules"] tr[data-team="{EVIL}"]'),
            (None, "/board", '[data-slate="nodules"]'),
            ("jury", "/jury/nodules", '[data-analysis="nodules"][data-loaded]'),
            # The reveal after its first place: the places come from the server as data.
            ("jury", "/jury/nodules?reveal=1", "#reveal-analysis[data-loaded]"),
            (EVIL, "/team", '[data-history-of="nodules"] tr[data-status="scored"]'),
        ]
        for who, path, ready in visits:
            context = browser.new_context()
            page = context.new_page()
            page.add_init_script(CSP_LISTENER)
            messages: list[str] = []
            page.on("console", lambda m, out=messages: out.append(m.text))
            if who is not None:
                sign_in(context, server.url, tokens[who])
            page.goto(f"{server.url}{path}")
            if "reveal" in path:
                page.keyboard.press("Space")
            page.wait_for_selector(ready, state="attached", timeout=60000)
            assert page.evaluate("window.__violations") == [], path
            assert not [m for m in messages if "Content Security Policy" in m], (path, messages)
            assert page.evaluate("window.__pwned") is None, path
            if who == EVIL:
                assert EVIL in page.inner_text("h1")
            context.close()
    finally:
        server.stop()
