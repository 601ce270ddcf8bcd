"""The center's upload panel on /center, in Chromium: a real zip of a pydicom series sent in
small chunks through the page's file input, the connection cut after two chunks (the page
waits and says so), the page reloaded and the same file picked again: the page asks the
server's offset and sends only the rest; the exam then shows on the page with its criteria
result, de-identified with every slice. A zip that is not one is refused in the server's
words."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tests.helpers import AppServer, wait_for
from tests.inclusion.test_upload import exam_zip
from tests.pages import LAPTOP, new_page, script_errors

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
        page.goto(f"{server.url}/center")
        # Only the center's own questions are offered.
        offered = page.eval_on_selector_all("[data-send-question] option", "o => o.map(x => x.value)")
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
        page.reload()
        assert "abdo-0042.zip" in page.inner_text("[data-send-unfinished]")
        page.evaluate(small_chunks % CHUNK)
        sent.clear()
        page.select_option("[data-send-question]", "sarcopenia")
        page.set_input_files("[data-send-files]", str(zip_path))
        page.wait_for_selector(f"{item}[data-state=done]")
        offsets = [int(o or 0) for m, o in sent if m == "PATCH"]
        assert sent[0] == ("HEAD", None)
        assert offsets == list(range(2 * CHUNK, len(content), CHUNK))
        assert len(offsets) == math.ceil((len(content) - 2 * CHUNK) / CHUNK)
        assert "resumed at" not in page.inner_text(item)  # the outcome replaced it
        exam = page.get_attribute(item, "data-exam")
        assert exam and page.get_attribute(f"{item} a", "href") == f"#exam-{exam}"
        assert page.is_hidden("[data-send-unfinished]")

        # The exam shows on the page, live, with its criteria result; kept de-identified
        # with every slice of the zip.
        card = f"[data-exam='{exam}']"
        page.wait_for_selector(f"{card}[data-stage=review]")
        assert page.get_attribute(f"{card} [data-step=criteria]", "data-state") == "done"
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
