"""The centers' portal and the organizers' inclusion dashboard in Chromium: the center's page
follows its exam live (received, then a failed criterion to act on, then with the experts once
an organizer accepts it from the dashboard, reason required); the dashboard's tables follow.
And the center's upload panel: a real zip of a pydicom series sent in small chunks through the
page's file input, the connection cut after two chunks, the page reloaded and the same file
picked again: the page asks the server's offset and sends only the rest (a chunk refused with
409 for a stale offset makes it ask again); the exam then shows
with its criteria result, de-identified with every slice. A zip that is not one is refused in
the server's words."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from server.keys import POOL
from server.store import exams as store
from tests.helpers import AppServer, wait_for
from tests.inclusion.test_upload import exam_zip
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


CHUNK = 256
SLICES = 1


def test_a_zip_sent_from_the_page_resumes_after_a_cut_and_a_reload(
        example_event: Path, database_url: str, tmp_path: Path, browser: Any) -> None:
    content = exam_zip(tmp_path, "abdo-0042", slices=SLICES)
    zip_path = tmp_path / "abdo-0042.zip"
    zip_path.write_bytes(content)
    assert len(content) > 4 * CHUNK
    server = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=0).start()
    try:
        page = new_page(browser, server.url, server.tokens()["CHU de Lyon"], viewport=LAPTOP)
        errors = script_errors(page)
        sent: list[tuple[str, str | None]] = []
        page.on("request", lambda r: sent.append((r.method, r.headers.get("upload-offset")))
                if "/api/v1/uploads/" in r.url else None)
        answers: list[int] = []
        page.on("response", lambda r: answers.append(r.status)
                if r.request.method == "PATCH" else None)
        page.goto(f"{server.url}/center")
        # Only the center's own questions are offered.
        offered = page.eval_on_selector_all("[data-send-question] option",
                                            "o => o.map(x => x.value)")
        assert sorted(offered) == ["edss", "nodules-3d", "sarcopenia"]
        small_chunks = "() => { document.querySelector('[data-send]').dataset.chunkBytes = '%d'; }"
        page.evaluate(small_chunks % CHUNK)

        # Two chunks pass, then the network fails: the page keeps what the server holds.
        patches = {"n": 0}

        def cut_after_two(route: Any) -> None:
            if route.request.method == "PATCH":
                patches["n"] += 1
                if patches["n"] > 2:
                    route.abort("internetdisconnected")
                    return
            route.continue_()

        page.route("**/api/v1/uploads/*", cut_after_two)
        page.select_option("[data-send-question]", "sarcopenia")
        page.set_input_files("[data-send-files]", str(zip_path))
        item = "[data-send-item='abdo-0042.zip']"
        page.wait_for_selector(f"{item}[data-state=waiting]")
        assert page.get_attribute(item, "data-offset") == str(2 * CHUNK)
        assert "trying again" in page.inner_text(item)
        stored = json.loads(page.evaluate("() => localStorage.getItem('podium.center-uploads')"))
        assert [e["name"] for e in stored.values()] == ["abdo-0042.zip"]

        # Reloaded: the unfinished file is named; picked again, it resumes from the server's
        # offset, and only the missing chunks travel.
        page.unroute("**/api/v1/uploads/*")

        def first_chunk_from_zero(route: Any) -> None:
            # As a chunk whose answer was lost would be: the server refuses it (409) and
            # the page asks HEAD where to go on.
            if route.request.method == "PATCH" and not patches.get("stale"):
                patches["stale"] = 1
                route.continue_(headers={**route.request.headers, "upload-offset": "0"})
                return
            route.continue_()

        page.route("**/api/v1/uploads/*", first_chunk_from_zero)
        page.reload()
        assert "abdo-0042.zip" in page.inner_text("[data-send-unfinished]")
        page.evaluate(small_chunks % CHUNK)
        sent.clear()
        answers.clear()
        page.select_option("[data-send-question]", "sarcopenia")
        page.set_input_files("[data-send-files]", str(zip_path))
        page.wait_for_selector(f"{item}[data-state=done]")
        offsets = [int(o or 0) for m, o in sent if m == "PATCH"]
        assert [m for m, _ in sent[:3]] == ["HEAD", "PATCH", "HEAD"]   # the 409, then HEAD
        assert answers == [409] + [204] * (len(offsets) - 1)
        assert offsets == [2 * CHUNK, *range(2 * CHUNK, len(content), CHUNK)]
        assert len(offsets) == 1 + math.ceil((len(content) - 2 * CHUNK) / CHUNK)
        assert "resumed at" not in page.inner_text(item)  # the outcome replaced it
        exam = page.get_attribute(item, "data-exam")
        assert exam and page.get_attribute(f"{item} a", "href") == f"#exam-{exam}"
        assert page.is_hidden("[data-send-unfinished]")

        # The exam shows on the page, live, with its criteria result; kept de-identified
        # with every slice of the zip.
        card = f"[data-exam='{exam}']"
        page.wait_for_selector(f"{card}[data-stage=review]")
        assert page.get_attribute(f"{card} [data-step=criteria]", "data-state") == "done"
        page.wait_for_function("() => document.querySelector(\"[data-send-item='abdo-0042.zip'] "
                               ".send-status\").textContent === 'received: with the experts'")
        series = tmp_path / "data" / "inclusion" / "exams" / exam / "series"
        wait_for(lambda: series.is_dir())
        assert sum(1 for p in series.rglob("*") if p.is_file()) == SLICES

        # A file that is no zip: the server's own refusal, in the row, nothing kept.
        broken = tmp_path / "thorax.zip"
        broken.write_bytes(b"not a zip at all" * 80)
        page.set_input_files("[data-send-files]", str(broken))
        refused = "[data-send-item='thorax.zip']"
        page.wait_for_selector(f"{refused}[data-state=refused]")
        assert "not a zip archive" in page.inner_text(refused)
        assert page.evaluate("() => localStorage.getItem('podium.center-uploads')") == "{}"
        assert errors == []
    finally:
        server.stop()
