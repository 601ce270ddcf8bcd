"""Two-column tables (id, value) as spreadsheets really write them: CSV dialects and xlsx.

Everything is read as text and converted here, because pandas' defaults silently misread
French CSVs (decimal comma), turn "NA" into NaN and "001" into 1.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from server.evaluators.archive import check_directory
from server.evaluators.result import Invalid, Problem
from server.evaluators.sheet import SheetLimits, scan_extent

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
WORKBOOK_SUFFIXES = (".xlsx",)
TABLE_SUFFIXES = TEXT_SUFFIXES + WORKBOOK_SUFFIXES

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
MAX_ROWS = 1_000_000

SEND_INSTEAD = "send a .csv (id,value) or an .xlsx workbook"

REFUSED = {
    ".xls": "is a legacy Excel 97-2003 workbook; save it as .xlsx (Excel Workbook) or as CSV",
    ".xlsm": "is a macro-enabled workbook, which is refused; save it as .xlsx or as CSV",
    ".xlsb": "is a binary Excel workbook; save it as .xlsx or as CSV",
    ".xltx": "is an Excel template; save it as .xlsx or as CSV",
    ".xltm": "is a macro-enabled template, which is refused; save it as .xlsx or as CSV",
    ".ods": "is an OpenDocument spreadsheet; save it as .xlsx (Excel 2007-365) or as CSV",
    ".numbers": "is a Numbers document; export it as CSV or Excel (.xlsx)",
    ".json": "is JSON; " + SEND_INSTEAD,
    ".parquet": "is Parquet; " + SEND_INSTEAD,
}

# Separators a spreadsheet user may have picked instead, named for messages.
OTHER_SEPARATORS = {" ": "spaces", "|": "vertical bars (|)", ":": "colons (:)"}

NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
_NUMBER = re.compile(r"([+-]?)(\d[\d.,]*|[.,]\d+)(?:[eE]([+-]?\d+))?")
_INTEGRAL = re.compile(r"(\d+)[.,]0+")
# A number with a point as its only mark, as parse_number reads it; float() reads it alike.
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
# One separator followed by exactly three digits: 12,827 is 12827 with a thousands separator
# or 12.827 with a decimal comma; nothing in the number itself tells which.
_AMBIGUOUS = re.compile(r"([+-]?)([1-9]\d{0,2})[.,](\d{3})")
_HTML = re.compile(rb"^\s*<(!doctype\s+html|html|table|meta|head|body|\?xml[^>]*>\s*<html)",
                   re.IGNORECASE)
_EXCEL_TEXT = re.compile(r'="(.*)"')
_SPACES = str.maketrans("", "", " \u00a0\u202f\u2009'")


@dataclass(frozen=True)
class TableRow:
    row: int  # the row number a spreadsheet shows (1-based, header included)
    id: str
    text: str  # the value as written, for messages
    value: float | None  # None when the text is not a number; may be NaN or ±inf
    # The other reading of an ambiguous number ("12,827": value 12.827, alternative 12827).
    alternative: float | None = None


@dataclass(frozen=True)
class Table:
    name: str
    rows: tuple[TableRow, ...]
    # The first row when its value is not a number: a header, unless its id is a real id.
    header: TableRow | None = None


def suffix_of(name: str) -> str:
    lower = name.lower()
    return ".nii.gz" if lower.endswith(".nii.gz") else Path(lower).suffix


def parse_number(text: str) -> float | None:
    """A number as a spreadsheet in any locale writes it, or None.

    Decimal point or comma; with both, the rightmost one is the decimal separator and the
    other groups thousands. A lone comma is a decimal comma ("0,73" → 0.73), because that is
    what French Excel writes and a probability or EDSS never needs a thousands separator.
    """
    s = text.strip().translate(_SPACES)
    if not s:
        return None
    if s.lower() in NON_FINITE:
        return float(s)
    m = _NUMBER.fullmatch(s)
    if m is None:
        return None
    sign, mantissa, exponent = m.groups()
    commas, dots = mantissa.count(","), mantissa.count(".")
    if commas and dots:
        decimal = "," if mantissa.rfind(",") > mantissa.rfind(".") else "."
        if mantissa.count(decimal) > 1:
            return None
        grouping = "." if decimal == "," else ","
        mantissa = mantissa.replace(grouping, "").replace(decimal, ".")
    elif commas > 1 or dots > 1:
        mark = "," if commas else "."
        head, *groups = mantissa.split(mark)
        if not head or any(len(g) != 3 for g in groups):
            return None
        mantissa = mantissa.replace(mark, "")
    else:
        mantissa = mantissa.replace(",", ".")
    try:
        return float(f"{sign}{mantissa}" + (f"e{exponent}" if exponent else ""))
    except ValueError:  # pragma: no cover - the regex admits only valid numbers
        return None


def grouped_reading(text: str) -> float | None:
    """The thousands-separator reading of a number that could also be a decimal one.

    "12,827" and "12.827" → 12827.0 (parse_number reads them as 12.827); None when the text
    has only one reading ("0,827", "1234,5", "12,8", "12 827").
    """
    m = _AMBIGUOUS.fullmatch(text.strip())
    if m is None:
        return None
    sign, head, tail = m.groups()
    return float(f"{sign}{head}{tail}")


def normalise_id(text: str) -> str:
    """An id as text: trimmed, Excel's ="0042" unwrapped, "12.0" from a number cell → "12"."""
    s = text.strip()
    m = _EXCEL_TEXT.fullmatch(s)
    if m:
        s = m.group(1).strip()
    m = _INTEGRAL.fullmatch(s)
    if m:
        s = m.group(1)
    return s


def read_table(path: Path, name: str | None = None, expected_rows: int | None = None
               ) -> Table:
    """Read an id,value table from disk; raises Invalid for a file that is not a usable table.

    `name` is how messages call the file (the name the team uploaded); by default its own.
    `expected_rows` (the truth's size) bounds what a workbook may make the reader do.
    """
    name = name or path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Invalid(
            Problem("unreadable", f"{name}: cannot be read ({exc.strerror})")
        ) from exc
    return parse_table(data, name, expected_rows)


def parse_table(data: bytes, name: str, expected_rows: int | None = None) -> Table:
    """Read an id,value table from bytes; the format comes from the name's suffix."""
    suffix = suffix_of(name)
    _refuse_non_table(data, name, suffix)
    if _is_workbook(data, suffix):
        # A workbook renamed .csv is read as what it is: the scores cannot differ.
        return _workbook_table(data, name, SheetLimits.for_rows(expected_rows))
    if suffix in TEXT_SUFFIXES:
        return _parse_text(data, name)
    raise Invalid(Problem(
        "unsupported_format", f"{name}: {suffix or 'no extension'} is not a table; {SEND_INSTEAD}"
    ))


@dataclass(frozen=True)
class Cell:
    """One cell of a table of several columns: its text as written (trimmed), and its value
    as a number, read as in a two-column table (None when it is not one; may be NaN or ±inf).
    """

    text: str
    value: float | None


@dataclass(frozen=True)
class Record:
    row: int  # the row number a spreadsheet shows (1-based, header included)
    cells: tuple[Cell, ...]  # trailing empty cells dropped


def parse_records(data: bytes, name: str, expected_rows: int | None = None, *,
                  columns: int, what: str) -> list[Record]:
    """The non-blank rows of a table of `columns` columns (candidates, nodules), read as a
    two-column table is: the same formats, refusals, encodings, separators, decimal marks and
    workbook limits. `what` names the columns in messages ("id,x,y,z,probability"). Headers
    and the meaning of each column are the caller's."""
    suffix = suffix_of(name)
    _refuse_non_table(data, name, suffix)
    raw: Sequence[tuple[int, Sequence[object]]]
    if _is_workbook(data, suffix):
        raw = _workbook_records(data, name, SheetLimits.for_rows(expected_rows))
        text_cells = False
    elif suffix in TEXT_SUFFIXES:
        lines, sample = _text_records(data, name, what)
        if not any(len(_fields(list(rec))) >= 2 for _, rec in lines):
            _refuse_other_separator(sample, name, columns)
        raw, text_cells = lines, True
    else:
        raise Invalid(Problem(
            "unsupported_format",
            f"{name}: {suffix or 'no extension'} is not a table; send a .csv ({what}) or an "
            ".xlsx workbook"))
    out: list[Record] = []
    for row, record in raw:
        cells = list(record)
        texts = _fields([c if isinstance(c, str) else _cell_text(c) for c in cells])
        if not any(t.strip() for t in texts):
            continue
        out.append(Record(row, tuple(
            Cell(text.strip(), _cell_value(cells[k], text.strip(), text_cells))
            if not text_cells or _PLAIN_NUMBER.fullmatch(text) is None
            else Cell(text, float(text))  # what parse_number gives, sooner: tables are long
            for k, text in enumerate(texts))))
    return out


def _is_workbook(data: bytes, suffix: str) -> bool:
    return suffix in WORKBOOK_SUFFIXES or (suffix in TEXT_SUFFIXES
                                           and data.startswith(ZIP_MAGIC))


def _refuse_non_table(data: bytes, name: str, suffix: str) -> None:
    """Web pages, legacy and encrypted workbooks, and the formats of REFUSED."""
    if _HTML.match(data[:4096].lstrip(b"\xef\xbb\xbf")):
        raise Invalid(Problem(
            "unsupported_format",
            f"{name} is a web page (HTML, as a web tool's 'Export to Excel' writes it), not "
            f"{'a legacy Excel workbook' if suffix == '.xls' else 'a table file'}; open it in "
            "Excel or LibreOffice and save it as .xlsx (Excel Workbook) or CSV",
        ))
    if suffix in REFUSED:
        raise Invalid(Problem("unsupported_format", f"{name} {REFUSED[suffix]}"))
    if data.startswith(OLE_MAGIC):
        # Excel writes both .xls and password-protected .xlsx as an OLE compound file.
        if suffix == ".xlsx":
            raise Invalid(Problem(
                "encrypted",
                f"{name} is password-protected (encrypted); save it without a password, "
                "or export it as CSV",
            ))
        raise Invalid(Problem(
            "unsupported_format",
            f"{name} is a legacy Excel .xls or encrypted workbook; "
            "save it as .xlsx without a password, or as CSV",
        ))


def _decode(data: bytes, name: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise Invalid(Problem("unreadable", f"{name}: broken UTF-16 text")) from exc
    if b"\x00" in data:
        raise Invalid(Problem(
            "unreadable", f"{name} is not a text file; {SEND_INSTEAD}"
        ))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Windows-1252 leaves five bytes undefined; latin-1 maps those and never fails.
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def _fields(record: list[str]) -> list[str]:
    # Excel pads rows with empty cells up to the widest row ("0,73;").
    while record and not record[-1].strip():
        record.pop()
    return record


def _sniff_delimiter(lines: list[str]) -> str:
    best, best_score = ",", -1
    for delimiter in (";", "\t", ","):
        score = sum(
            len(_fields(rec)) >= 2 for rec in csv.reader(lines, delimiter=delimiter)
        )
        # Ties go to ';' first: "0042;0,73" splits in two on ',' too, wrongly.
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _parse_text(data: bytes, name: str) -> Table:
    records, sample = _text_records(data, name, "id,value")
    if not any(len(_fields(list(rec))) >= 2 for _, rec in records):
        _refuse_other_separator(sample, name)
    return _build(name, ((row, rec) for row, rec in records), text_cells=True)


def _text_records(data: bytes, name: str, what: str
                  ) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """The CSV records of a text table with their line numbers, and the sample of lines its
    separator was detected from."""
    text = _decode(data, name)
    sample = [line for line in text.splitlines()[:200] if line.strip()]
    if not sample:
        raise Invalid(Problem("empty", f"{name} is empty; it needs one row per id: {what}"))
    delimiter = _sniff_delimiter(sample)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []
    try:
        for record in reader:
            records.append((reader.line_num, record))
            if len(records) > MAX_ROWS:
                raise Invalid(Problem("too_large", f"{name} has more than {MAX_ROWS} rows"))
    except csv.Error as exc:
        raise Invalid(Problem(
            "unreadable", f"{name}: line {reader.line_num} cannot be read as CSV ({exc})"
        )) from exc
    return records, sample


def _refuse_other_separator(lines: list[str], name: str, columns: int = 2) -> None:
    """A table whose columns no reader's separator splits: say which separator it used."""
    for mark, label in OTHER_SEPARATORS.items():
        split = [line.strip().split() if mark == " " else line.strip().split(mark)
                 for line in lines]
        if sum(len(parts) == columns and all(parts) for parts in split) >= max(
                1, 0.8 * len(lines)):
            raise Invalid(Problem(
                "unsupported_separator",
                f"{name}: its columns are separated by {label} ({lines[0].strip()[:40]!r}); "
                "columns are read when separated by commas, semicolons or tabs: save it as "
                "CSV from your spreadsheet, or with pandas' to_csv (comma) or R's write.csv",
            ))


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _workbook_table(data: bytes, name: str, limits: SheetLimits) -> Table:
    """The first worksheet's table; when it holds no values and another sheet does, the
    problem names both sheets."""
    try:
        table = _parse_workbook(data, name, limits)
    except Invalid as exc:
        if {p.code for p in exc.problems} & {"empty", "too_many_columns"}:
            hint = _sheet_hint(data, name)
            if hint is not None:
                raise Invalid(hint) from exc
        raise
    if not any(row.value is not None for row in table.rows):
        hint = _sheet_hint(data, name)
        if hint is not None:
            raise Invalid(hint)
    return table


def _sheet_hint(data: bytes, name: str, probe_rows: int = 50) -> Problem | None:
    """'the first sheet, 'Notes', holds no values; they seem to be on sheet 'Predictions''."""
    import openpyxl  # noqa: PLC0415

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True,
                                          keep_links=False)
    except Exception:  # noqa: BLE001 - the first reading already said what is wrong
        return None
    try:
        sheets = book.worksheets
        if len(sheets) < 2:
            return None
        for sheet in sheets[1:]:
            # Two columns are enough to recognise the table; never pad to a declared width.
            for cells in sheet.iter_rows(max_row=probe_rows, max_col=8, values_only=True):
                values = [c for c in cells if c is not None and str(c).strip()]
                if len(values) == 2 and (
                    isinstance(values[1], int | float) and not isinstance(values[1], bool)
                    or isinstance(values[1], str) and parse_number(values[1]) is not None
                ):
                    return Problem(
                        "wrong_sheet",
                        f"{name}: its first sheet, {sheets[0].title!r}, which is the one read, "
                        f"holds no id,value rows; they seem to be on sheet {sheet.title!r}. "
                        "Move that sheet first (or delete the others), or save it as CSV",
                    )
        return None
    finally:
        book.close()


def _parse_workbook(data: bytes, name: str, limits: SheetLimits | None = None) -> Table:
    """A workbook's first sheet as an id,value table."""
    return _build(name, _workbook_records(data, name, limits), text_cells=False)


def _workbook_records(data: bytes, name: str, limits: SheetLimits | None = None
                      ) -> list[tuple[int, tuple[object, ...]]]:
    """A workbook's first sheet's rows, read within `limits` (derived from the table
    expected): the member count from the zip's end record, every part's expanded size from
    its directory, then the sheet's extent by streaming its XML, and only then its rows, up
    to that extent."""
    limits = limits or SheetLimits.for_rows(None)
    stream = io.BytesIO(data)
    try:
        check_directory(stream, name, limits.parts)
        archive = zipfile.ZipFile(stream)
    except zipfile.BadZipFile as exc:
        raise Invalid(Problem(
            "unreadable", f"{name} is not a valid .xlsx workbook (damaged or truncated)"
        )) from exc
    with archive:
        names = set(archive.namelist())
        if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
            raise Invalid(Problem(
                "unsupported_format", f"{name} is a zip archive, not an Excel workbook; "
                + SEND_INSTEAD,
            ))
        _check_parts(archive, name, limits)
        if "vnd.ms-excel.sheet.macroEnabled" in archive.read("[Content_Types].xml").decode(
            "utf-8", "replace"
        ) or "xl/vbaProject.bin" in names:
            raise Invalid(Problem("unsupported_format", f"{name} {REFUSED['.xlsm']}"))
    import openpyxl  # noqa: PLC0415 - heavy import, only for workbooks

    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and extensions it drops; none matter for values.
            warnings.simplefilter("ignore")
            book = openpyxl.load_workbook(
                io.BytesIO(data), read_only=True, data_only=True, keep_links=False
            )
            try:
                if not book.worksheets:
                    raise Invalid(Problem("empty", f"{name} has no worksheet"))
                sheet = book.worksheets[0]
                # The dimension the file declares is not trusted: openpyxl would pad every
                # row to it. The extent of the values, found by streaming, bounds the read.
                with book._archive.open(sheet._worksheet_path) as xml:
                    extent = scan_extent(xml, name, limits)
                records: list[tuple[int, tuple[object, ...]]] = []
                if extent.rows and extent.columns:
                    rows = sheet.iter_rows(min_row=1, max_row=extent.rows, min_col=1,
                                           max_col=extent.columns, values_only=True)
                    records = list(enumerate(rows, start=1))
            finally:
                book.close()
    except (Invalid, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - openpyxl raises anything on a damaged file
        raise Invalid(Problem(
            "unreadable", f"{name} cannot be read as an .xlsx workbook ({type(exc).__name__})"
        )) from exc
    return records


def _check_parts(archive: zipfile.ZipFile, name: str, limits: SheetLimits) -> None:
    """Every XML part openpyxl would parse, and the whole, within the limits once expanded
    (declared sizes: zipfile never inflates a member past the size its directory gives)."""
    infos = archive.infolist()
    total = sum(info.file_size for info in infos)
    parts = [i for i in infos if i.filename.lower().endswith((".xml", ".rels", ".vml"))]
    big = max(parts, key=lambda i: i.file_size, default=None)
    if big is not None and big.file_size > limits.part_bytes:
        raise Invalid(Problem(
            "too_large",
            f"{name}: its part {big.filename} expands to {big.file_size} bytes, more than the "
            f"{limits.part_bytes} this challenge's table can need; copy the two columns "
            "(id, value) into a new workbook, or send a CSV",
        ))
    if total > limits.total_bytes:
        raise Invalid(Problem(
            "too_large",
            f"{name} expands to {total} bytes, more than the {limits.total_bytes} this "
            "challenge's table can need; copy the two columns (id, value) into a new "
            "workbook, or send a CSV",
        ))


def _build(
    name: str, records: Iterable[tuple[int, Iterable[object]]], *, text_cells: bool
) -> Table:
    rows: list[TableRow] = []
    wide: list[int] = []
    firsts: list[str] = []  # first cells of the wide rows: row names?
    width = 0
    for row, record in records:
        cells = list(record)
        texts = _fields([c if isinstance(c, str) else _cell_text(c) for c in cells])
        if not any(t.strip() for t in texts):
            continue
        if len(texts) > 2:
            wide.append(row)
            firsts.append(texts[0].strip())
            width = max(width, len(texts))
            continue
        raw = cells[1] if len(cells) > 1 else None
        value_text = texts[1].strip() if len(texts) > 1 else ""
        value = _cell_value(raw, value_text, text_cells)
        alternative = None
        if value is not None and (text_cells or isinstance(raw, str) or raw is None):
            alternative = grouped_reading(value_text)
        rows.append(TableRow(row, normalise_id(texts[0]), value_text, value, alternative))
    if wide:
        raise Invalid(Problem(
            "too_many_columns",
            f"{name}: {len(wide)} row(s) have {width} columns (first: row {wide[0]}); "
            f"send two columns, id then value{_row_names_hint(firsts, width)}",
        ))
    if not rows:
        raise Invalid(Problem("empty", f"{name} has no rows; it needs one row per id: id,value"))
    header = None
    first = rows[0]
    if first.value is None and first.text.lower() not in {"", "na", "n/a", "null", "none"}:
        header, rows = first, rows[1:]
        if not rows:
            raise Invalid(Problem(
                "empty", f"{name} has a header row but no data; it needs one row per id"
            ))
    return Table(name, tuple(rows), header)


def _cell_value(raw: object, text: str, text_cells: bool) -> float | None:
    """A cell as a number: text parsed in any locale, a workbook's number as stored (never
    ambiguous), None for booleans, dates and times."""
    if text_cells or isinstance(raw, str) or raw is None:
        return parse_number(text)
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    return None  # a date or time cell


def _row_names_hint(firsts: list[str], width: int) -> str:
    """How to drop the first column when it is R's row names or pandas' index."""
    # Both write an empty first cell in the header row, then 1, 2, 3 (R) or 0, 1, 2 (pandas).
    numbers = firsts[1:] if firsts and not firsts[0] else firsts
    if width != 3 or not numbers or not all(n.isdigit() for n in numbers):
        return ""
    start = int(numbers[0])
    if start > 1 or [int(n) for n in numbers] != list(range(start, start + len(numbers))):
        return ""
    tool = "R's write.csv row names" if start == 1 else "a pandas index"
    return (f". The first column numbers the rows ({start}, {start + 1}, …): {tool}. Write "
            "the file without it: in R, write.csv(df, file, row.names = FALSE); in pandas, "
            "df.to_csv(path, index=False) or df.to_excel(path, index=False)")
