"""The results workbook opened with openpyxl, and the boards as CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from server import kinds
from server.deliberation.workbook import (
    board_csv,
    build_workbook,
    reveal_order,
)
from server.leaderboard import final_boards
from server.ranking import Entry, Scored
from server.results import ChallengeResults, EventResults, LogRecord, SubmissionRecord

START = datetime(2019, 10, 14, 8, 0, tzinfo=UTC)  # 10:00 in Paris (summer time)
INJECTED = "=HYPERLINK(\"http://x\",\"y\")"


def _record(n: int, team: str, minutes: int, metrics: dict[str, float] | None,
            errors: tuple[dict[str, str], ...] = (), filename: str = "sub.csv",
            warnings: tuple[dict[str, str], ...] = ()) -> SubmissionRecord:
    return SubmissionRecord(
        id=n, team=team, received_at=START + timedelta(minutes=minutes), sha256=f"{n:064x}",
        size=1000 + n, filename=filename, status="scored" if metrics else "invalid",
        metrics=metrics, errors=errors, warnings=warnings)


def table6_fixture() -> EventResults:
    """Known metrics with known answers: see the assertions below."""
    sarcopenia = ChallengeResults(
        "sarcopenia", "Sarcopenia", "segmentation-surface", "last",
        ("Alpha", "Bravo", "Charlie", "-Delta"),
        (
            _record(1, "Alpha", 5, {"dice": 0.90, "surface_mse": 900.0}),
            # Alpha's last valid one counts: dice 0.95, mse 100 → dice rank 1, mse rank 2.
            _record(2, "Alpha", 30, {"dice": 0.95, "surface_mse": 100.0}),
            _record(3, "Bravo", 31, {"dice": 0.94, "surface_mse": 50.0}),     # 2 + 1 = 3
            _record(4, "Charlie", 32, {"dice": 0.93, "surface_mse": 200.0},  # 3 + 3 = 6
                    warnings=({"code": "orientation_assumed", "message": "read as x = columns",
                               "id": "L3-001"},)),
            _record(5, "-Delta", 33, None, ({"code": "wrong_shape",
                                             "message": "=1+1 mask is 256×256", "id": "L3"},),
                    filename="+masks.zip"),
        ))
    nodules = ChallengeResults(
        "nodules", "Pulmonary nodules", "binary-probability", "best",
        ("Alpha", "Echo", INJECTED),
        (
            _record(10, "Alpha", 40, {"auc": 0.81}),
            _record(11, "Alpha", 50, {"auc": 0.78}),       # best counts: 0.81
            _record(12, "Echo", 45, {"auc": 0.899}),
            _record(13, INJECTED, 46, None, ({"code": "missing_id", "message": "3 ids"},)),
        ))
    edss = ChallengeResults(
        "edss", "Multiple sclerosis", "regression", "last", ("Bravo", "Echo"),
        (_record(20, "Bravo", 60, {"mse": 3.04}), _record(21, "Echo", 61, {"mse": 4.61})))
    log = (LogRecord(START, "sarcopenia", "start", None, None, "organizer", "running"),
           LogRecord(START + timedelta(minutes=20), "sarcopenia", "extend", 120.0, "-Delta",
                     "organizer", "running"))
    return EventResults("JFR 2019", "Europe/Paris", (sarcopenia, nodules, edss),
                        ("Alpha", "Bravo", "Charlie", "-Delta", "Echo", INJECTED, "Foxtrot"), log)


@pytest.fixture
def book() -> dict[str, Worksheet]:
    results = table6_fixture()
    data = build_workbook(results, final_boards(results),
                          {"sarcopenia": {"Alpha": 0.62, "Bravo": 0.55, "Charlie": 1.0}})
    loaded = load_workbook(io.BytesIO(data))
    return {sheet.title: sheet for sheet in loaded.worksheets}


def _rows(sheet: Worksheet) -> list[list[object]]:
    return [[c.value for c in row] for row in sheet.iter_rows()]


def test_boards_use_the_counted_submission() -> None:
    boards = final_boards(table6_fixture())
    sarc = {r.team: r for r in boards["sarcopenia"]}
    assert sarc["Alpha"].submission_id == 2 and sarc["Alpha"].submissions == 2
    assert [(r.team, r.rank, r.score) for r in boards["sarcopenia"]] == [
        ("Alpha", 1, 3.0), ("Bravo", 2, 3.0), ("Charlie", 3, 6.0), ("-Delta", None, None)]
    assert {r.team: r.submission_id for r in boards["nodules"]}["Alpha"] == 10


def test_sheets(book: dict[str, Worksheet]) -> None:
    assert list(book) == ["Results", "sarcopenia", "nodules", "edss", "Submissions",
                          "Organizer log"]


def test_results_sheet_is_table_6(book: dict[str, Worksheet]) -> None:
    rows = _rows(book["Results"])
    assert rows[0] == ["Teams", "Sarcopenia (sum of ranks)", "Rank", "Pulmonary nodules (AUC)",
                       "Rank", "Multiple sclerosis (MSE)", "Rank"]
    body = {r[0]: r[1:] for r in rows[1:8]}
    # All event teams, sorted by name, whatever their challenges.
    assert [r[0] for r in rows[1:8]] == ["-Delta", "=HYPERLINK(\"http://x\",\"y\")", "Alpha",
                                         "Bravo", "Charlie", "Echo", "Foxtrot"]
    assert body["Alpha"] == [3, 1, 0.81, 2, None, None]
    assert body["Bravo"] == [3, 2, None, None, 3.04, 1]
    assert body["Charlie"] == [6, 3, None, None, None, None]
    assert body["-Delta"] == ["N.S.", None, None, None, None, None]
    assert body[INJECTED] == [None, None, "N.S.", None, None, None]
    assert body["Echo"] == [None, None, 0.899, 1, 4.61, 2]
    assert body["Foxtrot"] == [None] * 6
    sheet = book["Results"]
    bold = {(c.row, c.column) for row in sheet.iter_rows(min_row=2, max_row=8) for c in row
            if c.font.bold and c.column > 1}
    # Alpha wins sarcopenia on the Dice tie-break, Echo nodules, Bravo EDSS.
    assert bold == {(4, 2), (4, 3), (7, 4), (7, 5), (5, 6), (5, 7)}
    notes = [r[0] for r in rows[8:] if r[0]]
    assert any(str(n).startswith("Bold indicates the best result") for n in notes)
    assert any("N.S. indicates" in str(n) and "Empty cell indicates not competing team" in str(n)
               for n in notes)
    # Alpha and Bravo have the same sum of ranks: the note says so and how it was settled.
    assert "Sarcopenia: Alpha and Bravo are tied on sum of ranks 3; the higher Dice orders " \
        "them: Alpha 1, Bravo 2." in notes


def test_results_are_shown_as_the_jury_reads_them(book: dict[str, Worksheet]) -> None:
    sheet = book["Results"]
    alpha = next(row for row in sheet.iter_rows(min_row=2) if row[0].value == "Alpha")
    assert [alpha[1].number_format, alpha[3].number_format] == ["0", "0.000"]
    bravo = next(row for row in sheet.iter_rows(min_row=2) if row[0].value == "Bravo")
    assert bravo[5].number_format == "0.00"
    # Stored unrounded: the format shows 4 decimals of Dice, the cell keeps them all.
    sarcopenia = book["sarcopenia"]
    header = [c.value for c in sarcopenia[1]]
    dice = sarcopenia.cell(2, header.index("Dice") + 1)
    assert dice.value == 0.95 and dice.number_format == "0.0000"
    assert sarcopenia.cell(2, header.index("Surface MSE (mm²)²") + 1).number_format == "#,##0"
    nodules = book["nodules"]
    auc = nodules.cell(2, [c.value for c in nodules[1]].index("AUC") + 1)
    assert auc.value == 0.899 and auc.number_format == "0.000"
    edss = book["edss"]
    assert edss.cell(2, [c.value for c in edss[1]].index("MSE") + 1).number_format == "0.00"


def test_the_results_sheet_prints_on_one_landscape_page(book: dict[str, Worksheet]) -> None:
    sheet = book["Results"]
    assert sheet.page_setup.orientation == "landscape"
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert (sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight) == (1, 1)
    last = max(row[0].row for row in sheet.iter_rows() if row[0].value is not None)
    assert sheet.print_area == f"'Results'!$A$1:$G${last}"
    # Notes are wrapped across the table, not one long line running off the page.
    note = next(r for r in sheet.iter_rows() if str(r[0].value).startswith("Bold indicates"))
    assert note[0].alignment.wrap_text
    assert any(str(m).startswith(f"A{note[0].row}:G") for m in sheet.merged_cells.ranges)


def test_shared_ranks_and_ties_broken_by_the_rule() -> None:
    sarcopenia = ChallengeResults(
        "sarcopenia", "Sarcopenia", "segmentation-surface", "last",
        ("A", "B", "C", "D"),
        (_record(1, "A", 1, {"dice": 0.95, "surface_mse": 300.0}),   # 1 + 3 = 4
         _record(2, "B", 2, {"dice": 0.94, "surface_mse": 300.0}),   # 2 + 3 = 5
         _record(3, "C", 3, {"dice": 0.90, "surface_mse": 100.0}),   # 3 + 1 = 4
         _record(4, "D", 4, {"dice": 0.90, "surface_mse": 100.0})))  # 3 + 1 = 4
    nodules = ChallengeResults(
        "nodules", "Nodules", "binary-probability", "last", ("A", "B", "C"),
        (_record(5, "A", 1, {"auc": 0.9}), _record(6, "B", 2, {"auc": 0.9}),
         _record(7, "C", 3, {"auc": 0.7})))
    results = EventResults("E", "UTC", (sarcopenia, nodules), ("A", "B", "C", "D"))
    boards = final_boards(results)
    assert [(r.team, r.rank) for r in boards["sarcopenia"]] == [
        ("A", 1), ("C", 2), ("D", 2), ("B", 4)]
    loaded = load_workbook(io.BytesIO(build_workbook(results, boards)))
    rows = _rows(loaded["Results"])
    body = {r[0]: r[1:] for r in rows[1:5]}
    assert body["A"] == [4, 1, 0.9, "1="] and body["B"] == [5, 4, 0.9, "1="]
    assert body["C"] == [4, "2=", 0.7, 3] and body["D"] == [4, "2=", None, None]
    notes = [str(r[0]) for r in rows[5:] if r[0]]
    assert "Sarcopenia: A, C and D are tied on sum of ranks 4; the higher Dice orders " \
        "them: A 1, C 2, D 2 (equal ranks are shared)." in notes
    assert "Nodules: A and B are tied on AUC 0.900; they share rank 1." in notes
    sheet = _rows(loaded["sarcopenia"])
    tie = {r[1]: r[sheet[0].index("Tie")] for r in sheet[1:]}
    assert tie["A"] == "same score as C and D; the higher Dice places it 1"
    assert tie["C"] == "same score as A and D; the higher Dice places it 2, shared with D"
    assert tie["B"] is None
    nodule_ties = {r[1]: r[_rows(loaded["nodules"])[0].index("Tie")]
                   for r in _rows(loaded["nodules"])[1:]}
    assert nodule_ties == {"A": "shares rank 1 with B", "B": "shares rank 1 with A", "C": None}


def test_challenge_sheet(book: dict[str, Worksheet]) -> None:
    rows = _rows(book["sarcopenia"])
    header = rows[0]
    assert header[:3] == ["Rank", "Team", "Score (sum of ranks)"]
    for column in ("Dice", "Surface MSE (mm²)²", "Rank on Dice", "Rank on Surface MSE (mm²)²",
                   "Counted submission", "Received at (Europe/Paris)", "SHA-256", "Submissions",
                   "Rank held in bootstrap"):
        assert column in header
    by_team = {r[1]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    alpha = by_team["Alpha"]
    assert alpha["Rank"] == 1 and alpha["Dice"] == 0.95 and alpha["Surface MSE (mm²)²"] == 100.0
    assert alpha["Rank on Dice"] == 1 and alpha["Rank on Surface MSE (mm²)²"] == 2
    assert alpha["Counted submission"] == 2 and alpha["SHA-256"] == f"{2:064x}"
    # The room's wall clock (Paris, summer time), as a date-time the spreadsheet can sort.
    assert alpha["Received at (Europe/Paris)"] == datetime(2019, 10, 14, 10, 30)
    assert alpha["Submissions"] == 2 and alpha["Rank held in bootstrap"] == 0.62
    assert by_team["-Delta"]["Rank"] == "N.S." and by_team["-Delta"]["Submissions"] == 1
    assert "Rank held in bootstrap" not in _rows(book["nodules"])[0]


def test_submissions_and_log(book: dict[str, Worksheet]) -> None:
    rows = _rows(book["Submissions"])
    header = rows[0]
    records = [dict(zip(header, r, strict=True)) for r in rows[1:]]
    assert len(records) == 11
    # Oldest first, across challenges: the order things happened in the room.
    assert [r["Id"] for r in records] == [1, 2, 3, 4, 5, 10, 12, 13, 11, 20, 21]
    delta = next(r for r in records if r["Team"] == "-Delta")
    assert delta["Status"] == "invalid" and delta["File"] == "+masks.zip"
    assert delta["Errors"] == "wrong_shape: =1+1 mask is 256×256 (id L3)"
    charlie = next(r for r in records if r["Team"] == "Charlie")
    assert charlie["Warnings"] == "orientation_assumed: read as x = columns (id L3-001)"
    assert delta["Warnings"] is None
    assert delta["Size (bytes)"] == 1005 and delta["Challenge"] == "sarcopenia"
    assert delta["Received at (Europe/Paris)"] == datetime(2019, 10, 14, 10, 33)
    log = _rows(book["Organizer log"])
    assert log[0][:3] == ["At (Europe/Paris)", "Challenge", "Action"]
    assert log[2][:5] == [datetime(2019, 10, 14, 10, 20), "sarcopenia", "extend", 120, "-Delta"]
    assert book["Organizer log"].cell(2, 1).number_format == "yyyy-mm-dd hh:mm:ss"


def test_no_cell_is_a_formula(book: dict[str, Worksheet]) -> None:
    texts = []
    for sheet in book.values():
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value[:1] in "=+-@":
                    texts.append(cell.value)
                    assert cell.quotePrefix
    assert INJECTED in texts and "-Delta" in texts and "+masks.zip" in texts


def test_board_csv() -> None:
    boards = final_boards(table6_fixture())
    rows = list(csv.DictReader(io.StringIO(board_csv(boards["sarcopenia"],
                                                     kinds.get("segmentation-surface")))))
    assert [r["team"] for r in rows] == ["Alpha", "Bravo", "Charlie", "'-Delta"]
    assert rows[0]["rank"] == "1" and rows[0]["score"] == "3" and rows[0]["dice"] == "0.95"
    assert rows[0]["rank_surface_mse"] == "2" and rows[0]["received_at"] == \
        "2019-10-14T08:30:00.000Z"
    assert rows[3]["rank"] == "" and rows[3]["valid"] == "no"
    auc = kinds.get("binary-probability")
    nodules = list(csv.reader(io.StringIO(board_csv(boards["nodules"], auc))))
    assert nodules[0][:4] == ["rank", "team", "score", "auc"]
    assert nodules[-1][1] == "'" + INJECTED


def test_reveal_goes_from_last_to_first() -> None:
    results = table6_fixture()
    boards = final_boards(results)
    steps = reveal_order(boards["sarcopenia"])
    assert [[r.team for r in step] for step in steps] == [["Charlie"], ["Bravo"], ["Alpha"]]
    tied = reveal_order(kinds.get("regression").rank([
        Entry(t, Scored(n, t, START, {"mse": m}))
        for n, (t, m) in enumerate([("a", 1.0), ("b", 2.0), ("c", 2.0), ("d", 3.0)])]))
    assert [[r.team for r in step] for step in tied] == [["d"], ["b", "c"], ["a"]]
