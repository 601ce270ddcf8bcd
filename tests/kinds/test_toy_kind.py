"""A kind added as one module (tests/kinds/toy_count.py, loaded through PODIUM_KINDS) works
everywhere a kind is asked: the event file, scoring in the worker processes, the API's format,
the live board's columns and ranking, and the jury's workbook — with no other change."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook

from server import kinds
from server.evaluators import evaluate
from server.event import parse_event
from tests.helpers import AppServer, wait_for

TRUTH = "id,count\nE1,0\nE2,1\nE3,2\nE4,3\nE5,1\nE6,0\n"


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Iterator[kinds.Kind]:
    # The environment reaches the scoring processes, which discover kinds for themselves.
    monkeypatch.setenv(kinds.EXTRA_ENV, "tests.kinds.toy_count")
    kinds.discover()
    yield kinds.get("nodule-count")
    monkeypatch.delenv(kinds.EXTRA_ENV)
    kinds.discover()


def event(tmp_path: Path) -> Path:
    (tmp_path / "truth.csv").write_text(TRUTH)
    path = tmp_path / "event.toml"
    path.write_text('''
[event]
name = "Toy kind"
timezone = "Europe/Paris"

[[challenges]]
slug = "count"
title = "Nodule count"
kind = "nodule-count"
duration_minutes = 30
truth = "truth.csv"
team_feedback = "score"

[[teams]]
name = "Exact Lab"
challenges = ["count"]

[[teams]]
name = "Close Lab"
challenges = ["count"]

[[teams]]
name = "Idle Lab"
challenges = ["count"]
''')
    return path


def test_the_toy_kind_is_refused_until_its_module_is_named(tmp_path: Path) -> None:
    from server.errors import EventFileError
    with pytest.raises(EventFileError, match="nodule-count"):
        parse_event(event(tmp_path))


def test_a_kind_added_as_one_module_runs_the_whole_day(
        toy: kinds.Kind, tmp_path: Path, database_url: str) -> None:
    path = event(tmp_path)
    challenge = parse_event(path).challenges[0]
    assert challenge.max_upload_bytes == 1024 * 1024  # the kind's default upload limit
    direct = evaluate("nodule-count", tmp_path / "truth.csv", write(tmp_path, "0,1,2,3,1,0"))
    assert direct.status == "scored" and direct.metrics == {"exact": 1.0, "mae": 0.0}
    bad = evaluate("nodule-count", tmp_path / "truth.csv", write(tmp_path, "0,1,2,3,1,0.5"))
    assert bad.status == "invalid" and "whole count" in bad.errors[0].message

    server = AppServer(path, tmp_path / "data", database_url).start()
    try:
        tokens = server.tokens()
        status, body = server.json("GET", "/api/v1/challenges/count")
        assert status == 200 and body["format"]["files"] == [".csv", ".xlsx"]
        assert body["format"]["ranking"] == "rank(exact) + rank(mae), lowest wins; " \
                                            "tie -> higher exact"
        server.act("count", "start")
        ids = []
        for team, counts in (("Exact Lab", "0,1,2,3,1,0"), ("Close Lab", "0,1,2,2,1,1")):
            status, receipt = server.upload("count", tokens[team], "counts.csv",
                                            write(tmp_path, counts).read_bytes())
            assert status == 202, receipt
            ids.append(receipt["id"])
        for sid in ids:
            wait_for(lambda sid=sid: server.json("GET", f"/api/v1/submissions/{sid}",
                                                 tokens["jury"])[1]["status"] == "scored",
                     timeout=120, what=f"submission {sid} scored")
        _, board = server.json("GET", "/api/v1/challenges/count/leaderboard", tokens["jury"])
        assert [c["key"] for c in board["columns"]] == ["exact", "mae", "score"]
        assert [(r["rank"], r["team"], r["score"]) for r in board["rows"]] == [
            (1, "Exact Lab", 2.0), (2, "Close Lab", 4.0), (None, "Idle Lab", None)]
        assert board["rows"][1]["metrics"] == pytest.approx({"exact": 4 / 6, "mae": 2 / 6})

        status, _, xlsx = server.request("GET", "/api/v1/export.xlsx", tokens["jury"])
        assert status == 200
        sheet = load_workbook(io.BytesIO(xlsx))["count"]
        header = [c.value for c in sheet[1]]
        assert header[:7] == ["Rank", "Team", "Score (sum of ranks)", "Exams counted exactly",
                              "Mean absolute error (nodules)", "Rank on Exams counted exactly",
                              "Rank on Mean absolute error (nodules)"]
        assert sheet.cell(3, 4).number_format == "0.00"
        results = load_workbook(io.BytesIO(xlsx))["Results"]
        notes = " ".join(str(c.value) for c in results["A"] if c.value)
        assert "Nodule count: lowest sum of ranks of Exact and MAE, ties to the higher " \
               "Exams counted exactly" in notes
    finally:
        server.stop()


def write(folder: Path, counts: str) -> Path:
    path = folder / f"sub-{abs(hash(counts))}.csv"
    rows = [f"E{n},{c}" for n, c in enumerate(counts.split(","), start=1)]
    path.write_text("id,count\n" + "\n".join(rows) + "\n")
    return path


def test_a_kinds_own_option_reaches_the_scorer_by_name(toy: kinds.Kind, tmp_path: Path
                                                       ) -> None:
    path = event(tmp_path)
    path.write_text(path.read_text().replace('team_feedback = "score"',
                                             'team_feedback = "score"\nmax_errors = 3'))
    challenge = parse_event(path).challenge("count")
    assert challenge.options == {"max_errors": 3}
    assert challenge.scoring_options().max_errors == 3
