"""The seed's Table 1 (docs/inclusion.md's block, parsed) on headers from several vendors and
on pydicom's own files: each question accepts what it should and refuses the rest with the
expected code."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from server.inclusion.check import check_series, check_study
from server.inclusion.criteria import Criteria
from server.inclusion.headers import SeriesSummary, study_series
from server.inclusion.violation import Severity

from . import corpus

# question -> series -> the codes its check reports (an empty set: accepted as is).
# Series of the other modality are told "modality" only, and are not listed.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "sarcopenia": {
        "SIEMENS_L3_B30F": set(), "GE_L3_STANDARD": set(), "PHILIPS_L3_B": set(),
        "CANON_L3_FC03": set(),
        "GE_L3_BONEPLUS": {"kernel"},
        "SIEMENS_L3_TOO_THIN": {"slice_thickness"},
        "SIEMENS_L3_TOO_THICK": {"slice_thickness"},
        "GE_ABDOMEN_SERIES": {"not_one_slice"},
        "SIEMENS_CHEST_B70F": {"not_one_slice", "slice_thickness", "kernel"},
        "SIEMENS_FORCE_BR40D": {"not_one_slice", "slice_thickness"},
        "GE_CHEST_LUNG": {"not_one_slice", "slice_thickness", "kernel"},
        "GE_CHEST_LUNG_125": {"not_one_slice", "kernel"},
        "PHILIPS_CHEST_L": {"not_one_slice", "slice_thickness", "kernel"},
        "PHILIPS_CHEST_YC": {"not_one_slice", "slice_thickness", "kernel"},
        "CANON_CHEST_FC51": {"not_one_slice", "slice_thickness", "kernel"},
        "CANON_CHEST_FL04": {"not_one_slice", "slice_thickness", "kernel"},
        "CANON_CHEST_UNKNOWN": {"not_one_slice", "slice_thickness", "kernel_unknown"},
        "GE_CHEST_THICK": {"not_one_slice", "kernel"},
        "SIEMENS_CHEST_GAPS": {"not_one_slice", "kernel"},
        "SIEMENS_TOPOGRAM": {"localizer"},
    },
    "nodules": {
        "SIEMENS_CHEST_B70F": set(), "GE_CHEST_LUNG": set(), "PHILIPS_CHEST_L": set(),
        "PHILIPS_CHEST_YC": set(), "CANON_CHEST_FC51": set(), "CANON_CHEST_FL04": set(),
        "SIEMENS_FORCE_BR40D": {"kernel"},           # soft where "mostly hard": a warning
        "CANON_CHEST_UNKNOWN": {"kernel_unknown"},   # FC43: said unknown, not guessed
        "GE_CHEST_LUNG_125": {"slice_thickness"},    # 1.25 is not < 1.25
        "GE_CHEST_THICK": {"slice_thickness"},
        "SIEMENS_CHEST_GAPS": {"slice_thickness"},   # 1 mm slices 5 mm apart
        "GE_ABDOMEN_SERIES": {"slice_thickness", "kernel"},
        "SIEMENS_L3_B30F": {"too_few_slices", "slice_thickness", "kernel"},
        "GE_L3_STANDARD": {"too_few_slices", "slice_thickness", "kernel"},
        "PHILIPS_L3_B": {"too_few_slices", "slice_thickness", "kernel"},
        "CANON_L3_FC03": {"too_few_slices", "slice_thickness", "kernel"},
        "GE_L3_BONEPLUS": {"too_few_slices", "slice_thickness"},
        "SIEMENS_L3_TOO_THIN": {"too_few_slices", "kernel"},
        "SIEMENS_L3_TOO_THICK": {"too_few_slices", "slice_thickness", "kernel"},
        "SIEMENS_TOPOGRAM": {"localizer"},
    },
    "multiple-sclerosis": {
        "SIEMENS_SPACE_FLAIR": set(), "GE_CUBE_FLAIR": set(), "PHILIPS_VIEW_FLAIR": set(),
        "SIEMENS_AXIAL_FLAIR": set(), "ANONYMIZED_FLAIR": set(),
        "SIEMENS_SAGITTAL_2D_FLAIR": {"acquisition"},
        "SIEMENS_MPRAGE": {"sequence"},
        "GE_T1_FLAIR": {"sequence"},
        "SIEMENS_T1_SE_GADO": {"sequence"},
        "BARE_IR": {"sequence_unknown"},
    },
}
WARNINGS = {("nodules", "SIEMENS_FORCE_BR40D"), ("nodules", "CANON_CHEST_UNKNOWN"),
            ("multiple-sclerosis", "BARE_IR")}


def test_every_series_of_the_corpus_is_expected_somewhere(
        criteria: dict[str, Criteria]) -> None:
    assert set(EXPECTED) == set(criteria)
    for question, expected in EXPECTED.items():
        same = corpus.CT_SERIES if criteria[question].modality == "CT" else corpus.MR_SERIES
        assert set(expected) == set(same), question


@pytest.mark.parametrize("question", sorted(EXPECTED))
def test_table_1_accepts_and_refuses_the_corpus(question: str, criteria: dict[str, Criteria],
                                                summaries: dict[str, SeriesSummary]) -> None:
    rule = criteria[question]
    wrong = {}
    for name, summary in summaries.items():
        found = check_series(rule, summary)
        codes = {v.code for v in found}
        expected = EXPECTED[question].get(name, {"modality"})
        if codes != expected:
            wrong[name] = (sorted(codes), sorted(expected), [v.message for v in found])
            continue
        excluded = any(v.excludes for v in found)
        assert excluded == (bool(expected) and (question, name) not in WARNINGS), name
    assert not wrong


def test_the_messages_are_the_centers_words(criteria: dict[str, Criteria],
                                            summaries: dict[str, SeriesSummary]) -> None:
    (thick,) = check_series(criteria["nodules"], summaries["GE_CHEST_THICK"])
    assert thick.message == "slice thickness 5 mm; this question needs < 1.25 mm"
    assert (thick.found, thick.expected, thick.rule) == ("5 mm", "< 1.25 mm",
                                                         "slice_thickness_mm")
    (thin,) = check_series(criteria["sarcopenia"], summaries["SIEMENS_L3_TOO_THIN"])
    assert thin.message == "slice thickness 1 mm; this question needs 1.25 to 7 mm"
    (gaps,) = check_series(criteria["nodules"], summaries["SIEMENS_CHEST_GAPS"])
    assert gaps.message == ("slice thickness 5 mm (SliceThickness says 1 mm but the slices "
                            "are 5 mm apart); this question needs < 1.25 mm")
    (soft,) = check_series(criteria["nodules"], summaries["SIEMENS_FORCE_BR40D"])
    assert soft.severity is Severity.WARNING
    assert soft.message == ("kernel Br40d is soft (Siemens sharpness 40 (below 50 is soft)); "
                            "this question needs a hard kernel (mostly hard: accepted, a "
                            "reviewer will look)")
    (hard,) = check_series(criteria["sarcopenia"], summaries["GE_L3_BONEPLUS"])
    assert hard.severity is Severity.VIOLATION
    assert "GE's BONEPLUS is a hard kernel" in hard.message
    (sagittal,) = check_series(criteria["multiple-sclerosis"],
                               summaries["SIEMENS_SAGITTAL_2D_FLAIR"])
    assert sagittal.message == ("a 2-D sagittal acquisition (MRAcquisitionType 2D, sagittal "
                                "slices); this question needs 3-D or 2-D axial")
    (t1,) = check_series(criteria["multiple-sclerosis"], summaries["SIEMENS_MPRAGE"])
    assert "inversion time 900 ms" in t1.message
    (series,) = check_series(criteria["sarcopenia"], summaries["GE_ABDOMEN_SERIES"])
    assert series.message.startswith("24 slices; this question needs a single slice")
    (mr,) = check_series(criteria["sarcopenia"], summaries["SIEMENS_SPACE_FLAIR"])
    assert mr.message == "an MR series; this question needs CT"


def _testdata(name: str) -> pydicom.Dataset:
    path = get_testdata_file(name)
    assert path is not None
    return pydicom.dcmread(path, stop_before_pixels=True)


def _dicomdir_series(folder: str) -> list[pydicom.Dataset]:
    """A series of pydicom's dicomdirtests (real GE CT files)."""
    anchor = get_testdata_file("DICOMDIR")
    assert anchor is not None
    path = Path(anchor).parent / folder
    return [pydicom.dcmread(path / f, stop_before_pixels=True) for f in sorted(os.listdir(path))]


def test_pydicoms_own_files(criteria: dict[str, Criteria]) -> None:
    ct_small = SeriesSummary.from_datasets([_testdata("CT_small.dcm")])
    # GE RHAPSODE, STANDARD kernel, 5 mm, one slice, ISOVUE300/100 IV: a sarcopenia slice.
    assert check_series(criteria["sarcopenia"], ct_small) == []
    codes = {v.code: v.severity for v in check_series(criteria["nodules"], ct_small)}
    assert codes == {"too_few_slices": Severity.VIOLATION,
                     "slice_thickness": Severity.VIOLATION, "kernel": Severity.WARNING}
    mr_small = SeriesSummary.from_datasets([_testdata("MR_small.dcm")])
    # Toshiba, one slice of a 3-D spin echo (SE, no inversion): not a FLAIR volume.
    found = check_series(criteria["multiple-sclerosis"], mr_small)
    assert {v.code for v in found} == {"too_few_slices", "sequence"}
    assert "ScanningSequence SE: no inversion recovery" in found[1].message
    assert [v.code for v in check_series(criteria["nodules"], mr_small)] == ["modality"]


def test_real_ge_series_with_missing_slices(criteria: dict[str, Criteria]) -> None:
    # "Routine Brain": four of a series' 1.25 mm slices, one of them 200 mm from the others.
    brain = SeriesSummary.from_datasets(_dicomdir_series("77654033/CT2"))
    assert brain.stack.spacing == pytest.approx(1.25)
    found = {v.code: v for v in check_series(criteria["nodules"], brain)}
    assert set(found) == {"too_few_slices", "missing_slices", "slice_thickness", "kernel"}
    assert "jump from -99.5 to 103.0 mm: about 161 slices missing" in \
        found["missing_slices"].message
    # "SmartScore - Gated": five contiguous 2.5 mm slices.
    gated = SeriesSummary.from_datasets(_dicomdir_series("98892001/CT5N"))
    assert gated.stack.spacing == pytest.approx(2.5) and not gated.stack.gaps
    assert {v.code for v in check_series(criteria["nodules"], gated)} == {
        "too_few_slices", "slice_thickness", "kernel"}


def test_a_study_is_accepted_by_its_best_series(criteria: dict[str, Criteria]) -> None:
    files = [ds for s in (corpus.SIEMENS_TOPOGRAM, corpus.SIEMENS_FORCE_BR40D,
                          corpus.SIEMENS_CHEST_B70F) for ds in s.files()]
    result = check_study(criteria["nodules"], study_series(iter(files)))
    assert result.accepted
    assert result.chosen is not None and result.chosen.kernel == ("B70f",)
    assert [v.code for v in result.violations] == ["several_series"]
    assert result.violations[0].severity is Severity.WARNING
    assert "series 3 'Thorax 1.0 B70f' is taken (also: series 4 'Thorax 1.0 Br40 3')" in \
        result.violations[0].message


def test_a_study_without_a_fit_says_why_its_closest_series_fails(
        criteria: dict[str, Criteria]) -> None:
    files = [ds for s in (corpus.SIEMENS_TOPOGRAM, corpus.GE_CHEST_THICK) for ds in s.files()]
    result = check_study(criteria["nodules"], study_series(files))
    assert not result.accepted and result.chosen is None
    assert [v.code for v in result.violations] == ["no_matching_series", "slice_thickness"]
    assert result.violations[1].series == "series 12 'Chest 5mm'"
    assert result.violations[1].to_json()["series"] == "series 12 'Chest 5mm'"
    empty = check_study(criteria["nodules"], [])
    assert [v.code for v in empty.violations] == ["no_series"] and not empty.accepted
    lone = check_study(criteria["nodules"], study_series(corpus.GE_CHEST_THICK.files()))
    assert [v.code for v in lone.violations] == ["slice_thickness"]


def test_files_of_two_series_sent_as_one_are_mixed(criteria: dict[str, Criteria]) -> None:
    files = corpus.SIEMENS_CHEST_B70F.files() + corpus.GE_CHEST_LUNG.files()
    mixed = SeriesSummary.from_datasets(files)
    codes = {v.code for v in check_series(criteria["nodules"], mixed)}
    assert "mixed_series" in codes
    message = next(v.message for v in check_series(criteria["nodules"], mixed)
                   if v.code == "mixed_series")
    assert "2 SeriesInstanceUIDs" in message and "kernels B70f, LUNG" in message


def test_a_volume_without_positions_or_in_two_planes_is_refused(
        criteria: dict[str, Criteria]) -> None:
    files = corpus.GE_CHEST_LUNG.files()
    for ds in files[:3]:
        del ds.ImagePositionPatient
    codes = {v.code for v in check_series(criteria["nodules"],
                                          SeriesSummary.from_datasets(files))}
    assert codes == {"no_positions"}
    files = corpus.GE_CHEST_LUNG.files()
    coronal, again = copy.deepcopy(files[5]), copy.deepcopy(files[7])
    coronal.ImageOrientationPatient = list(corpus.CORONAL)
    files += [coronal, again]           # a slice of another plane, and one sent twice
    codes = {v.code for v in check_series(criteria["nodules"],
                                          SeriesSummary.from_datasets(files))}
    assert codes == {"mixed_orientations", "duplicate_slices"}
    files = corpus.GE_CHEST_LUNG.files()
    for ds in files:
        del ds.PixelSpacing
    codes = {v.code for v in check_series(criteria["nodules"],
                                          SeriesSummary.from_datasets(files))}
    assert codes == {"no_pixel_spacing"}
