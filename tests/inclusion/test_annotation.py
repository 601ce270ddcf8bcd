"""The annotation's checks: masks as real tools write them, nodules in a real series'
geometry, clinical rows as a spreadsheet gives them."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import nibabel
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from server.inclusion.annotation import (
    Nodule,
    Volume,
    check_clinical,
    check_mask,
    check_nodules,
)
from server.inclusion.criteria import Criteria, Interval, NoduleRule
from server.inclusion.headers import SeriesSummary
from server.inclusion.violation import Severity, Violation

from . import corpus


def codes(found: Sequence[Violation]) -> list[str]:
    return [v.code for v in found]


def test_a_mask_as_simpleitk_and_nibabel_write_it(tmp_path: Path) -> None:
    exam_shape = (6, 10, 12)                        # slices, rows, columns
    mask = np.zeros(exam_shape, dtype=np.uint8)
    mask[2:4, 3:7, 4:9] = 1
    sitk.WriteImage(sitk.GetImageFromArray(mask), str(tmp_path / "itk.nii.gz"))
    read = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "itk.nii.gz")))
    assert check_mask(read, exam_shape) == []
    # nibabel's array is (x, y, z): the exam's axes reversed, and said so.
    nibabel.save(nibabel.Nifti1Image(mask.transpose(2, 1, 0), np.eye(4)), tmp_path / "nib.nii")
    array = np.asarray(nibabel.load(tmp_path / "nib.nii").dataobj)
    (shape,) = check_mask(array, exam_shape)
    assert shape.code == "mask_shape"
    assert shape.message == ("the mask is 12 × 10 × 6, the exam 6 × 10 × 12 (its axes look "
                             "reversed: write it in the exam's order)")


def test_a_mask_must_be_there_binary_and_drawn() -> None:
    assert codes(check_mask(None, (8, 8))) == ["mask_missing"]
    slice_mask = np.zeros((1, 8, 8), dtype=bool)
    slice_mask[0, 2:5, 2:5] = True
    assert check_mask(slice_mask, (8, 8)) == []           # a 2-D slice's mask as 1 × 8 × 8
    labels = np.zeros((8, 8), dtype=np.int16)
    labels[1:3, 1:3], labels[5:7, 5:7] = 1, 2
    (found,) = check_mask(labels, (8, 8))
    assert (found.code, found.message) == ("mask_not_binary", "the mask holds 0 and 1, 2: a "
                                           "mask has 0 and one other value (one label)")
    ones = np.full((8, 8), 255, dtype=np.uint8)
    assert check_mask(ones, (8, 8)) == []
    nan = np.zeros((8, 8))
    nan[0, 0] = np.nan
    assert codes(check_mask(nan, (8, 8))) == ["mask_not_binary"]
    empty = np.zeros((8, 8), dtype=np.uint8)
    (blank,) = check_mask(empty, (8, 8))
    assert blank.code == "mask_empty" and blank.severity is Severity.VIOLATION
    assert check_mask(empty, (8, 8), empty=Severity.WARNING)[0].severity is Severity.WARNING
    assert check_mask(empty, (8, 8), empty="allowed") == []


@pytest.fixture(scope="module")
def chest() -> Volume:
    volume = Volume.from_series(SeriesSummary.from_datasets(corpus.GE_CHEST_LUNG.files()))
    assert volume is not None
    return volume


def test_a_volume_from_a_series_places_its_voxels(chest: Volume) -> None:
    assert chest.shape == (24, 8, 8)
    assert chest.origin == (-100.0, -120.0, -50.0)
    assert chest.voxel_of((-100.0 + 3 * 0.703125, -120.0 + 5 * 0.703125, -50 + 4 * 0.625)) == \
        pytest.approx((3, 5, 4))
    # Slices given from the top down still start at the lowest position.
    files = corpus.GE_CHEST_LUNG.files()[::-1]
    assert Volume.from_series(SeriesSummary.from_datasets(files)) == chest
    assert Volume.from_series(SeriesSummary("1", "2", None, "", "", 1, ())) is None


def test_nodules_against_table_1(criteria: dict[str, Criteria], chest: Volume) -> None:
    rule = criteria["nodules"].nodules
    assert rule is not None
    inside = (-98.0, -118.0, -45.0)
    small = Nodule(inside, diameter_mm=4, volume_mm3=33.5, density="Solid")
    large = Nodule(inside, diameter_mm=9, volume_mm3=380, density="ground-glass", name="n2")
    assert check_nodules([small], rule, chest, label=0) == []
    assert check_nodules([small, large], rule, chest, label=1) == []
    (wrong,) = check_nodules([small, large], rule, chest, label=0)
    assert wrong.code == "label_disagrees"
    assert wrong.message == ("the exam is labelled benign (0) but n2 has volume 380 mm³, "
                             "diameter 9 mm (volume > 100 mm³ or diameter > 6 mm: malignant)")
    (wrong,) = check_nodules([small], rule, chest, label=1)
    assert wrong.message == ("the exam is labelled malignant (1) but no nodule has volume "
                             "> 100 mm³ or diameter > 6 mm")
    # The volume alone settles it when it is over (150 mm³ > 100): malignant.
    assert check_nodules([Nodule(inside, volume_mm3=150, density="mixed")], rule, chest,
                         label=1) == []
    (none,) = check_nodules([], rule, chest)
    assert none.message == "0 nodules annotated; this question needs 1 to 5"
    assert codes(check_nodules([small] * 6, rule, chest)) == ["nodule_count"]
    outside = Nodule((-80.0, -118.0, -45.0), diameter_mm=4, density="solid")
    (out,) = check_nodules([outside], rule, chest)
    assert out.code == "nodule_outside"
    assert out.message == ("nodule 1 at (-80, -118, -45) mm is outside the exam's volume "
                           "(24 × 8 × 8 voxels)")
    found = check_nodules([Nodule(inside, density="calcified")], rule, chest, label=1)
    assert codes(found) == ["nodule_density", "nodule_size_missing"]
    assert found[0].message == ("nodule 1 has density 'calcified'; allowed: ground-glass, "
                                "mixed, solid")


def test_nodules_in_voxels(chest: Volume) -> None:
    rule = NoduleRule(Interval(1, True, 5, True), positions="voxel")
    assert check_nodules([Nodule((7.4, 0, 23))], rule, chest) == []
    assert codes(check_nodules([Nodule((8, 0, 0))], rule, chest)) == ["nodule_outside"]
    assert codes(check_nodules([Nodule((0, 0, -0.6))], rule, chest)) == ["nodule_outside"]


CLINICAL_CSV = """exam;age;sex;exam_date;edss_2y
ms-001;34;F;14/03/2019;3,5
ms-002;17;M;2019-03-14;4
ms-003;52;H;20190314;3.3
ms-004;;F;31/02/2019;11
ms-005;60;f;2031-01-01;2
"""


def test_clinical_rows_as_a_french_spreadsheet_writes_them(
        criteria: dict[str, Criteria]) -> None:
    fields = criteria["multiple-sclerosis"].clinical
    table = pd.read_csv(io.StringIO(CLINICAL_CSV), sep=";", dtype=str, keep_default_na=False)
    rows = {r["exam"]: r for r in table.to_dict("records")}
    today = date(2026, 12, 2)

    def check(exam: str) -> list[tuple[str, str]]:
        return [(v.code, v.message) for v in check_clinical(rows[exam], fields, today=today,
                                                             also={"exam"})]

    assert check("ms-001") == []
    assert check("ms-002") == [("clinical_range", "age 17; this question needs 18 to 100")]
    assert check("ms-003") == [("clinical_value", "sex 'H'; allowed: M, F"),
                               ("clinical_value", "edss_2y 3.3 is not a step of 0.5 from 0")]
    assert check("ms-004") == [
        ("clinical_missing", "age is empty; this question needs it"),
        ("clinical_value", "exam_date '31/02/2019' is not a date (write 2019-03-14, 20190314 "
                           "or 14/03/2019)"),
        ("clinical_range", "edss_2y 11; this question needs 0 to 10")]
    assert check("ms-005") == [("clinical_range", "exam_date 2031-01-01 is after 2026-12-02 "
                                                  "(in the future)")]


def test_clinical_values_of_every_type(criteria: dict[str, Criteria]) -> None:
    fields = criteria["multiple-sclerosis"].clinical
    row = {"age": 40.0, "sex": "M", "exam_date": date(2018, 5, 1), "edss_2y": 6.5,
           "centre": "CHU"}
    (extra,) = check_clinical(row, fields)
    assert extra.code == "clinical_unknown_field" and extra.severity is Severity.WARNING
    assert codes(check_clinical({**row, "age": "forty"}, fields, also={"centre"})) == [
        "clinical_value"]
    assert codes(check_clinical({**row, "age": True}, fields, also={"centre"})) == [
        "clinical_value"]
    assert codes(check_clinical({**row, "age": float("nan")}, fields, also={"centre"})) == [
        "clinical_missing"]
    old = {**row, "exam_date": "19991231"}
    assert check_clinical(old, fields, also={"centre"})[0].message == (
        "exam_date 1999-12-31 is before 2000-01-01")
    assert codes(check_clinical({}, fields)) == ["clinical_missing"] * 4
