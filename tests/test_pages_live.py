"""The live pages in headless Chromium: the jury board updates without reloading and shows a
banner when the server goes away; a team uploads from its page (the reveal:
tests/test_pages_reveal.py; the team page's states: tests/test_pages_team.py)."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.browser import log_in
from tests.helpers import EXAMPLE_DIR, AppServer, Client, ServerProcess

NODULES = EXAMPLE_DIR / "submissions" / "nodules-nodule-hunters.csv"


def logged_in(browser: Any, server: Client, token: str) -> Any:
    page = browser.new_page()
    log_in(page, server.url, token)
    return page


@pytest.mark.slow  # a server process stopped and restarted on its port
def test_the_jury_board_updates_live_and_survives_a_restart(server_process: ServerProcess,
                                                             browser: Any) -> None:
    server = server_process
    tokens = server.tokens()
    server.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
    page = logged_in(browser, server, tokens["jury"])
    assert page.url.endswith("/jury")
    page.wait_for_selector('[data-board="nodules"] tbody tr')
    assert page.locator('[data-board="nodules"] tr[data-rank="1"]').count() == 0
    server.upload("nodules", tokens["Nodule Hunters"], "p.csv", NODULES.read_bytes())
    page.wait_for_selector('[data-board="nodules"] tr[data-rank="1"][data-team="Nodule Hunters"]',
                           timeout=60000)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload

    server.stop(signal.SIGTERM)
    page.wait_for_selector("#connection-banner:not([hidden])", timeout=60000)
    assert "reconnecting" in page.inner_text("#connection-banner")
    server.start_on_same_port()
    page.wait_for_selector("#connection-banner[hidden]", state="attached", timeout=60000)
    server.upload("nodules", tokens["Lumbar Lab"], "p.csv", NODULES.read_bytes())
    page.wait_for_selector('[data-board="nodules"] tr[data-team="Lumbar Lab"][data-rank="1"]',
                           timeout=60000)
    page.close()


def test_a_team_uploads_from_its_page_and_sees_its_result(server: AppServer,
                                                          browser: Any) -> None:
    tokens = server.tokens()
    server.json("POST", "/api/v1/challenges/edss/start", tokens["organizer"], {})
    page = logged_in(browser, server, tokens["Myelin Minds"])
    assert page.url.endswith("/team")
    form = page.locator('form[data-upload="edss"]')
    form.locator("input[type=file]").set_input_files(
        str(EXAMPLE_DIR / "submissions" / "edss-myelin-minds.csv"))
    form.locator("button").click()
    receipt = page.locator('[data-receipt-of="edss"]')
    receipt.wait_for(state="visible")
    assert "SHA-256" in receipt.inner_text()
    page.wait_for_selector('[data-history-of="edss"] tr[data-status="scored"]', timeout=60000)
    assert "mse" in page.inner_text('[data-history-of="edss"] tr .result')  # feedback "score"
    assert float(page.get_attribute("form[data-upload=edss] progress", "value") or 0) == 1

    nodules = page.locator('form[data-upload="nodules"]')
    # Nodules has not started: its Upload is disabled, with the reason beside it.
    assert nodules.locator("button").is_disabled()
    assert "start this challenge's clock" in nodules.locator("[data-upload-reason]").inner_text()
    page.close()
