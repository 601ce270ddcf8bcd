"""The winner reveal in Chromium: the page's DOM holds nothing of a place — rows, times, counts,
plots, rank stability — before the jury reveals it; Space, → and the Next button advance, ←
goes back, nothing else does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import EXAMPLE_DIR, AppServer
from tests.pages import new_page, script_errors

GOOD = (EXAMPLE_DIR / "submissions" / "nodules-nodule-hunters.csv").read_bytes()
WORSE = GOOD.replace(b"NOD002;0,698", b"NOD002;0,1")


def shown_teams(page: Any, selector: str) -> set[str]:
    return set(page.evaluate(f"[...document.querySelectorAll({selector!r})]"
                             ".map(e => e.dataset.team)"))


def test_the_reveal_shows_each_place_only_when_the_jury_reveals_it(
        example_event: Path, database_url: str, tmp_path: Path, browser: Any) -> None:
    server = AppServer(example_event, tmp_path / "data", database_url).start()
    try:
        tokens = server.tokens()
        server.act("nodules", "start")
        # Lumbar Lab first; Nodule Hunters and Myelin Minds tied behind it (same file).
        for team, content in (("Lumbar Lab", GOOD), ("Nodule Hunters", WORSE),
                              ("Myelin Minds", WORSE)):
            status, body = server.upload("nodules", tokens[team], "p.csv", content, "?wait=60")
            assert (status, body["status"]) == (202, "scored"), body
        server.act("nodules", "close")
        teams = {"Lumbar Lab", "Nodule Hunters", "Myelin Minds"}

        page = new_page(browser, server.url, tokens["jury"])
        errors = script_errors(page)
        asked: list[str] = []
        reveal = "/api/v1/challenges/nodules/reveal"
        page.on("request", lambda r: asked.append(r.url) if reveal in r.url else None)
        page.goto(f"{server.url}/jury/nodules?reveal=1")
        page.wait_for_load_state("networkidle")
        html = page.content()
        assert not [team for team in teams if team in html]  # not a name, a row, a plot
        assert page.locator("#reveal-board tr, #reveal-analysis svg").count() == 0
        assert "bootstrap" not in html

        # Clicking anywhere does not advance: not the page, not its title.
        page.click("h1")
        page.mouse.click(960, 700)
        page.evaluate("fetch('/api/v1/time')")  # a round trip: any click's request is seen
        assert asked == [] and page.get_attribute("#reveal-board", "data-step") == "0"

        page.keyboard.press("Space")
        page.wait_for_selector("#reveal-board[data-step='1']", state="attached")
        # The tied last place together, with its plots and stability: nothing of first place.
        assert shown_teams(page, "#reveal-board tbody tr") == {"Nodule Hunters", "Myelin Minds"}
        assert [t.strip() for t in page.locator("#reveal-board td.rank").all_inner_texts()] \
            == ["2=", "2="]
        assert shown_teams(page, "#reveal-analysis svg g.series") == {"Nodule Hunters",
                                                                      "Myelin Minds"}
        assert shown_teams(page, "#reveal-analysis .stability li") == {"Nodule Hunters",
                                                                       "Myelin Minds"}
        assert "Lumbar Lab" not in page.content()

        page.keyboard.press("ArrowRight")
        page.wait_for_selector("#reveal-board[data-step='2']", state="attached")
        assert shown_teams(page, "#reveal-board tbody tr") == teams
        assert page.locator("#reveal-board tbody tr").first.get_attribute("data-team") == \
            "Lumbar Lab"
        assert shown_teams(page, "#reveal-analysis svg g.series") == teams
        assert page.is_disabled("[data-reveal=next]")
        assert page.inner_text("[data-reveal=next]") == "All places revealed"

        page.keyboard.press("ArrowLeft")  # back: first place leaves the page again
        page.wait_for_selector("#reveal-board[data-step='1']", state="attached")
        assert "Lumbar Lab" not in page.content()
        page.click("[data-reveal=next]")  # the dedicated button advances
        page.wait_for_selector("#reveal-board[data-step='2']", state="attached")
        page.click("[data-reveal=back]")
        page.wait_for_selector("#reveal-board[data-step='1']", state="attached")
        page.keyboard.press("ArrowLeft")
        page.wait_for_selector("#reveal-board[data-step='0']", state="attached")
        assert not [team for team in teams if team in page.content()]
        assert errors == []
        page.context.close()
    finally:
        server.stop()
