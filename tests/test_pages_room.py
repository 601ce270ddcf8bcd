"""The room's screens in Chromium at projector sizes: /clock in the largest digits that fit,
/board showing what the event allows (a slate otherwise), every text of the boards and plots
at 18 px or more at 1080p, and each team in one colour on every board and plot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from server.deliberation.plots import team_colours
from server.event import parse_event
from tests.helpers import EXAMPLE_DIR, AppServer, set_challenge_keys
from tests.pages import (
    PROJECTOR,
    event_with_a_long_name,
    new_page,
    overflowing,
    play_a_morning,
    reveal_every_place,
    rgb,
    script_errors,
    too_small,
)

EDSS = (EXAMPLE_DIR / "submissions" / "edss-myelin-minds.csv").read_bytes()


def test_the_clock_shows_every_challenge_in_the_largest_digits_that_fit(
        server: AppServer, browser: Any) -> None:
    server.act("edss", "start")
    server.act("nodules", "start")
    server.act("nodules", "close")
    for viewport in (PROJECTOR, {"width": 1280, "height": 720}):
        page = new_page(browser, server.url, viewport=viewport)
        errors = script_errors(page)
        page.goto(f"{server.url}/clock")
        page.wait_for_function(
            "() => document.querySelector('[data-clock=nodules]').textContent === 'Time is up'")
        page.wait_for_function(
            "() => document.querySelector('[data-clock=edss]').dataset.state === 'running'")
        assert page.locator(".bar").count() == 0  # full screen: no page header
        cards = page.locator(".clock-card")
        assert cards.count() == 3  # every challenge
        for slug in ("sarcopenia", "nodules", "edss"):
            box, text, size = page.evaluate(
                """(slug) => {
                  const box = document.querySelector(`[data-clock=${slug}]`);
                  const text = box.querySelector('.digits');
                  const b = box.getBoundingClientRect(), t = text.getBoundingClientRect();
                  return [[b.width, b.height], [t.width, t.height],
                          parseFloat(getComputedStyle(box).fontSize)];
                }""", slug)
            # On one line, inside its box, and as large as the box allows in one direction.
            assert text[1] < 1.6 * size, (slug, text, size)
            assert text[0] <= box[0] + 1 and text[1] <= box[1] + 1, (slug, text, box)
            assert text[0] >= 0.85 * box[0] or text[1] >= 0.75 * box[1], (slug, text, box)
            assert size >= viewport["height"] / 3 * 0.4, (slug, size)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert sum(map(int, re.findall(r"\d+", background)[:3])) < 60  # dark
        assert overflowing(page) == []
        assert errors == []
        page.context.close()


def test_the_room_board_shows_what_the_event_allows_and_links_teams_to_theirs(
        server: AppServer, browser: Any) -> None:
    tokens = server.tokens()
    server.act("edss", "start")
    status, body = server.upload("edss", tokens["Myelin Minds"], "p.csv", EDSS, "?wait=60")
    assert status == 202 and body["status"] == "scored"

    room = new_page(browser, server.url)
    room.goto(f"{server.url}/board")
    # The example's boards are for the jury (sarcopenia, nodules) and the teams (edss): an
    # anonymous room screen shows the slate for each, and never speaks to "you".
    assert room.locator("[data-slate]").count() == 3
    assert room.locator("[data-board]").count() == 0
    assert room.inner_text("[data-slate=edss]").startswith("Results at the ceremony")
    assert not re.search(r"\byou\b|\byour\b", room.inner_text("body"), re.IGNORECASE)
    room.context.close()

    team = new_page(browser, server.url, tokens["Myelin Minds"])
    team.goto(f"{server.url}/team")
    links = team.locator(".team-card a[href^='/board']")
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
        "/board?challenge=edss"]  # nodules' board is the jury's: no link
    links.first.click()
    team.wait_for_selector("[data-board=edss] tr[data-team='Myelin Minds']")
    assert team.locator(".panel").count() == 1
    team.context.close()


def test_room_text_is_projector_sized_and_a_team_keeps_its_colour_everywhere(
        example_event: Path, database_url: str, tmp_path: Path, browser: Any) -> None:
    event_with_a_long_name(example_event)
    set_challenge_keys(example_event, "edss", leaderboard="public")
    colours = team_colours(t.name for t in parse_event(example_event).teams)
    server = AppServer(example_event, tmp_path / "data", database_url).start()
    try:
        play_a_morning(server)
        page = new_page(browser, server.url, server.tokens()["jury"])
        errors = script_errors(page)

        def board_colours() -> dict[str, str]:
            return dict(page.evaluate(
                "[...document.querySelectorAll('[data-board] tr[data-team]')].map(tr => "
                "[tr.dataset.team, getComputedStyle(tr.querySelector('.swatch'))"
                ".backgroundColor])"))

        def plot_colours() -> list[tuple[str, str, str]]:
            return [tuple(x) for x in page.evaluate(
                "[...document.querySelectorAll('svg g.series[data-team]')].flatMap(g => "
                "[...g.querySelectorAll('circle, polyline')].map(e => [g.dataset.team, "
                "e.closest('svg').getAttribute('aria-label'), e.tagName === 'polyline' ? "
                "e.getAttribute('stroke') : e.getAttribute('fill')]))")]

        page.goto(f"{server.url}/jury")
        page.wait_for_selector("[data-board=sarcopenia] tbody tr")
        assert too_small(page) == []
        seen = board_colours()
        assert seen and all(seen[team] == rgb(colours[team]) for team in seen)

        for slug in ("sarcopenia", "nodules", "edss"):
            page.goto(f"{server.url}/jury/{slug}")
            page.wait_for_selector(f"[data-analysis={slug}][data-loaded]", state="attached",
                                   timeout=60000)
            # Board and plot text, as drawn at 1920×1080.
            assert too_small(page) == [], slug
            assert too_small(page, ".plots svg") == [] and page.locator(".plots svg").count()
            assert all(seen == rgb(colours[team]) for team, seen in board_colours().items())
            drawn = plot_colours()
            ranked = set(page.evaluate(
                "[...document.querySelectorAll('[data-board] tr[data-team]:not(.no-valid)')]"
                ".map(tr => tr.dataset.team)"))
            assert len(ranked) == 3 and {team for team, _, _ in drawn} == ranked
            # The ranking analysis: the rank distributions for every board, the schemes side
            # by side and the significance map where per-exam values exist.
            assert page.locator(".plots svg.plot-rank-distribution").count() == 1
            if slug != "nodules":
                current = page.locator(".schemes-table th.current").inner_text()
                assert "this challenge" in current
                assert set(page.evaluate(
                    "[...document.querySelectorAll('.schemes-table tbody tr')]"
                    ".map(tr => tr.dataset.team)")) == ranked
                assert page.locator(".plots svg.plot-significance").count() == 1
            for team, plot, colour in drawn:
                assert colour.lower() == colours[team].lower(), (slug, plot, team, colour)
            # Legends never leave their picture.
            assert page.evaluate(
                "[...document.querySelectorAll('.plots svg .legend text')].every(t => {"
                " const s = t.closest('svg').getBoundingClientRect();"
                " const r = t.getBoundingClientRect();"
                " return r.left >= s.left - 0.5 && r.right <= s.right + 0.5; })")

        page.goto(f"{server.url}/jury/nodules?reveal=1")
        reveal_every_place(page)
        assert too_small(page) == []
        revealed = dict(page.evaluate(
            "[...document.querySelectorAll('#reveal-board tr[data-team]')].map(tr => "
            "[tr.dataset.team, getComputedStyle(tr.querySelector('.swatch')).backgroundColor])"))
        assert len(revealed) == 3 and all(c == rgb(colours[t]) for t, c in revealed.items())
        assert all(c.lower() == colours[t].lower() for t, _, c in plot_colours())
        page.context.close()

        room = new_page(browser, server.url)
        room.goto(f"{server.url}/board")
        room.wait_for_selector("[data-board=edss] tbody tr")
        assert too_small(room) == []
        shown = dict(room.evaluate(
            "[...document.querySelectorAll('[data-board] tr[data-team]')].map(tr => "
            "[tr.dataset.team, getComputedStyle(tr.querySelector('.swatch')).backgroundColor])"))
        assert len(shown) >= 3 and all(c == rgb(colours[t]) for t, c in shown.items())
        room.context.close()
        assert errors == []
    finally:
        server.stop()
