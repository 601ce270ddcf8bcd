"""How much of a spreadsheet a two-column table may take, and a streaming look at a sheet's
extent before openpyxl builds its rows.

An .xlsx is a zip of XML: 500 KB can declare a sheet of 16,384 columns × 1,048,576 rows, or
hold millions of cells, and openpyxl pads every row to the declared width. The limits here
follow from the table the challenge expects (a few times its rows), so reading a workbook
costs what reading the expected table costs, whatever the file declares.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

from server.evaluators.result import Invalid, Problem

SHEET_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
# Rows beyond the expected ones: a header, notes, blank lines a spreadsheet keeps.
SLACK_ROWS = 100
ROWS_PER_EXPECTED = 4
# Two columns are needed; a few more are read so that the refusal can name them.
MAX_COLUMNS = 16
CELLS_PER_ROW = 4
# Bytes of XML a part may take: room for styles and themes, plus a generous size per cell.
PART_FLOOR = 8 * 1024**2
BYTES_PER_CELL = 256
MAX_PARTS = 500
# Without an expected size (the organisers' own truth files): the old generous bounds.
DEFAULT_ROWS = 1_000_000
FEED = 64 * 1024

_REF = re.compile(r"([A-Z]{1,3})?(\d+)?")


@dataclass(frozen=True)
class SheetLimits:
    rows: int
    columns: int
    cells: int
    part_bytes: int  # any one XML part, once expanded
    total_bytes: int  # the whole workbook, once expanded
    parts: int = MAX_PARTS

    @classmethod
    def for_rows(cls, expected_rows: int | None) -> SheetLimits:
        """Limits for a table that should hold `expected_rows` rows (None: unknown)."""
        rows = DEFAULT_ROWS if expected_rows is None else \
            ROWS_PER_EXPECTED * max(0, expected_rows) + SLACK_ROWS
        cells = rows * CELLS_PER_ROW
        part = PART_FLOOR + cells * BYTES_PER_CELL
        if expected_rows is None:
            part = 256 * 1024**2
        return cls(rows=rows, columns=MAX_COLUMNS, cells=cells, part_bytes=part,
                   total_bytes=4 * part)


@dataclass(frozen=True)
class Extent:
    """The last row and column holding a value (1-based; 0 for an empty sheet)."""

    rows: int
    columns: int


def column_number(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number


def column_letters(number: int) -> str:
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def scan_extent(stream: IO[bytes], name: str, limits: SheetLimits) -> Extent:
    """Streams a worksheet's XML and returns where its values end; refuses, as soon as it is
    seen, a row, column or cell count beyond `limits`. Element by element, so a single row of
    millions of cells is stopped at the limit, not after it has been built."""
    parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
    row_tag, cell_tag = f"{SHEET_NS}row", f"{SHEET_NS}c"
    value_tags = {f"{SHEET_NS}v", f"{SHEET_NS}is"}
    row = column = elements = 0
    last_row = last_column = 0
    valued = False
    try:
        while chunk := stream.read(FEED):
            parser.feed(chunk)
            for item in parser.read_events():
                event, element = item[0], item[-1]
                if not isinstance(element, Element):  # only start/end events are asked for
                    continue
                tag = element.tag
                if event == "start":
                    if tag in (row_tag, cell_tag):
                        # Counted as they open: a row of a million cells stops at the limit.
                        elements += 1
                        if elements > limits.cells:
                            raise Invalid(_too_many_cells(name, limits))
                    if tag == row_tag:
                        row = _index(element.get("r"), row + 1)
                        column = 0
                    elif tag == cell_tag:
                        letters, number = _split(element.get("r"))
                        column = column_number(letters) if letters else column + 1
                        if number:
                            row = number
                        valued = False
                    elif tag in value_tags:
                        valued = True
                    continue
                if tag == cell_tag:
                    if valued or element.text:
                        _check_cell(name, row, column, limits)
                        last_row, last_column = max(last_row, row), max(last_column, column)
                    element.clear()
                elif tag == row_tag:
                    element.clear()
        parser.close()
    except ParseError as exc:
        raise Invalid(Problem(
            "unreadable", f"{name} cannot be read as an .xlsx workbook (damaged sheet: {exc})"
        )) from exc
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise Invalid(Problem(
            "unreadable", f"{name} is not a valid .xlsx workbook (damaged or truncated)"
        )) from exc
    return Extent(last_row, last_column)


def _index(text: str | None, default: int) -> int:
    return int(text) if text and text.isdigit() else default


def _split(ref: str | None) -> tuple[str, int]:
    match = _REF.fullmatch(ref or "")
    if match is None:
        return "", 0
    letters, digits = match.groups()
    return letters or "", int(digits) if digits else 0


def _check_cell(name: str, row: int, column: int, limits: SheetLimits) -> None:
    if column > limits.columns:
        raise Invalid(Problem(
            "too_many_columns",
            f"{name}: cell {column_letters(column)}{row} holds a value, beyond column "
            f"{column_letters(limits.columns)}; send two columns, id then value",
        ))
    if row > limits.rows:
        raise Invalid(Problem(
            "too_large",
            f"{name}: row {row} holds a value, but a table for this challenge has at most "
            f"{limits.rows} rows; delete the rows below the table, or send a CSV",
        ))


def _too_many_cells(name: str, limits: SheetLimits) -> Problem:
    return Problem(
        "too_large",
        f"{name}: the sheet holds more than {limits.cells} cells and rows, far more than this "
        "challenge's table needs; copy the two columns (id, value) into a new workbook, or "
        "send a CSV",
    )
