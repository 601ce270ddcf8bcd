"""`/` links each role to its page; every page has its icon and asks the server for nothing
it does not have."""

from __future__ import annotations

from typing import Any

from tests.helpers import AppServer
from tests.pages import new_page


def test_the_front_page_links_each_role_and_no_page_misses_a_file(server: AppServer,
                                                                  browser: Any) -> None:
    page = new_page(browser, server.url)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(f"{r.status} {r.url}")
            if r.status >= 400 else None)
    page.goto(server.url + "/")
    for role, pages in (("organizer", ["/organizer", "/inclusion"]), ("jury", ["/jury"]),
                        ("team", ["/team"]), ("center", ["/center"]),
                        ("room", ["/clock", "/board"])):
        links = page.locator(f".role-card[data-role={role}] a.go")
        assert [links.nth(i).get_attribute("href") for i in range(links.count())] == pages
    reveal = page.locator(".role-card[data-role=jury] a[href$='?reveal=1']")
    assert reveal.count() == 4  # each challenge's reveal
    assert page.get_attribute("link[rel=icon]", "href") == "/static/favicon.svg"
    for path in ("/clock", "/board", "/login"):
        page.goto(server.url + path)
        page.wait_for_load_state("networkidle")
    icon = page.request.get(server.url + "/favicon.ico")  # asked for by every other client
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert missing == []
    page.context.close()
