"""The demo event end to end, and what the jury takes away: the workbook and rescoring."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from tests.helpers import PODIUM, ROOT, ServerProcess


@pytest.mark.slow  # the README's first command: `podium demo` with its own PostgreSQL
def test_the_demo_serves_and_its_examples_score_as_promised(embedded_data_dir: Path,
                                                            tmp_path: Path) -> None:
    data_dir = embedded_data_dir
    server = ServerProcess(Path("unused"), data_dir, None, demo=True).start(timeout=120)
    try:
        tokens = server.links()
        # The organizer, the jury, the eight teams, the centers, the reviewers, and the
        # teams the demo registered and approved.
        assert {"organizer", "jury", "CHU de Lyon", "Dr Martin",
                "Lyon Imaging Lab (registered)"} <= set(tokens) and len(tokens) == 19
        event = data_dir / "demo" / "event.toml"
        server.event = event
        _, challenges = server.json("GET", "/api/v1/challenges")
        assert [(c["slug"], c["duration_s"]) for c in challenges] == [
            ("sarcopenia", 3600), ("nodules", 7200), ("edss", 3600), ("nodules-3d", 7200)]
        for slug in ("sarcopenia", "nodules", "edss", "nodules-3d"):
            server.json("POST", f"/api/v1/challenges/{slug}/start", tokens["organizer"], {})
        folder = data_dir / "demo" / "submissions"
        expected = json.loads((folder / "expected.json").read_text())
        for name, promise in expected.items():
            status, result = server.upload(promise["challenge"], tokens[promise["team"]],
                                           Path(name).name, (folder / name).read_bytes(),
                                           "?wait=60")
            assert status == 202, (name, result)
            assert result["status"] == promise["status"], (name, result)
            codes = {e["code"] for e in result.get("errors", [])}
            assert set(promise["codes"]) <= codes, (name, codes)

        status, headers, raw = server.request("GET", "/api/v1/export.xlsx", tokens["jury"])
        assert status == 200 and headers["Content-Type"].startswith(
            "application/vnd.openxmlformats")
        workbook = openpyxl.load_workbook(io.BytesIO(raw))
        assert "Results" in workbook.sheetnames and "Submissions" in workbook.sheetnames
        results = workbook["Results"]
        # Each challenge's score (columns B, D, F), its rank beside it.
        cells = {(row[0].value, col): row[i].value for row in results.iter_rows(min_row=2)
                 for i, col in ((1, "sarcopenia"), (3, "nodules"), (5, "edss"))}
        assert cells[("Gradient Gargoyles", "nodules")] == "N.S."  # only invalid files
        assert server.request("GET", "/api/v1/export.xlsx", tokens["Dice Rollers"])[0] == 403
        status, _, csv = server.request("GET", "/api/v1/challenges/edss/leaderboard.csv",
                                        tokens["organizer"])
        assert status == 200 and b"Les Voxelistes" in csv
        status, _, analysis = server.request("GET", "/api/v1/challenges/nodules/analysis",
                                             tokens["jury"])
        body = json.loads(analysis)
        assert "roc" in body["plots"] and len(body["stability"]) == 5
    finally:
        server.stop()

    # Offline, on the same data dir (its embedded PostgreSQL): the workbook and a rescore.
    out, long_table = tmp_path / "results.xlsx", tmp_path / "challenger.csv"
    export = subprocess.run([*PODIUM, "export", "--event", str(event), "--data-dir",
                             str(data_dir), str(out), "--challenger", str(long_table)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert export.returncode == 0, export.stderr
    book = openpyxl.load_workbook(out)
    assert book["Results"].max_row >= 9 and "Ranking analysis" in book.sheetnames
    # challengeR's long table: each team's per-exam Dice average to its board's Dice.
    table = pd.read_csv(long_table)
    assert {"sarcopenia:dice", "sarcopenia:surface_mse", "edss:mse"} <= set(table["task"])
    sheet = [[c.value for c in row] for row in book["sarcopenia"].iter_rows()]
    dice_at = sheet[0].index("Dice")
    board_dice = {r[1]: r[dice_at] for r in sheet[1:] if r[dice_at] is not None}
    means = table[table["task"] == "sarcopenia:dice"].groupby("algorithm")["value"].mean()
    assert board_dice and set(means.index) == set(board_dice)
    for team, dice in board_dice.items():
        assert means[team] == pytest.approx(dice, rel=1e-9)
    rescore = subprocess.run([*PODIUM, "rescore", "--event", str(event), "--data-dir",
                              str(data_dir)], capture_output=True, text=True, cwd=ROOT,
                             timeout=300)
    assert rescore.returncode == 0, rescore.stdout + rescore.stderr
    counted = {(p["team"], p["challenge"]) for p in expected.values() if p["status"] == "scored"}
    assert f"{len(counted)} counted submission(s) rescored, 0 difference(s)" in rescore.stdout
