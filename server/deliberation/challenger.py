"""challengeR's long table (`podium export --challenger FILE.csv`): the per-exam values of the
counted submissions, one row per task × exam × team, as challengeR's `as.challenge` reads it
(`by = "task", algorithm = "algorithm", case = "case", value = "value"`).

A task is a challenge × metric with per-exam values (`sarcopenia:dice`); `case` is the exam
id, `algorithm` the team, `value` the per-exam value, empty (NA in R) where an exam has none.
Teams whose counted submission kept no details are left out; so are challenges of a kind
without per-exam values (binary-probability: an AUC is a figure of the whole set).
"""

from __future__ import annotations

import csv
import io

from server import kinds
from server.deliberation.workbook import _csv_text, _number
from server.leaderboard import final_boards
from server.results import EventResults

COLUMNS = ("task", "case", "algorithm", "value")


def challenger_rows(results: EventResults) -> list[tuple[str, str, str, float | None]]:
    """(task, case, algorithm, value) for every challenge, metric, team and exam."""
    boards = final_boards(results)
    out: list[tuple[str, str, str, float | None]] = []
    for challenge in results.challenges:
        kind = kinds.of(challenge)
        if not kind.case_metrics:
            continue
        details = challenge.counted_details(boards.get(challenge.slug, []))
        for metric in kind.case_metrics:
            for team, detail in details.items():
                values = kind.case_values(detail) or {}
                for exam, value in zip(detail["ids"], values.get(metric, ()), strict=False):
                    out.append((f"{challenge.slug}:{metric}", str(exam), team,
                                None if value is None else float(value)))
    return out


def challenger_csv(results: EventResults) -> str:
    """The long table as CSV text (UTF-8, a header row; a team name a spreadsheet would run
    as a formula is quoted, as in the boards' CSV)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for task, case, algorithm, value in challenger_rows(results):
        writer.writerow([task, case, _csv_text(algorithm),
                         "" if value is None else _number(value)])
    return out.getvalue()
