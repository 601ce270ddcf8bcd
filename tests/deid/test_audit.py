"""What check-release flags: on pydicom's own PHI-carrying test files, on the same files
de-identified by another tool (dicom-anonymizer) or blanked the way anonymizers do."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from dicomanonymizer.simpledicomanonymizer import (
    anonymize_dicom_file,
    initialize_actions_2024b,
)
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from server.deid import Keys, deidentify
from server.deid.audit import PRIVATE, audit
from server.deid.policy import RELEASE, Dates, Policy
from server.deid.table import ATTRIBUTES

KEYS = Keys(b"audit test secret of 32 bytes...")
SHIPPED = ("CT_small.dcm", "MR_small.dcm")  # shipped with pydicom (others are downloaded)


def shipped_file(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, name
    return Path(str(path))


def flags(path: Path | Dataset, policy: Policy = RELEASE) -> dict[str, str]:
    ds = path if isinstance(path, Dataset) else pydicom.dcmread(path, stop_before_pixels=True)
    return {flag.path: flag.reason for flag in audit(ds, policy)}


def test_raw_pydicom_files_are_flagged_naming_their_tags() -> None:
    ct = flags(shipped_file("CT_small.dcm"))
    for path in ("PatientName", "PatientID", "InstitutionName", "StudyDate", "StudyTime",
                 "OtherPatientIDsSequence", "(0009,1001)"):
        assert path in ct, path
    assert ct["(0009,1001)"].startswith(PRIVATE)
    assert "SOPInstanceUID" not in ct and "StudyInstanceUID" not in ct  # UIDs never flagged
    assert "PatientSex" not in ct and "Modality" not in ct
    mr = flags(shipped_file("MR_small.dcm"))
    assert {"StationName", "NameOfPhysiciansReadingStudy", "InstitutionName"} <= set(mr)


@pytest.mark.parametrize("name", SHIPPED)
def test_files_de_identified_by_another_tool_pass(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    anonymize_dicom_file(str(shipped_file(name)), str(out), base_rules_gen=initialize_actions_2024b)
    assert flags(out) == {}
    # ... and so do ours.
    ds = pydicom.dcmread(shipped_file(name))
    assert deidentify(ds, RELEASE, KEYS).accepted
    assert flags(ds) == {}


def test_files_blanked_the_way_anonymizers_do_pass() -> None:
    # As deid's and most recipes leave a file: every identifying attribute of the file
    # present but empty, or set to a standard dummy; private tags gone.
    ds = pydicom.dcmread(shipped_file("CT_small.dcm"), stop_before_pixels=True)
    ds.remove_private_tags()
    dummies = {"PN": "ANONYMOUS", "DA": "00010101", "TM": "000000.00", "LO": "ANONYMIZED"}
    for element in list(ds.iterall()):
        attribute = ATTRIBUTES.get(element.tag)
        if attribute is None or element.VR == "UI" or attribute.keyword == "PatientAge":
            continue
        if element.VR == "SQ":
            element.value = Sequence()
        else:
            element.value = dummies.get(element.VR, "")
    assert flags(ds) == {}


def test_dates_of_a_file_that_declares_them_shifted_are_taken_as_they_are() -> None:
    ds = pydicom.dcmread(shipped_file("MR_small.dcm"), stop_before_pixels=True)
    assert deidentify(ds, Policy(dates=Dates.SHIFT, patient_characteristics=True,
                                 clean_descriptors=True), KEYS).accepted
    assert ds.StudyDate not in ("", "20040826")
    assert flags(ds) == {}
    ds.DeidentificationMethodCodeSequence = Sequence()  # no longer declared: dates flagged
    assert {"StudyDate", "InstanceCreationDate"} <= set(flags(ds))


def test_what_the_engine_rejects_is_flagged() -> None:
    ds = pydicom.dcmread(shipped_file("CT_small.dcm"), stop_before_pixels=True)
    assert deidentify(ds, RELEASE, KEYS).accepted
    ds.BurnedInAnnotation = "YES"
    assert "BurnedInAnnotation" in flags(ds)
    del ds.BurnedInAnnotation
    ds.Modality = "US"
    assert "pixels" in flags(ds)["Modality"]
    ds.Modality = "CT"
    ds.add_new(0x60003000, "OW", b"\x01\x00" * 8)
    assert "overlay" in flags(ds)["(6000,3000)"]
