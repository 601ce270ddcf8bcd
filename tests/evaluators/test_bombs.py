"""Files built to exhaust a scorer: each is scored in a real child process whose peak memory
(and CPU time, for the workbook that used to take minutes) is measured around the scoring.

The child runs under a 3 GiB address-space limit of its own, so that a regression fails this
test instead of taking the machine; the assertions check that the refusal came from the
limits that follow from the exam (the member's own cap, the end record, the sheet's extent),
not from that safety net.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pytest

from server.evaluators.archive import DIRECTORY_BYTES_PER_MEMBER
from server.evaluators.segmentation import mask_member_limit
from server.evaluators.sheet import SheetLimits

from . import bombs
from .conftest import IDS, SegTruth
from .factory import npy_mask, png_mask, table_csv

pytestmark = pytest.mark.slow

MiB = 1024**2
# How much a refusal may raise the scorer's peak memory above what it had after loading the
# truth and its libraries: the bombs below would take gigabytes.
PEAK_GROWTH_LIMIT = 64 * MiB

PROBE = """
import json, resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))
import numpy, openpyxl, PIL.Image, pydicom  # what a scoring may import, loaded first
from server.evaluators import evaluate, load_truth
kind, truth, path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
loaded = load_truth(kind, truth)
if hasattr(loaded, "targets"):
    loaded.targets(None)
def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_maxrss * 1024, r.ru_utime + r.ru_stime
peak, cpu = usage()
result = evaluate(kind, truth, path)
peak_after, cpu_after = usage()
print(json.dumps({"result": result.to_json(), "peak_growth": peak_after - peak,
                  "cpu_s": cpu_after - cpu}))
"""


def score_in_child(kind: str, truth: Path, submission: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", PROBE, kind, str(truth), str(submission)],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    report: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def honest_members(seg: SegTruth, skip: str) -> list[bombs.Member]:
    members = [bombs.plain(f"masks/{i}.png", png_mask(seg.masks[i])) for i in IDS if i != skip]
    surfaces = {i: float(np.count_nonzero(seg.masks[i])) * 0.6 for i in IDS}
    members.append(bombs.plain("surfaces.csv", table_csv(surfaces,
                                                         header=("id", "surface_mm2"))))
    return members


def test_a_mask_member_inflating_to_gigabytes_is_refused_unread(
        seg_truth: SegTruth, tmp_path: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (64, 64)})
    bomb = bombs.inflating("masks/0042.npy", header.getvalue(), b"\x00", 224 * bombs.SEGMENT)
    path = bombs.write(tmp_path / "bomb.zip", [bomb, *honest_members(seg_truth, "0042")])
    assert path.stat().st_size < 8 * MiB and bomb.size == int(3.5 * 1024**3)
    assert bombs.readable(path, "masks/0042.npy", 10).startswith(b"\x93NUMPY")

    report = score_in_child("segmentation-surface", seg_truth.path, path)
    assert report["result"]["status"] == "invalid"
    errors = report["result"]["errors"]
    assert [(e["code"], e.get("id")) for e in errors] == [("too_large", "0042")]
    assert f"at most {mask_member_limit((64, 64))} bytes" in errors[0]["message"]
    assert "64 × 64" in errors[0]["message"]
    assert report["peak_growth"] < PEAK_GROWTH_LIMIT, report


def test_a_member_within_its_cap_is_read(seg_truth: SegTruth, tmp_path: Path) -> None:
    """The cap leaves room for every real writer: a float64 mask is twice uint8 × 8."""
    wide = npy_mask(seg_truth.masks["0042"], dtype="float64")
    assert len(wide) < mask_member_limit((64, 64))
    members = [bombs.plain("0042.npy", wide), *honest_members(seg_truth, "0042")]
    path = bombs.write(tmp_path / "ok.zip", members)
    report = score_in_child("segmentation-surface", seg_truth.path, path)
    assert report["result"]["status"] == "scored", report


@pytest.mark.parametrize("declared", [None, 3])
def test_a_directory_of_two_million_entries_is_refused_from_its_end_record(
        seg_truth: SegTruth, tmp_path: Path, declared: int | None) -> None:
    """Two million entries, declared as such, or declared as 3 while the directory's size
    gives the lie away: refused before zipfile parses a single entry."""
    path = bombs.many_entries(tmp_path / "directory.zip", 2_000_000, declared=declared)
    report = score_in_child("segmentation-surface", seg_truth.path, path)
    assert report["result"]["status"] == "invalid"
    errors = report["result"]["errors"]
    assert [e["code"] for e in errors] == ["too_many_members"]
    expected = "2000000 entries" if declared is None else \
        f"more than {5000} entries can need"
    assert expected in errors[0]["message"]
    assert report["peak_growth"] < PEAK_GROWTH_LIMIT, report
    assert DIRECTORY_BYTES_PER_MEMBER * 5000 < path.stat().st_size


@pytest.fixture
def probability_truth(tmp_path: Path) -> Path:
    rows = [f"P{n:03d},{n % 2}" for n in range(40)]
    path = tmp_path / "truth.csv"
    path.write_text("id,label\n" + "\n".join(rows) + "\n")
    return path


def small_workbook() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "probability"])
    for n in range(40):
        sheet.append([f"P{n:03d}", 0.25 + (n % 2) / 2])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def rewrite_member(data: bytes, name: str, members: dict[str, bombs.Member],
                   path: Path) -> Path:
    """The workbook in `data` with some parts replaced by raw members."""
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as book:
        kept = [bombs.plain(n, book.read(n)) for n in book.namelist() if n not in members]
    return bombs.write(path, [*kept, *members.values()])


def test_a_workbook_whose_sheet_expands_to_240_mib_is_refused_quickly(
        probability_truth: Path, tmp_path: Path) -> None:
    head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet '
            b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
    head += b" " * (-len(head) % 64)
    row = b'<row><c t="n"><v>1</v></c><c t="n"><v>0</v></c></row>'  # rows without numbers
    filler = row + b" " * (64 - len(row))
    end = b"</sheetData></worksheet>"
    sheet = bombs.inflating("xl/worksheets/sheet1.xml", head, filler,
                            15 * bombs.SEGMENT + len(end), end)
    path = rewrite_member(small_workbook(), "xl/worksheets/sheet1.xml",
                          {"xl/worksheets/sheet1.xml": sheet}, tmp_path / "wide.xlsx")
    assert path.stat().st_size < 2 * MiB and sheet.size > 240 * MiB
    assert bombs.readable(path, "xl/worksheets/sheet1.xml", 4096).startswith(head + row)

    report = score_in_child("binary-probability", probability_truth, path)
    assert report["result"]["status"] == "invalid"
    errors = report["result"]["errors"]
    assert [e["code"] for e in errors] == ["too_large"]
    limit = SheetLimits.for_rows(40).part_bytes
    assert f"more than the {limit} this challenge's table can need" in errors[0]["message"]
    # Reading it took minutes of CPU; a refusal from the directory takes a fraction of one.
    assert report["cpu_s"] < 20, report
    assert report["peak_growth"] < PEAK_GROWTH_LIMIT, report


def test_a_sheet_declaring_the_whole_grid_is_read_to_its_values(
        probability_truth: Path, tmp_path: Path) -> None:
    """A 10 KB workbook whose dimension claims 16,384 columns × 1,048,576 rows: openpyxl
    would pad every row to the declared grid; the values end at B41, so that is all read."""
    import zipfile

    data = small_workbook()
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        xml = book.read("xl/worksheets/sheet1.xml")
    assert b'<dimension ref="A1:B41" />' in xml
    grid = xml.replace(b'<dimension ref="A1:B41" />', b'<dimension ref="A1:XFD1048576" />')
    path = rewrite_member(data, "xl/worksheets/sheet1.xml",
                          {"xl/worksheets/sheet1.xml": bombs.plain("xl/worksheets/sheet1.xml",
                                                                   grid)},
                          tmp_path / "grid.xlsx")
    report = score_in_child("binary-probability", probability_truth, path)
    assert report["result"]["status"] == "scored", report
    assert report["cpu_s"] < 20, report


@pytest.mark.parametrize(("cell", "code"), [("C2", "too_many_columns"), ("Q2", "too_many_columns"),
                                            ("A50000", "too_large")])
def test_a_value_far_outside_the_table_is_named(
        probability_truth: Path, tmp_path: Path, cell: str, code: str) -> None:
    book = openpyxl.load_workbook(io.BytesIO(small_workbook()))
    sheet = book.active
    assert sheet is not None
    sheet[cell] = "stray"
    out = tmp_path / "stray.xlsx"
    book.save(out)
    report = score_in_child("binary-probability", probability_truth, out)
    errors = report["result"]["errors"]
    assert errors[0]["code"] == code, errors
    if code == "too_large":
        assert "row 50000" in errors[0]["message"]
