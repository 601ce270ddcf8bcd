"""The workbook limits and the streaming look at a sheet's extent; the zip end record."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.evaluators.archive import read_directory
from server.evaluators.result import Invalid
from server.evaluators.sheet import SheetLimits, column_letters, column_number, scan_extent

from . import bombs

NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


@given(st.integers(min_value=1, max_value=16384))
def test_column_letters_round_trip(number: int) -> None:
    assert column_number(column_letters(number)) == number


def test_column_letters() -> None:
    assert [column_letters(n) for n in (1, 26, 27, 52, 16384)] == ["A", "Z", "AA", "AZ", "XFD"]


def test_limits_follow_the_expected_rows() -> None:
    small, large = SheetLimits.for_rows(40), SheetLimits.for_rows(4000)
    assert (small.rows, small.columns) == (260, 16)
    assert large.rows == 16100 and large.cells == 4 * large.rows
    assert small.part_bytes < large.part_bytes < SheetLimits.for_rows(None).part_bytes


def sheet(body: str) -> io.BytesIO:
    return io.BytesIO(f'<worksheet {NS}><dimension ref="A1:XFD1048576"/><sheetData>{body}'
                      "</sheetData></worksheet>".encode())


def test_the_extent_is_where_values_end_not_what_the_dimension_says() -> None:
    body = ('<row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c><c r="B1"><v>1</v></c>'
            '</row><row r="7"><c r="A7"><v>3</v></c><c r="B7"/><c r="H7" s="2"/></row>'
            "<row><c><v>1</v></c><c><v>2</v></c></row>")  # row 8, cells without references
    extent = scan_extent(sheet(body), "t.xlsx", SheetLimits.for_rows(10))
    assert (extent.rows, extent.columns) == (8, 2)  # empty styled cells do not count


@pytest.mark.parametrize(("body", "code", "says"), [
    ('<row r="2"><c r="Q2"><v>1</v></c></row>', "too_many_columns", "cell Q2"),
    ('<row r="9999"><c r="A9999"><v>1</v></c></row>', "too_large", "row 9999"),
    ("<row>" + "<c/>" * 1000 + "</row>", "too_large", "more than 160 cells and rows"),
])
def test_a_cell_past_a_limit_stops_the_scan(body: str, code: str, says: str) -> None:
    with pytest.raises(Invalid) as info:
        scan_extent(sheet(body), "t.xlsx", SheetLimits(rows=40, columns=16, cells=160,
                                                       part_bytes=1 << 20, total_bytes=1 << 22))
    (problem,) = info.value.problems
    assert problem.code == code and says in problem.message


def test_a_damaged_sheet_is_unreadable() -> None:
    with pytest.raises(Invalid) as info:
        scan_extent(io.BytesIO(b"<worksheet><sheetData><row>"), "t.xlsx", SheetLimits.for_rows(1))
    assert info.value.problems[0].code == "unreadable"


def test_the_end_record_is_read_as_zipfile_reads_it(tmp_path: Path) -> None:
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        for n in range(3):
            archive.writestr(f"{n}.txt", b"x")
        archive.comment = b"a comment after the end record"
    with plain.open("rb") as stream:
        found = read_directory(stream)
    with zipfile.ZipFile(plain) as archive:
        assert found is not None and found.entries == len(archive.infolist()) == 3
    zip64 = bombs.many_entries(tmp_path / "zip64.zip", 70_000)  # past the 16-bit count
    with zip64.open("rb") as stream:
        found = read_directory(stream)
    assert found is not None and found.entries == 70_000 and found.size == 70_000 * 47
    with zipfile.ZipFile(zip64) as archive:
        assert len(archive.infolist()) == 70_000
    assert read_directory(io.BytesIO(b"not a zip at all, not even close")) is None
