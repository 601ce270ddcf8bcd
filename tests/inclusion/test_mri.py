"""FLAIR or not, and the acquisition, on the vendors' MR headers."""

from __future__ import annotations

from typing import Any

import pytest

from server.inclusion.check import check_series
from server.inclusion.criteria import Criteria
from server.inclusion.headers import SeriesSummary
from server.inclusion.mri import acquisitions, allowed, flair_reading
from server.inclusion.violation import Severity

from . import corpus


@pytest.mark.parametrize(("name", "verdict", "says"), [
    ("SIEMENS_SPACE_FLAIR", "flair", "inversion time 1800 ms"),
    ("GE_CUBE_FLAIR", "flair", "inversion time 1796 ms"),
    ("PHILIPS_VIEW_FLAIR", "flair", "inversion time 1650 ms"),
    ("SIEMENS_AXIAL_FLAIR", "flair", "inversion time 2370 ms"),
    ("ANONYMIZED_FLAIR", "flair", "inversion time 1800 ms"),
    ("SIEMENS_MPRAGE", "other", "inversion time 900 ms: a T1 inversion recovery or a STIR"),
    ("GE_T1_FLAIR", "other", "inversion time 860 ms"),
    ("SIEMENS_T1_SE_GADO", "other", "ScanningSequence SE: no inversion recovery"),
    ("BARE_IR", "unknown", "an inversion recovery without InversionTime or a name"),
])
def test_the_vendors_sequences(name: str, verdict: str, says: str,
                               summaries: dict[str, SeriesSummary]) -> None:
    reading = flair_reading(summaries[name])
    assert (reading.verdict, says in reading.reason) == (verdict, True), reading.reason


def mr(description: str = "", **fields: Any) -> SeriesSummary:
    return SeriesSummary("1.2", "1.2.3", 5, description, "", 1, (), **fields)


@pytest.mark.parametrize(("summary", "verdict", "says"), [
    # Names alone, when the timings were stripped.
    (mr("t2_tirm_tra_dark-fluid"), "flair", "named 't2_tirm_tra_dark-fluid'"),
    (mr("AX FLAIR"), "flair", "named 'AX FLAIR'"),
    (mr("3D_Brain_VIEW_FLAIR"), "flair", ""),
    (mr("t2_spc_da-fl_sag_p2_iso"), "flair", ""),
    (mr("Sag T1 FLAIR"), "other", "T1-weighted FLAIR"),
    (mr("T1FLAIR_AX"), "other", "T1-weighted FLAIR"),
    (mr("t2_tirm_cor_STIR", inversion_time_ms=2300.0), "other", "names a STIR"),
    (mr("3D DIR", inversion_time_ms=3000.0), "other", "names a DIR"),
    # Enhanced MR: InversionRecovery and a private pulse sequence name.
    (mr(inversion_recovery="NO"), "other", "no inversion recovery"),
    (mr(inversion_recovery="YES"), "unknown", "an inversion recovery without"),
    (mr(vendor_sequence="FLAIR_3D"), "flair", "named 'FLAIR_3D'"),
    (mr(), "unknown", "no ScanningSequence, InversionTime or sequence name"),
    (mr(scanning_sequence=("SE",), sequence_variant=("SK", "MP")), "unknown",
     "magnetization-prepared sequence (SequenceVariant MP)"),
    (mr(scanning_sequence=("GR",), sequence_variant=("SP",)), "other",
     "ScanningSequence GR: no inversion recovery"),
    (mr("FLAIR", inversion_time_ms=0.0, scanning_sequence=("SE", "IR")), "flair", ""),
])
def test_names_timings_and_techniques(summary: SeriesSummary, verdict: str, says: str) -> None:
    reading = flair_reading(summary)
    assert reading.verdict == verdict and says in reading.reason, reading.reason


def test_acquisitions(summaries: dict[str, SeriesSummary]) -> None:
    assert acquisitions(summaries["SIEMENS_SPACE_FLAIR"]) == (frozenset({"3d"}),
                                                              "MRAcquisitionType 3D")
    assert acquisitions(summaries["SIEMENS_AXIAL_FLAIR"])[0] == {"2d-axial"}
    assert acquisitions(summaries["SIEMENS_SAGITTAL_2D_FLAIR"])[0] == {"2d-sagittal"}
    files = corpus.SIEMENS_AXIAL_FLAIR.files()
    for ds in files:
        del ds.MRAcquisitionType
    either = SeriesSummary.from_datasets(files)
    assert acquisitions(either) == (frozenset({"3d", "2d-axial"}),
                                    "no MRAcquisitionType (axial slices)")
    assert allowed("2d-coronal", frozenset({"2d"})) and not allowed("2d-coronal",
                                                                    frozenset({"2d-axial"}))


def test_an_acquisition_without_its_type_is_settled_when_both_readings_agree(
        criteria: dict[str, Criteria]) -> None:
    rule = criteria["multiple-sclerosis"]
    for series, codes in ((corpus.SIEMENS_AXIAL_FLAIR, []),
                          (corpus.SIEMENS_SAGITTAL_2D_FLAIR, ["acquisition_unknown"])):
        files = series.files()
        for ds in files:
            del ds.MRAcquisitionType
        found = check_series(rule, SeriesSummary.from_datasets(files))
        assert [v.code for v in found] == codes
        assert all(v.severity is Severity.WARNING for v in found)
    (unknown,) = found
    assert unknown.message == ("no MRAcquisitionType (sagittal slices): a 3-D or 2-D sagittal "
                               "acquisition, and only 3-D is allowed; this question needs 3-D "
                               "or 2-D axial (a reviewer will look)")
