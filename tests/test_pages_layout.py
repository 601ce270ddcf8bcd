"""Every page in Chromium at a laptop's 1366×768 and a projector's 1920×1080: nothing drawn
outside the viewport or its box, no page scrolling sideways; and every time a person reads in
the event's zone, on a browser set to another."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import AppServer
from tests.pages import (
    LONG_TEAM,
    SIZES,
    event_with_a_long_name,
    new_page,
    overflowing,
    play_a_morning,
    reveal_every_place,
    script_errors,
)

# (who, path, what to wait for): every page of the site.
PAGES = [
    (None, "/", "table.challenges"),
    (None, "/login", "form.login"),
    (None, "/clock", "[data-clock=edss][data-state=running]"),
    (None, "/board", "[data-slate]"),
    ("jury", "/jury", "[data-board=sarcopenia] tbody tr"),
    ("jury", "/jury/sarcopenia", "[data-analysis=sarcopenia][data-loaded]"),
    ("jury", "/jury/nodules?reveal=1", "#reveal-board"),
    ("jury", "/jury/lungs", "[data-code=unknown_challenge]"),
    ("Lumbar Lab", "/team", "[data-history-of=nodules] tr"),
    (LONG_TEAM, "/team", "[data-history-of=sarcopenia] tr"),
    ("organizer", "/organizer", "#log tr"),
    ("organizer", "/inclusion", "[data-question=nodules-3d] [data-best-of]"),
    ("CHU de Lyon", "/center", "[data-progress-of=nodules-3d]"),
    ("CHU de Lyon", "/center/digest", "[data-digest=progress]"),
]


def paris(iso: str, seconds: bool = True) -> str:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(
        ZoneInfo("Europe/Paris"))
    return moment.strftime("%H:%M:%S" if seconds else "%H:%M")


def minutes_of_day(clock: str) -> int:
    hours, minutes = clock.split(":")[:2]
    return int(hours) * 60 + int(minutes)


# One size per test: the two run side by side on the suite's workers.
@pytest.mark.parametrize("viewport", SIZES, ids=lambda v: f"{v['width']}x{v['height']}")
def test_no_page_overflows_at_laptop_and_projector_sizes(
        example_event: Path, database_url: str, tmp_path: Path, browser: Any,
        viewport: dict[str, int]) -> None:
    event_with_a_long_name(example_event)
    server = AppServer(example_event, tmp_path / "data", database_url).start()
    try:
        play_a_morning(server)
        server.act("sarcopenia", "extend", seconds=600, team="Pixel Anatomy", by="Alice")
        tokens = server.tokens()
        found = {}
        # One browser context per person, signed in once; each page a fresh tab in it.
        contexts: dict[str | None, Any] = {}
        for who, path, ready in PAGES:
            if who not in contexts:
                contexts[who] = new_page(browser, server.url, tokens[who] if who else None,
                                         viewport=viewport).context
            page = contexts[who].new_page()
            errors = script_errors(page)
            page.goto(server.url + path)
            page.wait_for_selector(ready, state="attached", timeout=60000)
            if "reveal" in path:
                reveal_every_place(page)
                page.wait_for_selector("#reveal-analysis[data-loaded]", state="attached")
            problems = overflowing(page) + [f"script error: {e}" for e in errors]
            if problems:
                found[f"{who} {path} at {viewport['width']}×{viewport['height']}"] = problems
            page.close()
        for context in contexts.values():
            context.close()
        assert found == {}, "\n".join(f"{page}: {p}" for page, ps in found.items() for p in ps)
    finally:
        server.stop()


def test_times_are_the_events_on_a_browser_in_another_zone(
        example_event: Path, database_url: str, tmp_path: Path, browser: Any) -> None:
    server = AppServer(example_event, tmp_path / "data", database_url).start()
    try:
        tokens = server.tokens()
        challenge = server.act("nodules", "start", by="Alice")
        good = (Path(__file__).parent.parent / "examples" / "jfr2019" / "submissions" /
                "nodules-nodule-hunters.csv").read_bytes()
        _, receipt = server.upload("nodules", tokens["Nodule Hunters"], "p.csv", good,
                                   "?wait=60")
        received = receipt["received_at"]
        # Five hours behind Paris, whatever the time of year.
        elsewhere = {"timezone_id": "America/Lima"}

        jury = new_page(browser, server.url, tokens["jury"], **elsewhere)
        jury.goto(f"{server.url}/jury/nodules")
        cell = jury.locator("[data-board=nodules] tr[data-team='Nodule Hunters'] td.time")
        cell.wait_for()
        assert cell.inner_text() == paris(received)
        assert "Europe/Paris" in jury.inner_text(".toolbar")  # the zone is named
        jury.wait_for_selector("[data-analysis=nodules][data-loaded]", state="attached",
                               timeout=60000)
        axis = jury.locator(".plot-over-time .x-label").text_content()
        ticks = jury.evaluate("[...document.querySelectorAll('.plot-over-time .axes text')]"
                              ".map(t => t.textContent)")
        assert axis == "Time (Europe/Paris)"
        # Every tick is Paris time from the start on (Lima's would be hours before it); minutes
        # of the day taken round the clock, so a challenge that runs past midnight reads right.
        start = minutes_of_day(paris(challenge["started_at"], False))
        late = [t for t in ticks if ":" in t and (minutes_of_day(t) - start) % 1440 > 240]
        assert [t for t in ticks if ":" in t] and late == [], (ticks, late)
        jury.context.close()

        team = new_page(browser, server.url, tokens["Nodule Hunters"], **elsewhere)
        team.goto(f"{server.url}/team")
        team.wait_for_selector("[data-receipt-of=nodules]:not([hidden])")
        assert f"received {paris(received)} Europe/Paris" in team.inner_text(
            "[data-receipt-of=nodules]")
        assert team.inner_text("[data-history-of=nodules] tr td:nth-child(2)") == \
            paris(received)
        team.context.close()

        console = new_page(browser, server.url, tokens["organizer"], **elsewhere)
        console.goto(f"{server.url}/organizer")
        console.wait_for_selector("#log tr")
        first = console.locator("#log tr").last.locator("td")
        assert first.nth(0).inner_text() == paris(challenge["started_at"])
        assert first.nth(6).inner_text() == paris(challenge["deadline"])
        console.context.close()

        room = new_page(browser, server.url, **elsewhere)
        room.goto(f"{server.url}/clock")
        note = room.locator("[data-deadline-of=nodules]")
        note.wait_for()
        room.wait_for_function(
            "() => document.querySelector('[data-deadline-of=nodules]').textContent !== ''")
        assert note.inner_text() == f"· until {paris(challenge['deadline'])} Europe/Paris"
        room.context.close()
    finally:
        server.stop()
