"""The review pages in Chromium: three experts grade one exam of nodules-3d in the viewer — two
blind readings that differ, the third expert sees both and settles it — while scrolling with
the wheel, the keys and the slider, switching plane, window and overlay; the center's timeline
then holds every grade and comment and no expert's name.

PODIUM_SCREENS=docs/screens also photographs the queue and the viewer at 1920×1080 and
1366×768 (docs/review.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from server.keys import CONFIG, POOL
from server.store import exams as exam_store
from tests.helpers import AppServer
from tests.pages import LAPTOP, PROJECTOR, new_page, overflowing, script_errors
from tests.reviewing import exam_in_review

KERNEL = {"code": "kernel", "rule": "kernel", "severity": "warning",
          "message": "kernel B30f is soft; this question prefers a hard kernel",
          "found": "B30f", "expected": "hard"}


def _loaded(page: Any, fragment: str) -> None:
    """Waits until the slice shown is the one asked for (its URL holds `fragment`)."""
    page.wait_for_function(
        "(f) => { const i = document.querySelector('[data-slice]');"
        " return i.complete && i.naturalWidth > 0 && (i.dataset.loaded || '').includes(f); }",
        arg=fragment)


def _grade(page: Any, grade: str, comment: str) -> str:
    page.click(f"[data-grade={grade}]")
    page.fill("[data-grade-form] textarea", comment)
    page.click("[data-send]")
    page.wait_for_selector("[data-review-status][data-state=graded]")
    return str(page.inner_text("[data-review-status]"))


def test_three_experts_grade_an_exam_in_the_viewer(
        example_event: Path, database_url: str, tmp_path: Path, browser: Any) -> None:
    screens = os.environ.get("PODIUM_SCREENS")
    server = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=0).start()
    try:
        tokens = server.tokens()

        async def add(label: str, seed: int) -> int:
            async with server.app[POOL].acquire() as conn:
                exam_id, _ = await exam_in_review(
                    conn, Path(server.app[CONFIG].data_dir), center="CHU de Lyon",
                    challenge="nodules-3d", label=label, seed=seed, warnings=[KERNEL],
                    scale=4 if screens else 1)
            return exam_id
        exam = server.call(add("chest-01", 0))
        later = server.call(add("chest-02", 1))

        martin = new_page(browser, server.url, tokens["Dr Martin"], viewport=LAPTOP)
        errors = script_errors(martin)
        martin.goto(f"{server.url}/review")
        queue = martin.locator("[data-queue=nodules-3d]")
        assert queue.locator("[data-count=waiting]").inner_text() == "2"
        assert "two blind readings" in queue.inner_text()
        if screens:
            _shoot(martin, Path(screens), "review-queue")
        queue.locator(f"tr[data-exam='{exam}'] a").click()
        martin.wait_for_url(f"**/review/exams/{exam}")
        _loaded(martin, "/axial/12?window=lung&overlay=1")
        assert martin.inner_text("[data-slice-label]") == "axial 13 / 24"
        assert "kernel B30f is soft" in martin.inner_text(".review-warnings")
        assert "blind reading" in martin.inner_text("[data-grade-form]")

        # Scroll: the wheel over the image, the arrow keys, the slider.
        martin.hover("[data-slice-frame]")
        martin.mouse.wheel(0, 120)
        _loaded(martin, "/axial/13?")
        martin.keyboard.press("ArrowDown")
        martin.keyboard.press("ArrowDown")
        _loaded(martin, "/axial/11?")
        martin.fill("[data-slider]", "3")
        _loaded(martin, "/axial/3?")
        martin.click("[data-axis=coronal]")
        rows = 32 * (4 if screens else 1)
        _loaded(martin, f"/coronal/{rows // 2}?")
        assert martin.inner_text("[data-slice-label]") == f"coronal {rows // 2 + 1} / {rows}"
        martin.click("[data-window=bone]")
        _loaded(martin, f"/coronal/{rows // 2}?window=bone")
        martin.fill("[data-custom-window] input[name=level]", "40")
        martin.fill("[data-custom-window] input[name=width]", "400")
        martin.click("[data-custom-window] button")
        _loaded(martin, "window=40%2C400")
        martin.uncheck("[data-overlay]")
        _loaded(martin, "overlay=0")
        martin.check("[data-overlay]")
        martin.click("[data-axis=axial]")
        martin.click("[data-window=lung]")
        _loaded(martin, "/axial/3?window=lung&overlay=1")
        martin.fill("[data-slider]", "12")
        _loaded(martin, "/axial/12?window=lung&overlay=1")
        if screens:
            _shoot(martin, Path(screens), "review-exam")
        assert overflowing(martin) == []

        # The first blind reading.
        said = _grade(martin, "A", "sharp nodule, lungs fully covered")
        assert "Your grade A is recorded." in said and "settled" not in said
        assert martin.locator(f"[data-review-status] a[href='/review/exams/{later}']").count()

        # The second: blind, it sees nothing of the first.
        leroy = new_page(browser, server.url, tokens["Dr Leroy"], viewport=PROJECTOR)
        errors += script_errors(leroy)
        leroy.goto(f"{server.url}/review/exams/{exam}")
        _loaded(leroy, "/axial/12?")
        assert leroy.locator("[data-readings] .reading").count() == 0
        assert "sharp nodule" not in leroy.content()
        _grade(leroy, "D", "motion blur on the lower slices")

        # The third sees both readings and settles the grade.
        petit = new_page(browser, server.url, tokens["Dr Petit"], viewport=LAPTOP)
        errors += script_errors(petit)
        petit.goto(f"{server.url}/review")
        row = petit.locator(f"[data-queue=nodules-3d] tr[data-exam='{exam}']")
        assert "third (settles)" in row.inner_text()
        row.locator("a").click()
        petit.wait_for_url(f"**/review/exams/{exam}")
        readings = petit.inner_text("[data-readings]")
        assert "Reading 1: A — sharp nodule, lungs fully covered" in readings
        assert "Reading 2: D — motion blur on the lower slices" in readings
        assert "You settle the two readings above." in petit.inner_text("[data-grade-form]")
        said = _grade(petit, "B", "blur present, nodule readable")
        assert "The exam is settled: B, kept." in said
        assert petit.locator("[data-readings] .reading").count() == 3
        assert errors == []

        async def lines() -> list[tuple[str, str]]:
            async with server.app[POOL].acquire() as conn:
                return [(e.kind, e.message)
                        for e in (await exam_store.timeline(conn, [exam]))[exam]]
        timeline = server.call(lines())
        assert timeline[-4:] == [
            ("graded", "expert reading: graded A: sharp nodule, lungs fully covered"),
            ("graded", "second expert reading: graded D: motion blur on the lower slices"),
            ("graded", "third expert: graded B: blur present, nodule readable"),
            ("kept", "kept: graded B by the experts (settled by a third expert)")]
        assert not any(n in m for _, m in timeline for n in ("Martin", "Leroy", "Petit"))
    finally:
        server.stop()


def _shoot(page: Any, folder: Path, name: str) -> None:
    for size, suffix in ((PROJECTOR, "1920"), (LAPTOP, "1366")):
        page.set_viewport_size(size)
        page.screenshot(path=str(folder / f"{name}-{suffix}.png"))
    page.set_viewport_size(LAPTOP)
