"""The organizer console in Chromium: only the buttons the state allows are enabled (the
server's own rules), Close names the teams still on extra time and can keep them, an error
stays on its card until the next action or change of state, the queue is shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.helpers import EXAMPLE_DIR, AppServer, DatabaseClock
from tests.pages import LAPTOP, new_page, script_errors

EDSS = (EXAMPLE_DIR / "submissions" / "edss-myelin-minds.csv").read_bytes()
EXTENDS = ["extend:300", "extend:600", "extend:custom", "extend-team"]


ENABLED = """(slug) => [...document.querySelectorAll(
    `.console-card[data-slug=${slug}] button[data-action]`)].filter(b => !b.disabled)
    .map(b => b.dataset.action + (b.dataset.seconds ? ':' + b.dataset.seconds : ''))"""


def enabled(page: Any, slug: str) -> list[str]:
    return list(page.evaluate(ENABLED, slug))


def wait_for_buttons(page: Any, slug: str, expected: list[str]) -> None:
    """Waits until exactly `expected` are enabled on the challenge's card, in page order."""
    page.wait_for_function(f"([slug, expected]) => JSON.stringify(({ENABLED})(slug)) === "
                           "JSON.stringify(expected)", arg=[slug, expected])


def answer(page: Any, choice: str) -> str:
    """Answers the console's confirmation; returns what it asked."""
    page.wait_for_selector("#action-dialog[open]")
    text = page.inner_text("#action-dialog .confirm-text")
    page.click(f"#action-dialog button[data-choice={choice}]")
    page.wait_for_selector("#action-dialog:not([open])", state="attached")
    return text


def test_only_the_actions_the_state_allows_are_enabled(server: AppServer, browser: Any,
                                                       clock: DatabaseClock) -> None:
    clock.freeze()
    page = new_page(browser, server.url, server.tokens()["organizer"], viewport=LAPTOP)
    errors = script_errors(page)
    page.goto(f"{server.url}/organizer")
    card = page.locator(".console-card[data-slug=edss]")
    wait_for_buttons(page, "edss", ["start"])

    card.locator("button[data-action=start]").click()
    assert answer(page, "yes") == "Start “Multiple sclerosis — EDSS at two years from MRI”?"
    wait_for_buttons(page, "edss", ["pause", *EXTENDS[:3], "extend-team", "close"])
    card.locator("button[data-action=pause]").click()
    answer(page, "yes")
    wait_for_buttons(page, "edss", ["resume", *EXTENDS[:3], "extend-team", "close"])
    server.act("edss", "resume")  # from another console: this one follows
    wait_for_buttons(page, "edss", ["pause", *EXTENDS[:3], "extend-team", "close"])
    # The deadline passes: the server closes the challenge and nothing is left to press.
    clock.advance(3700)
    wait_for_buttons(page, "edss", [])
    assert page.inner_text("[data-state-of=edss]") == "closed"
    # The other challenges never moved.
    assert enabled(page, "nodules") == ["start"]
    assert errors == []
    page.context.close()


def test_close_names_the_teams_on_extra_time_and_can_keep_them(server: AppServer,
                                                               browser: Any) -> None:
    tokens = server.tokens()
    server.act("edss", "start")
    server.act("edss", "extend", seconds=600, team="Myelin Minds")
    page = new_page(browser, server.url, tokens["organizer"], viewport=LAPTOP)
    page.goto(f"{server.url}/organizer")
    page.wait_for_selector("[data-extensions-of=edss] li[data-team='Myelin Minds']")
    close = page.locator(".console-card[data-slug=edss] button[data-action=close]")

    close.click()
    asked = answer(page, "cancel")
    assert "Myelin Minds" in asked and "still on extra time" in asked and "until" in asked
    assert server.json("GET", "/api/v1/challenges/edss")[1]["state"] == "running"

    close.click()
    page.wait_for_selector("#action-dialog[open]")
    keep = page.inner_text("#action-dialog button[data-choice=keep]")
    assert keep == "Close, keep Myelin Minds's extra time"
    answer(page, "keep")
    page.wait_for_selector("#log tr:first-child:has-text('closed except Myelin Minds')")
    _, theirs = server.json("GET", "/api/v1/challenges/edss", tokens["Myelin Minds"])
    _, others = server.json("GET", "/api/v1/challenges/edss", tokens["Pixel Anatomy"])
    assert (theirs["state"], others["state"]) == ("running", "closed")
    # Still open for the extended team: Close stays enabled, and now ends its time too.
    close.click()
    answer(page, "all")
    page.wait_for_function(
        "() => document.querySelector('.console-card[data-slug=edss] button[data-action=close]')"
        ".disabled")
    _, theirs = server.json("GET", "/api/v1/challenges/edss", tokens["Myelin Minds"])
    assert theirs["state"] == "closed"
    page.context.close()


def test_an_error_stays_on_its_card_until_the_next_action_and_the_queue_shows(
        example_event: Path, database_url: str, tmp_path: Path, browser: Any) -> None:
    server = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=0).start()
    try:
        tokens = server.tokens()
        page = new_page(browser, server.url, tokens["organizer"], viewport=LAPTOP)
        page.goto(f"{server.url}/organizer")
        card = page.locator(".console-card[data-slug=edss]")
        card.locator("button[data-action=start]").click()
        answer(page, "yes")
        page.wait_for_selector("#log tr:first-child:has-text('start')")

        card.locator("button[data-seconds=custom]").click()
        page.wait_for_selector("#action-dialog[open]")
        page.fill("#action-dialog input[name=minutes]", "2000")  # more than a day
        answer(page, "yes")
        error = page.locator("[data-error-of=edss]")
        error.wait_for()
        assert "at most 86400" in error.inner_text()
        assert page.locator("[data-error-of=nodules]").is_hidden()  # on its own card only
        card.locator("button[data-action=pause]").click()
        answer(page, "yes")
        error.wait_for(state="hidden")  # the next action clears it

        card.locator("button[data-seconds=custom]").click()
        page.fill("#action-dialog input[name=minutes]", "2000")
        answer(page, "yes")
        error.wait_for()
        server.act("edss", "resume")  # the state changed: the refusal is stale
        error.wait_for(state="hidden")

        server.upload("edss", tokens["Myelin Minds"], "p.csv", EDSS)
        page.wait_for_selector("[data-status=queue][data-queued='1']", timeout=60000)
        assert page.inner_text("[data-status=queue]") == "Scoring queue: 1 waiting, 0 being scored"
        assert re.fullmatch(r"Disk: [\d.]+ [MG]iB free of [\d.]+ [MG]iB",
                            page.inner_text("[data-storage]"))
        page.context.close()
    finally:
        server.stop()


def test_the_operators_name_is_asked_at_login_and_kept_with_the_session(
        server: AppServer, browser: Any) -> None:
    organizer = server.tokens()["organizer"]
    # At one console Alice gives her name when she signs in.
    alice = browser.new_context(viewport=LAPTOP)
    page = alice.new_page()
    page.goto(f"{server.url}/login?token={organizer}")
    page.fill("form[data-login-offer] input[name=operator]", "Alice")
    with page.expect_navigation(url=f"{server.url}/organizer"):
        page.click("form[data-login-offer] button[type=submit]")
    assert page.inner_text("[data-operator]") == "Alice"
    assert page.locator("#operator-form").is_hidden()  # asked once: not again here
    page.locator(".console-card[data-slug=edss] button[data-action=start]").click()
    answer(page, "yes")
    page.wait_for_selector("#log tr:first-child:has-text('organizer (Alice)')")

    # At another, Bob gave none: the console asks, once, and the server keeps it.
    bob = new_page(browser, server.url, organizer, viewport=LAPTOP)
    bob.goto(f"{server.url}/organizer")
    assert bob.inner_text("[data-operator]") == "organizer"
    bob.fill("#operator-form input[name=name]", "Bob")
    bob.click("#operator-form button[type=submit]")
    bob.wait_for_selector("#operator-form", state="hidden")
    bob.reload()
    assert bob.inner_text("[data-operator]") == "Bob"
    bob.locator(".console-card[data-slug=edss] button[data-action=pause]").click()
    answer(bob, "yes")
    bob.wait_for_selector("#log tr:first-child:has-text('organizer (Bob)')")
    # Each browser keeps its own person: Alice's console still logs Alice.
    page.reload()
    page.locator(".console-card[data-slug=edss] button[data-action=resume]").click()
    answer(page, "yes")
    page.wait_for_selector("#log tr:first-child:has-text('organizer (Alice)')")
    # A script has no session: it names itself with "by".
    status, body = server.json("POST", "/api/v1/operator", organizer, {"name": "Eve"})
    assert (status, body["error"]["code"]) == (400, "no_session")
    bob.context.close()
    alice.close()
