"""Warnings travel with a result everywhere it appears: the API (to the team under every
feedback policy), the websocket, `podium submit`, the jury's list and the workbook; messages
name the file as the team uploaded it; a second upload of the same bytes is told."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from openpyxl import load_workbook
from PIL import Image

from tests.browser import log_in
from tests.helpers import EXAMPLE_DIR, PODIUM, ROOT, AppServer
from tests.test_leaderboard import next_of, subscribe, ws_connect

TRUTH = EXAMPLE_DIR / "truth" / "sarcopenia"
# Read x = columns on the square exams, the naive masks are transposed: the HU window shows it.
NAIVE = {"orientation_assumed", "outside_hu_window", "looks_transposed"}


def naive_nifti_zip() -> bytes:
    """The example's truth masks saved the naive way: pixel_array-shaped, identity affine."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for mask in sorted((TRUTH / "masks").glob("*.png")):
            array = (np.asarray(Image.open(mask)) != 0).astype(np.uint8)
            archive.writestr(f"masks/{mask.stem}.nii",
                             nib.Nifti1Image(array, np.eye(4)).to_bytes())
        archive.writestr("surfaces.csv", (TRUTH / "surfaces.csv").read_bytes())
    return out.getvalue()


def codes(body: dict[str, Any]) -> set[str]:
    return {w["code"] for w in body["warnings"]}


def test_warnings_reach_the_team_the_jury_and_the_workbook(server: AppServer,
                                                           tmp_path: Path) -> None:
    tokens = server.tokens()
    team = tokens["Lumbar Lab"]
    for slug in ("sarcopenia", "nodules"):
        server.json("POST", f"/api/v1/challenges/{slug}/start", tokens["organizer"], {})
    content = naive_nifti_zip()
    with ws_connect(server, team) as ws:
        subscribe(ws, "submissions")
        status, first = server.upload("sarcopenia", team, "lumbar-masks.zip", content,
                                      "?wait=60")
        assert status == 202 and first["status"] == "scored", first
        # team_feedback "status": no metrics for the team, but its warnings.
        assert "metrics" not in first
        assert codes(first) == NAIVE
        [assumed] = [w for w in first["warnings"] if w["code"] == "orientation_assumed"]
        assert assumed["message"].startswith("6 masks have no orientation")
        message = next_of(ws, "submission")
        while message["status"] != "scored":
            message = next_of(ws, "submission")
        assert message["id"] == first["id"] and codes(message) == NAIVE

    status, second = server.upload("sarcopenia", team, "lumbar-masks-again.zip", content,
                                   "?wait=60")
    assert codes(second) == NAIVE | {"duplicate_upload"}
    [duplicate] = [w for w in second["warnings"] if w["code"] == "duplicate_upload"]
    assert f"#{first['id']}" in duplicate["message"] and "lumbar-masks.zip" in duplicate["message"]

    # An error names the file as uploaded, never as stored.
    status, refused = server.upload("nodules", team, "probabilities.xls",
                                    b"<html><table><tr><td>NOD001</td></tr></table></html>",
                                    "?wait=60")
    assert refused["status"] == "invalid"
    [error] = refused["errors"]
    assert error["message"].startswith("probabilities.xls is a web page (HTML")

    _, listed = server.json("GET", "/api/v1/challenges/sarcopenia/submissions", tokens["jury"])
    assert [codes(s) for s in listed] == [NAIVE | {"duplicate_upload"}, NAIVE]
    assert all("metrics" in s for s in listed)  # the jury sees everything

    path = tmp_path / "again.zip"
    path.write_bytes(content)
    out = subprocess.run([*PODIUM, "submit", "--server", server.url, "--token", team,
                          "--challenge", "sarcopenia", str(path), "--wait", "60"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "warning: orientation_assumed: 6 masks have no orientation" in out.stdout
    assert "warning: duplicate_upload: this file is identical" in out.stdout

    status, _, raw = server.request("GET", "/api/v1/export.xlsx", tokens["jury"])
    assert status == 200
    rows = list(load_workbook(io.BytesIO(raw))["Submissions"].iter_rows(values_only=True))
    header = list(rows[0])
    by_file = {r[header.index("File")]: r[header.index("Warnings")] for r in rows[1:]}
    assert by_file["lumbar-masks.zip"].startswith("orientation_assumed: 6 masks")
    assert "duplicate_upload" in by_file["lumbar-masks-again.zip"]
    assert by_file["probabilities.xls"] is None


def test_the_team_page_shows_warnings_as_notices_not_errors(server: AppServer,
                                                            browser: Any) -> None:
    tokens = server.tokens()
    server.json("POST", "/api/v1/challenges/sarcopenia/start", tokens["organizer"], {})
    page = browser.new_page()
    log_in(page, server.url, tokens["Lumbar Lab"])
    fmt = page.locator('[data-format-of="sarcopenia"]')
    fmt.locator("summary").click()
    assert "x = columns, y = rows" in fmt.inner_text()  # the orientation rule, for teams
    form = page.locator('form[data-upload="sarcopenia"]')
    form.locator("input[type=file]").set_input_files(
        files=[{"name": "naive.zip", "mimeType": "application/zip",
                "buffer": naive_nifti_zip()}])
    form.locator("button").click()
    notes = page.locator('[data-history-of="sarcopenia"] tr.warnings-row li')
    notes.first.wait_for(timeout=60000)
    assert {notes.nth(i).get_attribute("data-code") for i in range(notes.count())} == NAIVE
    # Shown in the notice style: not the error colour of a refusal.
    colour = notes.first.evaluate("e => getComputedStyle(e).color")
    assert colour not in ("rgb(204, 0, 0)", "rgb(255, 0, 0)")
    assert "error" not in (notes.first.evaluate("e => e.closest('ul').className") or "")
    # Beside the receipt too, once the page has drawn it.
    page.wait_for_function(
        """() => document.querySelectorAll('[data-problems-of="sarcopenia"] .warnings li')
                 .length === 3""", timeout=60000)
    page.close()


def test_podium_score_prints_the_warnings(tmp_path: Path) -> None:
    path = tmp_path / "naive.zip"
    path.write_bytes(naive_nifti_zip())
    out = subprocess.run([*PODIUM, "score", "--event", str(EXAMPLE_DIR / "event.toml"),
                          "--challenge", "sarcopenia", str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "scored" and codes(result) == NAIVE
