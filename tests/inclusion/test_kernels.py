"""The vendor kernel table, on the names each vendor's scanners write."""

from __future__ import annotations

import pytest

from server.inclusion.kernels import classify_kernel, kernel_name, vendor_of


@pytest.mark.parametrize(("manufacturer", "kernel", "verdict"), [
    # Siemens SOMATOM: family, sharpness, suffix; below 50 soft.
    ("SIEMENS", "B10f", "soft"), ("SIEMENS", "B30f", "soft"), ("SIEMENS", "B31f", "soft"),
    ("SIEMENS", "B45f", "soft"), ("SIEMENS", "B50f", "hard"), ("SIEMENS", "B70f", "hard"),
    ("SIEMENS", "B80f", "hard"), ("SIEMENS", "I30f", "soft"), ("SIEMENS", "I70f", "hard"),
    ("SIEMENS", "Q30f", "soft"), ("SIEMENS", "Hr40", "soft"), ("SIEMENS", "Hr60", "hard"),
    ("Siemens Healthineers", ["Br40d", "3"], "soft"), ("SIEMENS", ["Bl57d", "3"], "hard"),
    ("Siemens Healthcare GmbH", "Bv40d", "soft"), ("SIEMENS", ["Qr40d", "2"], "soft"),
    ("SIEMENS", "Br64d", "hard"), ("SIEMENS", "U90u", "hard"),
    # GE LightSpeed / Revolution: words.
    ("GE MEDICAL SYSTEMS", "STANDARD", "soft"), ("GE MEDICAL SYSTEMS", "SOFT", "soft"),
    ("GE MEDICAL SYSTEMS", "DETAIL", "soft"), ("GE MEDICAL SYSTEMS", "LUNG", "hard"),
    ("GE MEDICAL SYSTEMS", "BONE", "hard"), ("GE MEDICAL SYSTEMS", "BONEPLUS", "hard"),
    ("GE MEDICAL SYSTEMS", "BONE PLUS", "hard"), ("GE Healthcare", "EDGE", "hard"),
    ("GE MEDICAL SYSTEMS", "CHST", "hard"),
    # Philips Brilliance / iCT: letters.
    ("Philips", "A", "soft"), ("Philips", "B", "soft"), ("Philips Medical Systems", "UB", "soft"),
    ("Philips", "C", "hard"), ("Philips", "D", "hard"), ("Philips", "E", "hard"),
    ("Philips", "L", "hard"), ("Philips", "YA", "hard"), ("Philips", "YB", "hard"),
    ("Philips", "YC", "hard"), ("Philips", "Lung Enhanced", "hard"),
    # Canon / Toshiba Aquilion: numbers.
    ("TOSHIBA", "FC01", "soft"), ("TOSHIBA", "FC03", "soft"), ("TOSHIBA", "FC13", "soft"),
    ("TOSHIBA", "FC26", "soft"), ("TOSHIBA", "FC30", "hard"), ("TOSHIBA", "FC51", "hard"),
    ("TOSHIBA", "FC56", "hard"), ("CANON_MEC", "FC86", "hard"), ("CANON_MEC", "FL04", "hard"),
    ("Canon Medical Systems", "LUNG", "hard"), ("CANON_MEC", "BODY", "soft"),
])
def test_each_vendors_kernels(manufacturer: str, kernel: str | list[str], verdict: str) -> None:
    reading = classify_kernel(manufacturer, kernel)
    assert reading.verdict == verdict, reading.reason


@pytest.mark.parametrize(("manufacturer", "kernel", "says"), [
    ("TOSHIBA", "FC43", "FC43 is not in Podium's table of Canon kernels"),
    ("TOSHIBA", "FC99", "not in Podium's table of Canon kernels"),
    ("SIEMENS", "Zz30f", "not in Podium's table of Siemens kernels"),
    ("GE MEDICAL SYSTEMS", "ULTRA", "not in Podium's table of GE kernels"),
    ("GE MEDICAL SYSTEMS", "B30f", "not in Podium's table of GE kernels"),  # not guessed
    ("Philips", "", "the headers carry no ConvolutionKernel"),
    ("UIH", "B_SOFT_B", "in no vendor's table (manufacturer: UIH)"),
    ("", "XYZ", "XYZ is in no vendor's table (manufacturer: no Manufacturer)"),
])
def test_a_kernel_the_table_does_not_know_is_unknown(manufacturer: str, kernel: str,
                                                      says: str) -> None:
    reading = classify_kernel(manufacturer, kernel)
    assert reading.verdict == "unknown"
    assert says in reading.reason


def test_without_a_manufacturer_the_vendors_that_know_the_name_must_agree() -> None:
    bone = classify_kernel("", "BONE")     # GE's and Canon's: both hard
    assert bone.verdict == "hard" and bone.vendor is None
    assert "(manufacturer: no Manufacturer)" in bone.reason
    assert classify_kernel("", "B30f").verdict == "soft"      # only Siemens writes it
    assert classify_kernel("", "STANDARD").verdict == "soft"
    assert classify_kernel("", "FC51").verdict == "hard"


def test_a_question_may_name_kernels_the_table_lacks() -> None:
    reading = classify_kernel("TOSHIBA", "FC43", {"fc43": "hard"})
    assert reading.verdict == "hard" and "named hard by this question" in reading.reason


def test_the_kernel_among_convolution_kernels_values() -> None:
    assert kernel_name(["Br40f", "3"]) == "Br40f"
    assert kernel_name(["3", "Br40f"]) == "Br40f"
    assert kernel_name(["", " "]) == ""
    assert vendor_of("GE MEDICAL SYSTEMS") == "GE" and vendor_of("GEMS") == "GE"
    assert vendor_of("Gemini") is None and vendor_of("TOSHIBA_MEC") == "Canon"
