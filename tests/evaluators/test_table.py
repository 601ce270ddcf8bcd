"""The table reader: CSV dialects and xlsx as spreadsheets write them."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.evaluators.matching import IdIndex
from server.evaluators.result import Invalid
from server.evaluators.table import (
    OLE_MAGIC,
    grouped_reading,
    normalise_id,
    parse_number,
    parse_table,
)


def rows_of(data: bytes, name: str = "t.csv") -> list[tuple[str, float | None]]:
    return [(r.id, r.value) for r in parse_table(data, name).rows]


def codes(data: bytes, name: str) -> list[str]:
    with pytest.raises(Invalid) as info:
        parse_table(data, name)
    return [p.code for p in info.value.problems]


def xlsx(rows: list[tuple[object, ...]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_french_excel_csv() -> None:
    data = "id;probabilité;\r\n0042;0,73;\r\n0107;1;\r\n;;\r\n\r\n".encode("cp1252")
    table = parse_table(data, "preds.csv")
    assert [(r.id, r.value) for r in table.rows] == [("0042", 0.73), ("0107", 1.0)]
    assert table.header is not None and table.header.text == "probabilité"
    assert [r.row for r in table.rows] == [2, 3]


def test_what_pandas_gets_wrong_is_read_as_written() -> None:
    table = parse_table(b"001,NA\n002,0.5\n", "t.csv")
    assert [(r.id, r.text, r.value) for r in table.rows] == [
        ("001", "NA", None), ("002", "0.5", 0.5)
    ]
    assert table.header is None


def test_utf8_bom_and_header() -> None:
    data = "\ufeffid,value\n12.0,3.5\n".encode()
    assert rows_of(data) == [("12", 3.5)]


def test_utf16_tab_text_from_excel() -> None:
    data = "id\tvalue\r\n0042\t0,5\r\n".encode("utf-16")
    assert rows_of(data, "t.txt") == [("0042", 0.5)]


@pytest.mark.parametrize(
    ("text", "value"),
    [("0,73", 0.73), ("0.73", 0.73), ("1 234,5", 1234.5), ("1\u202f234,5", 1234.5),
     ("1,234.5", 1234.5), ("1.234,5", 1234.5), ("1.234.567", 1234567.0), ("-2", -2.0),
     ("1,5E-03", 0.0015), (".5", 0.5), ("+3", 3.0), ("abc", None), ("", None), ("1..2", None),
     ("1,2,3", None), ("73%", None), ("NA", None)],
)
def test_parse_number(text: str, value: float | None) -> None:
    assert parse_number(text) == value


def test_non_finite_numbers_are_kept_for_a_precise_message() -> None:
    assert parse_number("inf") == float("inf")
    nan = parse_number("NaN")
    assert nan is not None and nan != nan


@pytest.mark.parametrize(("raw", "expected"),
                         [(" 0042 ", "0042"), ("12.0", "12"), ("12,00", "12"), ('="0042"', "0042"),
                          ("12.5", "12.5"), ("A-01", "A-01")])
def test_normalise_id(raw: str, expected: str) -> None:
    assert normalise_id(raw) == expected


def test_xlsx_cells() -> None:
    data = xlsx([("id", "probability"), (42.0, 0.25), ("0043", "0,5"), (None, None), (44, 1)])
    assert rows_of(data, "t.xlsx") == [("42", 0.25), ("0043", 0.5), ("44", 1.0)]


def test_xlsx_renamed_csv_is_read_as_a_workbook() -> None:
    assert rows_of(xlsx([("a", 0.5)]), "t.csv") == [("a", 0.5)]


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [("t.xls", OLE_MAGIC + b"\x00" * 100, "unsupported_format"),
     ("t.xlsx", OLE_MAGIC + b"\x00" * 100, "encrypted"),
     ("t.csv", OLE_MAGIC + b"\x00" * 100, "unsupported_format"),
     ("t.ods", b"PK\x03\x04", "unsupported_format"),
     ("t.xlsm", b"PK\x03\x04", "unsupported_format"),
     ("t.json", b"{}", "unsupported_format"),
     ("t.xlsx", b"PK\x03\x04 truncated", "unreadable"),
     ("t.csv", b"", "empty"),
     ("t.csv", b"\x89PNG\r\n\x1a\n\x00\x00", "unreadable"),
     ("t.csv", b",id,p\n0,a,0.5\n1,b,0.7\n", "too_many_columns")],
)
def test_refusals(name: str, data: bytes, code: str) -> None:
    assert codes(data, name) == [code]


def test_macro_enabled_xlsx_content_is_refused(tmp_path: Path) -> None:
    data = xlsx([("a", 1)])
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            body = source.read(item)
            if item.filename == "[Content_Types].xml":
                body = body.replace(b"spreadsheetml.sheet.main+xml",
                                    b"vnd.ms-excel.sheet.macroEnabled.main+xml")
            target.writestr(item, body)
    with pytest.raises(Invalid) as info:
        parse_table(out.getvalue(), "renamed.xlsx")
    assert info.value.problems[0].code == "unsupported_format"
    assert "macro" in info.value.problems[0].message


def test_numeric_id_matches_the_one_truth_id_equal_to_it() -> None:
    index = IdIndex.of(["00042", "00107", "7", "007"])
    assert index.find("42") == "00042"
    assert index.find("00042") == "00042"
    assert index.find("107") == "00107"
    assert index.find("0007") is None  # "7" and "007" are both 7: ambiguous
    assert index.find("7") == "7"
    assert index.find("43") is None


# ---- property: any valid table, in any dialect, reads back the same ------------------------

ids = st.text(alphabet="0123456789abcdefXYZé_-", min_size=1, max_size=8).filter(
    lambda s: s.strip() == s
)
values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
tables = st.lists(st.tuples(ids, values), min_size=1, max_size=30)


def _text(value: float, decimal: str) -> str:
    return repr(value).replace(".", decimal)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=tables,
    delimiter=st.sampled_from([",", ";", "\t"]),
    decimal=st.sampled_from([".", ","]),
    header=st.booleans(),
    bom=st.booleans(),
    encoding=st.sampled_from(["utf-8", "cp1252"]),
    newline=st.sampled_from(["\r\n", "\n"]),
    pad=st.booleans(),
    blank_tail=st.integers(0, 3),
)
def test_any_csv_dialect_reads_back(rows: list[tuple[str, float]], delimiter: str, decimal: str,
                                    header: bool, bom: bool, encoding: str, newline: str,
                                    pad: bool, blank_tail: int) -> None:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    if header:
        writer.writerow(["id", "value"] + ([""] if pad else []))
    for key, value in rows:
        writer.writerow([key, _text(value, decimal)] + ([""] if pad else []))
    for _ in range(blank_tail):
        writer.writerow([""] * (3 if pad else 2))
    data = out.getvalue().encode(encoding)
    if bom and encoding == "utf-8":
        data = b"\xef\xbb\xbf" + data
    expected = [(normalise_id(k), v) for k, v in rows]
    assert rows_of(data) == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=tables, header=st.booleans(), as_text=st.booleans())
def test_any_xlsx_reads_back(rows: list[tuple[str, float]], header: bool, as_text: bool) -> None:
    cells: list[tuple[object, ...]] = [("id", "value")] if header else []
    cells += [(k, repr(v) if as_text else v) for k, v in rows]
    got = rows_of(xlsx(cells), "t.xlsx")
    assert [k for k, _ in got] == [normalise_id(k) for k, _ in rows]
    # openpyxl writes numbers with Excel's 15 significant digits, text cells exactly.
    for (_, value), (_, expected) in zip(got, rows, strict=True):
        assert value == (expected if as_text else pytest.approx(expected, rel=1e-14, abs=0))


@pytest.mark.parametrize(
    ("text", "grouped"),
    [("12,827", 12827.0), ("12.827", 12827.0), ("1.234", 1234.0), ("-100,000", -100000.0),
     ("0,827", None), ("1234,567", None), ("12,8", None), ("12 827", None), ("12,827.5", None),
     ("1.234.567", None), ("0.73", None)],
)
def test_only_a_lone_separator_before_three_digits_is_ambiguous(text: str,
                                                                grouped: float | None) -> None:
    assert grouped_reading(text) == grouped
    row = parse_table(f"a;{text}\n".encode(), "t.csv").rows[0]
    assert row.alternative == grouped


def test_numbers_typed_in_xlsx_cells_are_never_ambiguous() -> None:
    rows = parse_table(xlsx([("a", 12827), ("b", "12,827")]), "t.xlsx").rows
    assert [(r.value, r.alternative) for r in rows] == [(12827.0, None), (12.827, 12827.0)]


@pytest.mark.parametrize("name", ["export.xls", "export.xlsx", "export.csv"])
def test_an_html_table_is_told_it_is_html(name: str) -> None:
    page = b"\xef\xbb\xbf<html xmlns:o='urn:schemas-microsoft-com:office:office'><body><table>"
    with pytest.raises(Invalid) as info:
        parse_table(page + b"<tr><td>a</td><td>1</td></tr></table></body></html>", name)
    [problem] = info.value.problems
    assert problem.code == "unsupported_format" and "web page (HTML" in problem.message
    assert ("not a legacy Excel workbook" in problem.message) == name.endswith(".xls")


@pytest.mark.parametrize(("separator", "said"), [(" ", "spaces"), ("|", "vertical bars"),
                                                 (":", "colons")])
def test_other_separators_are_named_with_the_ones_read(separator: str, said: str) -> None:
    data = f"id{separator}value\n0042{separator}0.5\n0107{separator}0.25\n".encode()
    with pytest.raises(Invalid) as info:
        parse_table(data, "t.csv")
    [problem] = info.value.problems
    assert problem.code == "unsupported_separator"
    assert said in problem.message and "commas, semicolons or tabs" in problem.message


def test_r_row_names_and_pandas_index_are_told_how_to_drop_them() -> None:
    import pandas as pd

    frame = pd.DataFrame({"id": ["0042", "0107"], "value": [0.5, 0.25]})
    written_by_pandas = frame.to_csv().encode()
    written_by_r = b'"","id","value"\n"1","0042",0.5\n"2","0107",0.25\n'
    excel = io.BytesIO()
    frame.to_excel(excel, engine="xlsxwriter")
    for data, name, tool in ((written_by_pandas, "t.csv", "a pandas index"),
                             (written_by_r, "t.csv", "R's write.csv row names"),
                             (excel.getvalue(), "t.xlsx", "a pandas index")):
        with pytest.raises(Invalid) as info:
            parse_table(data, name)
        [problem] = info.value.problems
        assert problem.code == "too_many_columns" and tool in problem.message
        assert "row.names = FALSE" in problem.message and "index=False" in problem.message


def test_a_workbook_whose_first_sheet_is_not_the_data_names_both_sheets() -> None:
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    book.add_worksheet("Read me").write(0, 0, "Team Lumbar — model v3")
    data = book.add_worksheet("Predictions")
    for row, (exam_id, value) in enumerate([("0042", 0.5), ("0107", 0.25)]):
        data.write_string(row, 0, exam_id)
        data.write_number(row, 1, value)
    book.close()
    with pytest.raises(Invalid) as info:
        parse_table(out.getvalue(), "preds.xlsx")
    [problem] = info.value.problems
    assert problem.code == "wrong_sheet"
    assert "'Read me'" in problem.message and "'Predictions'" in problem.message
    # One sheet of notes alone is not a sheet problem: it is read, and the ids are missing.
    lone = xlsx([("Team Lumbar — model v3",), ("fold 3",)])
    assert [r.id for r in parse_table(lone, "preds.xlsx").rows] == ["Team Lumbar — model v3",
                                                                    "fold 3"]


@given(st.from_regex(r"[+-]?\d{1,12}(\.\d{1,12})?([eE][+-]?\d{1,2})?", fullmatch=True))
def test_a_table_of_several_columns_reads_plain_numbers_as_parse_number_does(text: str) -> None:
    """parse_records reads a plain number with float() (long candidates tables), which must
    give what parse_number gives."""
    from server.evaluators.table import parse_number, parse_records

    (record,) = parse_records(f"a,{text},{text}\n".encode(), "t.csv", columns=3, what="a,b,c")
    assert record.cells[1].value == parse_number(text) == record.cells[2].value
    (french,) = parse_records(f"a;{text.replace('.', ',')}\n".encode(), "t.csv", columns=2,
                              what="a,b")
    assert french.cells[1].value == parse_number(text)
