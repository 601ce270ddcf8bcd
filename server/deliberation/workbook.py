"""The results workbook the jury deliberates with, and each board as CSV.

Built from plain data (`server.results.EventResults`) and the boards that `server.ranking.rank`
computed, so the export never ranks on its own. The "Results" sheet follows the layout of
Table 6 of the 2019 paper: teams × challenges, one score per cell, "N.S." for a registered
team without a valid submission, an empty cell for a team not competing, the best in bold;
beside each score the team's rank, "3=" when teams share it, and under the table a note for
every tie saying how the challenge's rule settled it. It prints on one landscape page.

Numbers are stored as numbers and shown as a jury reads them: Dice with 4 decimals, AUC with
3, MSE with 2, surfaces in cm² with 1. Times are the event's, in its time zone (named in the
column's header), as spreadsheet date-times.

Text that a spreadsheet would run as a formula (a team called "=HYPERLINK(...)", a file named
"+1.csv", an error message quoting "-0.5") is stored as text: typed as a string and given the
quote-prefix style, so Excel and LibreOffice show it and never evaluate it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from server import kinds
from server.deliberation.analysis import RankingAnalysis, ranking_analysis
from server.deliberation.stability import stability_by_challenge
from server.isotime import iso
from server.kinds import Kind
from server.leaderboard import final_boards
from server.ranking import Row
from server.results import ChallengeResults, EventResults, SubmissionRecord

NOT_SUBMITTED = "N.S."
FORMULA_STARTS = ("=", "+", "-", "@")
# CSV readers also treat a leading tab or carriage return as the start of a formula.
CSV_FORMULA_STARTS = (*FORMULA_STARTS, "\t", "\r")
# Excel refuses longer cells; an error list this long is cut, with a note.
MAX_CELL_CHARS = 32_000

DATE_TIME = "yyyy-mm-dd hh:mm:ss"
RESERVED_SHEETS = ("Results", "Submissions", "Organizer log", "Ranking analysis")
BOLD = Font(bold=True)
ITALIC = Font(italic=True)


def metric_columns(kind: Kind, rows: Iterable[Row]) -> list[str]:
    present: set[str] = set()
    for row in rows:
        present.update(row.metrics or {})
    return kind.metric_columns(present)


def board_csv(rows: list[Row], kind: Kind) -> str:
    """One board as CSV (UTF-8 text, header row, times in ISO 8601 UTC).

    A team name that a spreadsheet would read as a formula is prefixed with a quote, as
    OWASP advises for CSV; numbers are written as numbers.
    """
    metrics = metric_columns(kind, rows)
    ranks = kind.rank_columns
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["rank", "team", "score", *metrics, *(f"rank_{r}" for r in ranks),
                     "submission_id", "received_at", "submissions", "valid"])
    for row in rows:
        values = row.metrics or {}
        writer.writerow([
            "" if row.rank is None else row.rank,
            _csv_text(row.team),
            "" if row.score is None else _number(row.score),
            *("" if m not in values else _number(values[m]) for m in metrics),
            *(row.ranks.get(r, "") for r in ranks),
            "" if row.submission_id is None else row.submission_id,
            iso(row.received_at) or "",
            row.submissions,
            "yes" if row.valid else "no",
        ])
    return out.getvalue()


@dataclass(frozen=True)
class Tie:
    """Teams of one challenge equal on its score: `ranks` says how the tie rule ordered them
    (equal ranks: still equal after it, they share the rank)."""

    score: float
    ranks: tuple[tuple[str, int], ...]

    @property
    def shared(self) -> bool:
        return len({rank for _, rank in self.ranks}) < len(self.ranks)


def ties(rows: Sequence[Row]) -> list[Tie]:
    """Every group of ranked teams with the same score, best first."""
    groups: dict[float, list[Row]] = {}
    for row in rows:
        if row.valid and row.score is not None and row.rank is not None:
            groups.setdefault(row.score, []).append(row)
    found = []
    for score, group in groups.items():
        if len(group) > 1:
            ordered = sorted(group, key=lambda r: (r.rank or 0, r.team.lower()))
            found.append(Tie(score, tuple((r.team, r.rank or 0) for r in ordered)))
    return sorted(found, key=lambda t: min(rank for _, rank in t.ranks))


def shown_rank(row: Row, rows: Sequence[Row]) -> str | int | None:
    """A rank as printed: 3, or "3=" when another team shares it."""
    if row.rank is None:
        return None
    if sum(1 for other in rows if other.rank == row.rank) > 1:
        return f"{row.rank}="
    return row.rank


def tie_note(title: str, kind: Kind, tie: Tie) -> str:
    """One sentence a jury can read out: who is tied, and how the rule settled it."""
    teams = _and([team for team, _ in tie.ranks])
    score = f"{kind.score_label} {_plain(tie.score, kind.score_format)}"
    rule = kind.tie_rule
    ranks = {rank for _, rank in tie.ranks}
    if len(ranks) == 1:
        equal = f" and on {rule}" if rule else ""
        return f"{title}: {teams} are tied on {score}{equal}; they share rank {min(ranks)}."
    placed = ", ".join(f"{team} {rank}" for team, rank in tie.ranks)
    shared = " (equal ranks are shared)" if tie.shared else ""
    return f"{title}: {teams} are tied on {score}; {rule} orders them: {placed}{shared}."


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _plain(value: float, number_format: str | None) -> str:
    decimals = len(number_format.split(".")[1]) if number_format and "." in number_format \
        else 0
    return f"{value:.{decimals}f}"


def results_table(
    results: EventResults, boards: dict[str, list[Row]]
) -> list[tuple[str, list[tuple[float | str | None, bool]]]]:
    """Table 6 as data: per team (sorted by name), per challenge a (value, is_best) pair.

    The value is the board's score, "N.S." for a registered team with no valid submission,
    None for a team not registered for the challenge.
    """
    table = []
    for team in sorted(results.teams, key=lambda t: (t.lower(), t)):
        cells: list[tuple[float | str | None, bool]] = []
        for challenge in results.challenges:
            if team not in challenge.teams:
                cells.append((None, False))
                continue
            row = next((r for r in boards.get(challenge.slug, []) if r.team == team), None)
            if row is None or not row.valid or row.score is None:
                cells.append((NOT_SUBMITTED, False))
            else:
                cells.append((row.score, row.rank == 1))
        table.append((team, cells))
    return table


def results_workbook(results: EventResults) -> bytes:
    """The workbook of the event's final boards, rank stability and the ranking analysis
    included (`podium export` and `GET /api/v1/export.xlsx`)."""
    boards = final_boards(results)
    analyses = {c.slug: found for c in results.challenges
                if (found := ranking_analysis(c, boards.get(c.slug, []))) is not None}
    return build_workbook(results, boards, stability_by_challenge(results, boards), analyses)


def build_workbook(
    results: EventResults,
    boards: dict[str, list[Row]],
    stability: dict[str, dict[str, float]] | None = None,
    analyses: dict[str, RankingAnalysis] | None = None,
) -> bytes:
    """The .xlsx workbook: Results, one sheet per challenge, Submissions, Organizer log, and
    the ranking analysis when given."""
    zone = ZoneInfo(results.timezone)
    book = Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    _results_sheet(book.create_sheet("Results"), results, boards)
    used = {name.lower() for name in RESERVED_SHEETS}
    for challenge in results.challenges:
        title = _sheet_title(challenge.slug, used)
        _challenge_sheet(book.create_sheet(title), challenge, boards.get(challenge.slug, []),
                         (stability or {}).get(challenge.slug), zone)
    if analyses:
        _analysis_sheet(book.create_sheet("Ranking analysis"), results, analyses)
    _submissions_sheet(book.create_sheet("Submissions"), results, zone)
    _log_sheet(book.create_sheet("Organizer log"), results, zone)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _results_sheet(sheet: Worksheet, results: EventResults, boards: dict[str, list[Row]]) -> None:
    _put(sheet.cell(1, 1), "Teams").font = BOLD
    top = Alignment(wrap_text=True, vertical="top")
    for n, challenge in enumerate(results.challenges):
        column = 2 + 2 * n
        label = f"{challenge.title} ({kinds.of(challenge).score_label})"
        _put(sheet.cell(1, column), label).font = BOLD
        _put(sheet.cell(1, column + 1), "Rank").font = BOLD
        sheet.cell(1, column).alignment = top
        sheet.cell(1, column + 1).alignment = Alignment(vertical="top", horizontal="right")
    row_number = 1
    for row_number, (team, cells) in enumerate(results_table(results, boards), start=2):
        _put(sheet.cell(row_number, 1), team)
        for n, (challenge, (value, best)) in enumerate(zip(results.challenges, cells,
                                                          strict=True)):
            column = 2 + 2 * n
            if value is None:
                continue
            cell = _put(sheet.cell(row_number, column), value)
            cell.alignment = Alignment(horizontal="right")
            if not isinstance(value, str):
                cell.number_format = kinds.of(challenge).score_format
            if best:
                cell.font = BOLD
            rows = boards.get(challenge.slug, [])
            row = next((r for r in rows if r.team == team), None)
            rank = shown_rank(row, rows) if row is not None else None
            if rank is not None:
                rank_cell = _put(sheet.cell(row_number, column + 1), rank)
                rank_cell.alignment = Alignment(horizontal="right")
                if best:
                    rank_cell.font = BOLD
    rules = "; ".join(f"{c.title}: {kinds.of(c).best_words}"
                      for c in results.challenges)
    notes = [
        f"Bold indicates the best result for each competition ({rules}).",
        "N.S. indicates that the team registered but has no valid submission. "
        "Empty cell indicates not competing team.",
        "A rank followed by = is shared with another team.",
    ]
    for challenge in results.challenges:
        notes += [tie_note(challenge.title, kinds.of(challenge), tie)
                  for tie in ties(boards.get(challenge.slug, []))]
    last_column = 1 + 2 * len(results.challenges)
    sheet.column_dimensions["A"].width = 28
    for n in range(len(results.challenges)):
        sheet.column_dimensions[get_column_letter(2 + 2 * n)].width = 26
        sheet.column_dimensions[get_column_letter(3 + 2 * n)].width = 7
    width = 28 + 33 * len(results.challenges)
    for offset, note in enumerate(notes, start=2):
        number = row_number + offset
        _put(sheet.cell(number, 1), note).font = ITALIC
        sheet.cell(number, 1).alignment = top
        if last_column > 1:
            sheet.merge_cells(start_row=number, start_column=1, end_row=number,
                              end_column=last_column)
        # Merged cells do not grow by themselves: room for the wrapped lines.
        sheet.row_dimensions[number].height = 15 * (1 + len(note) // max(20, int(width * 1.1)))
    sheet.freeze_panes = "B2"
    _one_landscape_page(sheet, row_number + 1 + len(notes), last_column)


def _one_landscape_page(sheet: Worksheet, last_row: int, last_column: int) -> None:
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 1
    sheet.print_area = f"A1:{get_column_letter(last_column)}{last_row}"
    sheet.print_options.horizontalCentered = True
    sheet.page_margins.left = sheet.page_margins.right = 0.5
    sheet.page_margins.top = sheet.page_margins.bottom = 0.6
    sheet.oddHeader.center.text = "&B&A"
    sheet.oddFooter.center.text = "&F · printed &D &T"


def _challenge_sheet(sheet: Worksheet, challenge: ChallengeResults, rows: list[Row],
                     stability: dict[str, float] | None, zone: ZoneInfo) -> None:
    kind = kinds.of(challenge)
    metrics = metric_columns(kind, rows)
    ranks = kind.rank_columns
    header = ["Rank", "Team", f"Score ({kind.score_label})",
              *(kind.label(m) for m in metrics),
              *(f"Rank on {kind.label(r)}" for r in ranks), "Tie",
              "Counted submission", f"Received at ({zone.key})", "SHA-256", "Submissions"]
    if stability is not None:
        header.append("Rank held in bootstrap")
    _header(sheet, header)
    formats = [None, None, kind.score_format,
               *(metric.number_format if (metric := kind.metric(m)) else None
                 for m in metrics),
               *(None for _ in ranks), None, None, DATE_TIME, None, None, "0%"]
    notes = {team: note for tie in ties(rows) for team, note in _tie_cells(challenge, tie)}
    by_id = {s.id: s for s in challenge.submissions}
    for number, row in enumerate(rows, start=2):
        values = row.metrics or {}
        counted = by_id.get(row.submission_id) if row.submission_id is not None else None
        cells: list[Any] = [
            row.rank if row.rank is not None else NOT_SUBMITTED,
            row.team,
            row.score,
            *(values.get(m) for m in metrics),
            *(row.ranks.get(r) for r in ranks),
            notes.get(row.team),
            row.submission_id,
            _local(row.received_at, zone),
            counted.sha256 if counted else None,
            row.submissions,
        ]
        if stability is not None:
            cells.append(stability.get(row.team))
        for column, value in enumerate(cells, start=1):
            if value is not None:
                cell = _put(sheet.cell(number, column), value)
                if formats[column - 1] and not isinstance(value, str):
                    cell.number_format = formats[column - 1]
        if row.rank == 1:
            sheet.cell(number, 2).font = BOLD
    _widths(sheet, header)


def _tie_cells(challenge: ChallengeResults, tie: Tie) -> list[tuple[str, str]]:
    """The "Tie" cell of each team of a tie: with whom, and how the rule ordered them."""
    out = []
    rule = kinds.of(challenge).tie_rule
    for team, place in tie.ranks:
        others = [t for t, _ in tie.ranks if t != team]
        sharing = [t for t, r in tie.ranks if r == place and t != team]
        if sharing and len(sharing) == len(others):
            text = f"shares rank {place} with {_and(sharing)}"
        else:
            text = f"same score as {_and(others)}; {rule} places it {place}"
            if sharing:
                text += f", shared with {_and(sharing)}"
        out.append((team, text))
    return out


def _analysis_sheet(sheet: Worksheet, results: EventResults,
                    analyses: dict[str, RankingAnalysis]) -> None:
    """Per challenge, one block under another: each team's bootstrap ranks and its rank under
    every scheme, Kendall's τ between the schemes, and the significance map's p-values."""
    number = 1
    widest = 2
    for challenge in results.challenges:
        analysis = analyses.get(challenge.slug)
        if analysis is None:
            continue
        _put(sheet.cell(number, 1), challenge.title).font = Font(bold=True, size=13)
        _put(sheet.cell(number + 1, 1), f"Ranking: {analysis.ranking}").font = ITALIC
        number += 3
        header = ["Rank", "Team"]
        if analysis.distributions:
            header += [f"Median rank ({analysis.draws} draws)", "95 % interval low",
                       "95 % interval high"]
        header += [s.name + (" — this challenge" if s.current else "")
                   for s in analysis.schemes]
        for column, name in enumerate(header, start=1):
            _put(sheet.cell(number, column), name).font = BOLD
            sheet.cell(number, column).alignment = Alignment(wrap_text=True, vertical="top")
        widest = max(widest, len(header))
        by_team = {d.team: d for d in analysis.distributions}
        for team in analysis.teams:
            number += 1
            current = next((s for s in analysis.schemes if s.current), None)
            cells: list[Any] = [current.ranks.get(team) if current else None, team]
            if analysis.distributions:
                d = by_team.get(team)
                cells += [d.median, d.low, d.high] if d else [None, None, None]
            cells += [s.ranks.get(team) for s in analysis.schemes]
            for column, value in enumerate(cells, start=1):
                if value is not None:
                    _put(sheet.cell(number, column), value)
        if analysis.taus:
            number += 2
            _put(sheet.cell(number, 1), "Kendall's τ between the schemes").font = BOLD
            names = [s.name for s in analysis.schemes]
            taus = {(a, b): t for a, b, t in analysis.taus} | {
                (b, a): t for a, b, t in analysis.taus}
            for column, name in enumerate(names, start=2):
                _put(sheet.cell(number, column), name).font = BOLD
                sheet.cell(number, column).alignment = Alignment(wrap_text=True)
            for a in names:
                number += 1
                _put(sheet.cell(number, 1), a).font = BOLD
                for column, b in enumerate(names, start=2):
                    tau = 1.0 if a == b else taus.get((a, b))
                    if tau is not None:
                        _put(sheet.cell(number, column), tau).number_format = "0.00"
            widest = max(widest, len(names) + 1)
        significance = analysis.significance
        if significance is not None:
            number += 2
            adjusted = ", Holm-adjusted" if significance.adjust == "holm" else ""
            _put(sheet.cell(number, 1),
                 f"p-value that the row team is better than the column team (one-sided "
                 f"Wilcoxon signed-rank on the per-exam {significance.label}{adjusted}); "
                 f"bold: significant at {significance.alpha:g}").font = BOLD
            number += 1
            for column, team in enumerate(significance.teams, start=2):
                _put(sheet.cell(number, column), team).font = BOLD
            for i, team in enumerate(significance.teams):
                number += 1
                _put(sheet.cell(number, 1), team).font = BOLD
                for j, value in enumerate(significance.p[i]):
                    if value is None:
                        continue
                    cell = _put(sheet.cell(number, j + 2), value)
                    cell.number_format = "0.000"
                    if significance.significant(i, j):
                        cell.font = BOLD
            widest = max(widest, len(significance.teams) + 1)
        number += 3
    sheet.column_dimensions["A"].width = 30
    sheet.column_dimensions["B"].width = 24
    for column in range(3, widest + 1):
        sheet.column_dimensions[get_column_letter(column)].width = 18


def _submissions_sheet(sheet: Worksheet, results: EventResults, zone: ZoneInfo) -> None:
    header = ["Id", "Team", "Challenge", "Status", f"Received at ({zone.key})", "Size (bytes)",
              "SHA-256", "File", "Metrics", "Errors", "Warnings"]
    _header(sheet, header)
    records: list[tuple[str, SubmissionRecord]] = [
        (c.slug, s) for c in results.challenges for s in c.submissions
    ]
    records.sort(key=lambda item: (item[1].received_at, item[1].id))
    for number, (slug, record) in enumerate(records, start=2):
        metrics = ", ".join(f"{k}={_number(v)}" for k, v in (record.metrics or {}).items())
        cells: list[Any] = [record.id, record.team, slug, record.status,
                            _local(record.received_at, zone), record.size, record.sha256,
                            record.filename, metrics or None, _errors(record.errors),
                            _errors(record.warnings)]
        for column, value in enumerate(cells, start=1):
            if value is not None:
                _put(sheet.cell(number, column), value)
        sheet.cell(number, 5).number_format = DATE_TIME
    _widths(sheet, header)


def _log_sheet(sheet: Worksheet, results: EventResults, zone: ZoneInfo) -> None:
    header = [f"At ({zone.key})", "Challenge", "Action", "Seconds", "Team", "By", "State after"]
    _header(sheet, header)
    for number, entry in enumerate(sorted(results.log, key=lambda e: e.at), start=2):
        cells: list[Any] = [_local(entry.at, zone), entry.challenge, entry.action,
                            entry.seconds, entry.team, entry.actor, entry.state_after]
        for column, value in enumerate(cells, start=1):
            if value is not None:
                _put(sheet.cell(number, column), value)
        sheet.cell(number, 1).number_format = DATE_TIME
    _widths(sheet, header)


def _errors(errors: Sequence[dict[str, Any]]) -> str | None:
    """Problems (errors or warnings) one per line: "code: message (id X)"."""
    if not errors:
        return None
    text = "\n".join(
        f"{e.get('code', '')}: {e.get('message', '')}"
        + (f" (id {e['id']})" if e.get("id") is not None else "")
        for e in errors
    )
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS] + " … (cut)"


def _put(cell: Cell, value: Any) -> Cell:
    """Write a value; text is always stored as text, never as a formula."""
    if isinstance(value, str):
        cell.value = value
        # openpyxl types any string starting with "=" as a formula; force it back to text.
        cell.data_type = "s"
        if value.startswith(FORMULA_STARTS):
            # Keeps the text literal when someone edits the cell in Excel or LibreOffice.
            cell.quotePrefix = True
    else:
        cell.value = value
    return cell


def _header(sheet: Worksheet, header: Sequence[str]) -> None:
    for column, name in enumerate(header, start=1):
        _put(sheet.cell(1, column), name).font = BOLD
    sheet.freeze_panes = "A2"


def _widths(sheet: Worksheet, header: Sequence[str]) -> None:
    for column, name in enumerate(header, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = max(10, min(40, len(name) + 4))


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A time as the room read it: the event's wall clock, to the second. Spreadsheets have no
    time zones, so the zone is named in the column's header."""
    if moment is None:
        return None
    return moment.astimezone(zone).replace(tzinfo=None, microsecond=0)


def _sheet_title(slug: str, used: set[str]) -> str:
    # Excel compares sheet names without case and caps them at 31 characters.
    base = slug[:31]
    title, n = base, 2
    while title.lower() in used:
        suffix = f" ({n})"
        title, n = base[: 31 - len(suffix)] + suffix, n + 1
    used.add(title.lower())
    return title


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _csv_text(text: str) -> str:
    return "'" + text if text.startswith(CSV_FORMULA_STARTS) else text


def reveal_order(rows: Sequence[Row]) -> list[list[Row]]:
    """The announcement's steps, last place first: one step per rank, teams sharing a rank
    revealed together; teams without a valid submission are not revealed."""
    steps: dict[int, list[Row]] = {}
    for row in rows:
        if row.rank is not None:
            steps.setdefault(row.rank, []).append(row)
    return [steps[r] for r in sorted(steps, reverse=True)]
