"""Headless Chromium (Debian's) driven by Playwright, for page tests.

Pages run under a Content-Security-Policy without 'unsafe-eval': give `wait_for_function` a
function ("() => ..."), which Playwright runs as it runs `evaluate`, not an expression, which
it would eval in the page.

Browsers cannot be downloaded here, so Playwright launches the system Chromium. Where it is
missing the page tests are skipped, unless PODIUM_REQUIRE_BROWSER=1 (as in CI, whose .ci/run
installs Chromium) turns the skip into a failure.

One browser per test module, not per session: Playwright's sync API keeps an event loop running
in the main thread while it lives, and a test of another module that starts a loop of its own
(asyncio.run) must not depend on whether a page test happened to run before it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    path = chromium_path()
    if path is None:
        if os.environ.get("PODIUM_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (PODIUM_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("Chromium is not installed (apt-get install chromium) — page tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, headless=True,
                                              args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


def sign_in(context: Any, url: str, token: str) -> None:
    """Opens a session in a browser context by posting the login form as Podium's login page
    does (same origin), without drawing the page or the role's home: for tests about other
    pages. Tests about signing in use `log_in`."""
    response = context.request.post(f"{url}/login", form={"token": token},
                                    headers={"Origin": url}, max_redirects=0)
    assert response.status == 303, (response.status, response.text())


def log_in(page: Any, url: str, token: str) -> None:
    """Signs a page in as a person would: opens the login link, then confirms on Podium's
    login page (a link alone never signs a browser in)."""
    page.goto(f"{url}/login?token={token}")
    with page.expect_navigation():
        page.click("form[data-login-offer] button[type=submit]")
