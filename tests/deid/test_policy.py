"""One action per attribute: options over the Basic Profile, compound codes resolved."""

from __future__ import annotations

import pytest

from server.deid.policy import RELEASE, Dates, Policy, resolve
from server.deid.table import BY_KEYWORD

SHIFT_ALL = Policy(dates=Dates.SHIFT, patient_characteristics=True, clean_descriptors=True)


@pytest.mark.parametrize(("keyword", "basic", "resolved"), [
    ("AccessionNumber", "Z", "Z"),
    ("PatientAddress", "X", "X"),
    ("PersonName", "D", "D"),
    ("StudyInstanceUID", "U", "U"),
    ("AcquisitionDate", "X/Z", "Z"),           # Type 3 versus 2: Z valid for both
    ("SeriesDate", "X/D", "D"),                # Type 3 versus 1: D valid for both
    ("StationName", "X/Z/D", "D"),
    ("PatientID", "Z/D", "D"),
    ("ReferencedImageSequence", "X/Z/U*", "U*"),  # kept, its UIDs replaced
])
def test_compound_codes_take_the_letter_valid_for_every_type(keyword: str, basic: str,
                                                             resolved: str) -> None:
    attribute = BY_KEYWORD[keyword]
    assert attribute.basic == basic
    assert resolve(attribute, Policy()) == resolved


@pytest.mark.parametrize(("keyword", "policy", "code"), [
    ("StudyDate", Policy(dates=Dates.SHIFT), "C"),
    ("StudyDate", Policy(dates=Dates.KEEP), "K"),
    ("StudyDate", Policy(), "Z"),
    ("PatientAge", Policy(patient_characteristics=True), "K"),
    ("PatientAge", Policy(), "X"),
    ("PatientSex", RELEASE, "K"),
    ("Allergies", Policy(patient_characteristics=True), "C"),
    ("SeriesDescription", Policy(clean_descriptors=True), "C"),
    ("RequestAttributesSequence", RELEASE, "C"),
    ("PatientBirthDate", SHIFT_ALL, "Z"),  # not longitudinal: no option keeps it
    ("DeviceSerialNumber", SHIFT_ALL, "D"),  # Retain Device Identity is not offered
    ("InstitutionName", SHIFT_ALL, "D"),
    # Allergies has a C under both Patient Characteristics and Clean Descriptors.
    ("Allergies", Policy(patient_characteristics=True, clean_descriptors=True), "C"),
    ("DateOfLastDetectorCalibration", Policy(dates=Dates.KEEP), "K"),
    ("DateOfLastDetectorCalibration", Policy(dates=Dates.SHIFT), "C"),
])
def test_options_override_the_basic_profile(keyword: str, policy: Policy, code: str) -> None:
    assert resolve(BY_KEYWORD[keyword], policy) == code


def test_the_method_codes_name_what_was_applied() -> None:
    assert [c for c, _ in Policy().method_codes()] == ["113100"]
    assert [c for c, _ in SHIFT_ALL.method_codes()] == ["113100", "113105", "113107",
                                                        "113108"]
    assert [c for c, _ in Policy(dates=Dates.KEEP).method_codes()] == ["113100", "113106"]
    for policy in (Policy(), SHIFT_ALL, RELEASE, Policy(dates=Dates.KEEP,
                                                        patient_characteristics=True,
                                                        clean_descriptors=True)):
        assert len(policy.method_text()) <= 64  # De-identification Method is an LO
