"""The centers' portal and the organizers' inclusion dashboard in Chromium: the center's page
follows its exam live (received, then a failed criterion to act on, then with the experts once
an organizer accepts it from the dashboard, reason required); the dashboard's tables follow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.keys import POOL
from server.store import exams as store
from tests.helpers import AppServer
from tests.pages import LAPTOP, PROJECTOR, new_page, script_errors

THICK = {"code": "slice_thickness", "rule": "slice_thickness_mm", "severity": "violation",
         "message": "slice thickness 2.5 mm; this question needs < 1.25 mm"}


def test_the_center_page_is_live_and_the_dashboard_decides(
        example_event: Path, database_url: str, tmp_path: Path, browser: Any) -> None:
    server = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=0).start()
    try:
        tokens = server.tokens()
        center = new_page(browser, server.url, tokens["CHU de Lyon"], viewport=LAPTOP)
        center_errors = script_errors(center)
        center.goto(f"{server.url}/center")
        center.wait_for_selector("[data-progress-of=nodules-3d]")
        assert center.is_visible("[data-no-exams]")

        def send() -> int:
            async def go() -> int:
                async with server.app[POOL].acquire() as conn:
                    lyon = await conn.fetchval("SELECT id FROM center WHERE name = 'CHU de Lyon'")
                    exam = await store.create(conn, center_id=lyon, challenge="nodules-3d",
                                              channel="web", label="thorax-07.zip",
                                              source_key="t7", message="received by the web")
                    await store.checked(conn, exam, [THICK], {}, "criteria checked: 1 violation")
                    return exam
            return server.call(go())

        exam = send()
        card = f"[data-exam='{exam}']"
        center.wait_for_selector(f"{card}[data-stage=checked]")
        assert "slice thickness 2.5 mm" in center.inner_text(card)
        assert center.get_attribute(f"{card} [data-step=criteria]", "data-state") == "current"
        assert "thorax-07.zip" in center.inner_text("[data-to-act]")
        center.wait_for_function(
            "() => document.querySelector('[data-progress-of=nodules-3d]').textContent"
            ".includes('1 sent')")

        board = new_page(browser, server.url, tokens["organizer"], viewport=PROJECTOR)
        board_errors = script_errors(board)
        board.goto(f"{server.url}/inclusion")
        row = board.locator("[data-violations] tr[data-violation]")
        assert row.count() == 1 and "thorax-07.zip" in row.inner_text()
        assert "1 received" in board.inner_text("[data-question=nodules-3d]")
        # Accept without a reason: refused in the page, nothing sent.
        row.locator("[data-decide=accepted]").click()
        assert "give a reason" in row.locator(".error").inner_text()
        row.locator("input[name=reason]").fill("1.5 mm reconstruction is fine for this study")
        row.locator("[data-decide=accepted]").click()
        board.wait_for_selector("[data-no-violations]:not([hidden])")
        board.wait_for_selector(f"[data-newest] tr[data-exam='{exam}'][data-stage=review]")

        # The center's page follows at once: with the experts, the decision's reason shown.
        center.wait_for_selector(f"{card}[data-stage=review]")
        text = center.inner_text(card)
        assert "accepted by the organizers" in text and "1.5 mm reconstruction" in text
        assert center.is_hidden("[data-to-act]")
        assert center_errors == [] and board_errors == []
    finally:
        server.stop()
