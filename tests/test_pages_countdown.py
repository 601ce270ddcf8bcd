"""The organizer console and the clock display in a real headless Chromium."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser import log_in
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

THREE_MINUTES_FAST = "const realNow = Date.now; Date.now = () => realNow() + 180000;"


def test_the_organizer_runs_the_clock_from_the_console(server: ServerProcess,
                                                       browser: Any) -> None:
    tokens = server.tokens()
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept("2") if dialog.type == "prompt"
            else dialog.accept())
    log_in(page, server.url, tokens["organizer"])
    assert page.url == f"{server.url}/organizer"
    page.fill("#actor", "Alice")
    page.dispatch_event("#actor", "change")
    card = page.locator('article[data-slug="sarcopenia"]')
    card.locator('button[data-action="start"]').click()
    page.wait_for_function(
        "() => document.querySelector('[data-clock=sarcopenia]').dataset.state === 'running'")
    page.wait_for_selector("#log tr")
    assert "start" in page.inner_text("#log tr:first-child")
    assert "organizer (Alice)" in page.inner_text("#log tr:first-child")

    card.locator('button[data-action="pause"]').click()
    page.wait_for_function(
        "() => document.querySelector('[data-clock=sarcopenia]').dataset.state === 'paused'")
    card.locator('button[data-seconds="custom"]').click()  # the prompt answers 2 minutes
    page.wait_for_function("() => document.querySelectorAll('#log tr').length === 3")
    text = page.inner_text('[data-clock="sarcopenia"]')
    assert re.fullmatch(r"(1:0[12]|1:00):\d\d", text), text  # 60 min + 2, minus a few seconds

    card.locator("select").select_option("Pixel Anatomy")
    card.locator('button[data-action="extend-team"]').click()
    page.wait_for_function(
        "() => document.querySelector('[data-extensions-of=sarcopenia]').textContent"
        ".includes('Pixel Anatomy')")

    # Starting a running challenge again is refused with the server's message on the page.
    page.evaluate("Podium.api('POST', '/api/v1/challenges/sarcopenia/pause')"
                  ".catch(e => { document.getElementById('action-error').hidden = false;"
                  " document.getElementById('action-error').textContent = e.message; })")
    page.wait_for_selector("#action-error:not([hidden])")
    assert "cannot pause a paused challenge" in page.inner_text("#action-error")
    page.close()


def test_a_laptop_three_minutes_fast_shows_the_servers_remaining_time(
        server: ServerProcess, browser: Any) -> None:
    organizer = server.tokens()["organizer"]
    server.json("POST", "/api/v1/challenges/edss/start", token=organizer, body={})
    _, served = server.json("GET", "/api/v1/challenges/edss")
    page = browser.new_page()
    page.add_init_script(THREE_MINUTES_FAST)
    page.goto(f"{server.url}/clock")
    assert page.evaluate("Date.now() - performance.timeOrigin - performance.now()") > 170000
    page.wait_for_function("() => Math.abs(Podium.offsetMs + 180000) < 2000")
    page.wait_for_timeout(400)  # the display redraws four times a second
    shown = float(page.get_attribute('[data-clock="edss"]', "data-remaining") or "nan")
    assert abs(shown - served["remaining_s"]) < 3
    page.close()


def test_the_clock_turns_red_then_says_time_is_up(example_event: Any, database_url: str,
                                                  tmp_path: Any, browser: Any) -> None:
    from tests.test_countdown_api import set_duration

    set_duration(example_event, "edss", 0.05)
    server = ServerProcess(example_event, tmp_path / "data", database_url).start()
    try:
        page = browser.new_page()
        page.goto(f"{server.url}/clock")
        server.json("POST", "/api/v1/challenges/edss/start",
                    token=server.tokens()["organizer"], body={})
        page.wait_for_function(
            "() => document.querySelector('[data-clock=edss]').classList.contains('late')")
        page.wait_for_function(
            "() => document.querySelector('[data-clock=edss]').textContent === 'Time is up'",
            timeout=10000)
        assert page.inner_text('[data-state-of="edss"]') == "closed"
        page.close()
    finally:
        server.stop()
