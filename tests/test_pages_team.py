"""The team page in Chromium: the status line follows the file's state (queued → scoring →
invalid, then scored with warnings), problems grouped, which submission counts and what is left, a
duplicate flagged before it is sent, the extension shown live, Upload closed with its reason.

No scorer runs here: the test moves each submission on with the worker's own calls
(claim_next, announce, record_result), so every state is seen, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.keys import POOL
from server.submission import announce, claim_next, record_result
from tests.helpers import EXAMPLE_DIR, AppServer
from tests.pages import LAPTOP, new_page, script_errors

EDSS = EXAMPLE_DIR / "submissions" / "edss-myelin-minds.csv"


class Scorer:
    """The worker's steps, one at a time, on the server's own pool."""

    def __init__(self, server: AppServer) -> None:
        self.server = server
        self.claimant = ""
        self.job: Any = None

    def claim(self) -> None:
        async def go() -> None:
            async with self.server.app[POOL].acquire() as conn:
                self.claimant = f"{conn.get_server_pid()}:test"
                self.job = await claim_next(conn, self.claimant)
                assert self.job is not None
                await announce(conn, self.job["id"], self.job["slug"], self.job["team_id"],
                               "scoring")
        self.server.call(go())

    def finish(self, status: str, metrics: dict[str, float] | None,
               errors: list[dict[str, str]], warnings: list[dict[str, str]] | None = None
               ) -> None:
        async def go() -> None:
            async with self.server.app[POOL].acquire() as conn:
                assert await record_result(conn, self.job["id"], self.claimant, status,
                                           metrics, errors, "test", warnings=warnings)
        self.server.call(go())


def status_is(page: Any, state: str) -> str:
    page.wait_for_selector(f"[data-status-of=edss][data-state={state}]")
    return str(page.inner_text("[data-status-of=edss]"))


def test_the_status_line_follows_the_file_from_queued_to_its_result(
        example_event: Path, database_url: str, tmp_path: Path, browser: Any) -> None:
    server = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=0).start()
    try:
        tokens = server.tokens()
        server.act("edss", "start")
        page = new_page(browser, server.url, tokens["Myelin Minds"], viewport=LAPTOP)
        errors = script_errors(page)
        page.goto(f"{server.url}/team")
        form = page.locator("form[data-upload=edss]")
        standing = page.locator("[data-standing-of=edss]")
        assert "none yet" in standing.inner_text()
        scorer = Scorer(server)

        broken = tmp_path / "my predictions.csv"
        broken.write_bytes(EDSS.read_bytes().replace(b"MS001,0.6", b"MS001,60"))
        form.locator("input[type=file]").set_input_files(str(broken))
        form.locator("button").click()
        line = status_is(page, "queued")
        assert "my predictions.csv" in line and "waiting to be scored" in line
        receipt = page.inner_text("[data-receipt-of=edss]")
        assert "Receipt · submission #" in receipt and "Europe/Paris" in receipt
        assert "my predictions.csv" in receipt  # the team's own name for its file

        scorer.claim()
        assert "being scored" in status_is(page, "scoring")
        problems = [{"code": "out_of_range", "message": f"EDSS 60 in row {n} is outside "
                     "[0, 10]", "id": f"MS{n:03d}"} for n in range(1, 13)]
        problems.append({"code": "missing_id", "message": "3 ids missing"})
        scorer.finish("invalid", None, problems)
        line = status_is(page, "invalid")
        assert "2 problems" in line and "it does not count" in line
        grouped = page.locator("[data-problems-of=edss] li")
        assert grouped.count() == 2  # one line per problem, not 13
        first = page.inner_text("[data-problems-of=edss] li[data-code=out_of_range]")
        assert "×12" in first and "MS001, MS002" in first and "and 4 more" in first
        page.wait_for_function("() => document.querySelector('[data-standing-of=edss] "
                               "[data-standing=left]').textContent.startsWith('1 sent')")

        form.locator("input[type=file]").set_input_files(str(EDSS))
        form.locator("button").click()
        status_is(page, "queued")
        scorer.claim()
        status_is(page, "scoring")
        notice = {"code": "constant_predictions", "message": "every prediction is 2.5"}
        scorer.finish("scored", {"mse": 1.2345, "mae": 0.9}, [], [notice])
        line = status_is(page, "scored")
        assert "mse 1.23" in line  # this challenge's feedback shows the score
        assert "1 warning, see below" in line
        warning = page.locator("[data-problems-of=edss] .warnings li[data-code="
                               "constant_predictions]")
        assert "every prediction is 2.5" in warning.inner_text()
        assert page.locator("[data-history-of=edss] tr.warnings-row").count() == 1
        page.wait_for_function("() => document.querySelector('[data-status-of=edss]')"
                               ".textContent.includes('it counts now')")
        second = scorer.job["id"]
        assert standing.locator("[data-standing=counted]").inner_text().startswith(
            f"#{second} — your last valid submission counts")
        assert page.locator(f"[data-history-of=edss] tr.counted[data-id='{second}']").count()

        # The same bytes again: flagged before they are sent, and not sent when declined.
        form.locator("input[type=file]").set_input_files(str(EDSS))
        form.locator("button").click()
        page.wait_for_selector("#confirm-dialog[open]")
        assert f"identical to submission #{second}" in page.inner_text("#confirm-dialog")
        page.click("#confirm-dialog button[value=cancel]")
        assert "Not sent" in status_is(page, "cancelled")
        _, mine = server.json("GET", "/api/v1/challenges/edss/submissions",
                              tokens["Myelin Minds"])
        assert len(mine) == 2

        # Extra time for this team shows at once; the close disables Upload, with the reason.
        server.act("edss", "extend", seconds=600, team="Myelin Minds")
        extension = page.locator("[data-extension-of=edss]")
        extension.wait_for()
        assert "10 extra minutes" in extension.inner_text()
        assert "Europe/Paris" in extension.inner_text()
        server.act("edss", "close")
        page.wait_for_function("() => document.querySelector('form[data-upload=edss] button')"
                               ".disabled")
        assert form.locator("[data-upload-reason]").inner_text().startswith(
            "Time is up: uploads closed at ")
        assert errors == []
        page.context.close()
    finally:
        server.stop()
