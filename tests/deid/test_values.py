"""Replacement values: D's dummies valid for their VR, the dummies check-release accepts,
dates moved by whole days, free text cleaned of what identifies."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from server.deid.table import ATTRIBUTES
from server.deid.values import (
    DUMMIES,
    clean_text,
    dummy,
    identifying_terms,
    is_accepted_dummy,
    shift_date,
    shift_datetime,
)


def test_every_dummy_is_valid_for_its_vr_and_survives_a_file() -> None:
    ds = Dataset()
    vrs = {a.vr.split(" or ")[0] for a in ATTRIBUTES.values()} - {"SQ", "UI"}
    assert vrs <= set(DUMMIES)
    for attribute in ATTRIBUTES.values():
        vr = attribute.vr.split(" or ")[0]
        if vr in DUMMIES and attribute.tag.group > 0x0002:
            ds.add(DataElement(attribute.tag, vr, dummy(vr)))
    with pydicom.config.strict_reading():
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        out = io.BytesIO()
        pydicom.config.settings.writing_validation_mode = pydicom.config.RAISE
        try:
            ds.save_as(out, implicit_vr=False, little_endian=True)
        finally:
            pydicom.config.settings.writing_validation_mode = pydicom.config.WARN
    again = pydicom.dcmread(io.BytesIO(out.getvalue()), force=True)
    for element in again:
        assert is_accepted_dummy(element.value, element.VR), element
    with pytest.raises(ValueError, match="no dummy"):
        dummy("SQ")


@pytest.mark.parametrize(("value", "vr"), [
    ("", "PN"), (None, "LO"), ("  ", "SH"), ("^", "PN"), ("ANONYMIZED", "LO"),
    ("Anonymous", "PN"), ("ANONYMOUS^PATIENT", "PN"), ("removed", "LO"),
    ("00010101", "DA"), ("19000101", "DA"), ("000000.00", "TM"), ("000000", "TM"),
    ("00010101010101.000000+0000", "DT"), ("0", "DS"), ("0", "IS"), (0, "US"),
    ("000Y", "AS"), (b"\x00\x00", "OB"), (b"Anonymized", "OB"),
    ("http://anonymized.invalid", "UR"), (["ANONYMIZED", ""], "LO"), (Sequence(), "SQ"),
    (Sequence([Dataset()]), "SQ"),  # D's dummy for a sequence: one empty item
])
def test_what_anonymizers_write_is_accepted(value: object, vr: str) -> None:
    assert is_accepted_dummy(value, vr)


@pytest.mark.parametrize(("value", "vr"), [
    ("DUPONT^JEANNE", "PN"), ("20190412", "DA"), ("101502", "TM"), ("20190412101502", "DT"),
    ("CHU Lyon", "LO"), ("71", "DS"), (7, "US"), (b"\x01", "OB"), ("071Y", "AS"),
    ("ANONYMIZED SMITH", "PN"), ("PSEUDO-0123456789ABCDEF", "LO"),
    (Sequence([Dataset(), Dataset({0x00101010: DataElement(0x00101010, "AS", "071Y")})]),
     "SQ"),
])
def test_real_values_are_not_dummies(value: object, vr: str) -> None:
    assert not is_accepted_dummy(value, vr)


def test_a_pseudonym_is_a_dummy_only_where_podium_writes_it() -> None:
    assert is_accepted_dummy("PSEUDO-0123456789ABCDEF", "LO", pseudonym_allowed=True)
    assert not is_accepted_dummy("PSEUDO-0123", "LO", pseudonym_allowed=True)


@given(st.dates(min_value=date(1000, 1, 1), max_value=date(9000, 1, 1)),
       st.integers(-3652, 3652))
def test_dates_move_by_whole_days(day: date, days: int) -> None:
    def da(d: date) -> str:
        return f"{d.year:04d}{d.month:02d}{d.day:02d}"

    text = da(day)
    moved = shift_date(text, days)
    assert moved == da(day + timedelta(days=days))
    assert shift_datetime(text + "101502.25+0100", days) == f"{moved}101502.25+0100"


@pytest.mark.parametrize("value", ["2019", "201904", "20191340", "notadate", "00010101"])
def test_what_cannot_be_moved_says_so(value: str) -> None:
    assert shift_date(value, -400) is None or value == "00010101" and shift_date(value, 1)


def test_free_text_keeps_its_meaning_without_what_identifies() -> None:
    terms = identifying_terms(["DUPONT^JEANNE", "CHU Lyon Sud", b"\x01", 7])
    assert terms == {"DUPONT", "JEANNE", "CHU LYON SUD"}
    assert clean_text("THORAX SANS IV", terms) == "THORAX SANS IV"
    assert clean_text("Scanner de Jeanne Dupont au CHU Lyon Sud", terms) == "Scanner de au"
    assert clean_text("IRM du 12/04/2019, suivi 2019-04-12", terms) == "IRM du , suivi"
    assert clean_text("rappeler au 04 72 11 22 33 ou a j.dupont@chu.fr", terms) == \
        "rappeler au ou a"
    assert clean_text("T2 FLAIR 3D 1.5T", terms) == "T2 FLAIR 3D 1.5T"
    assert clean_text("BRAIN SEQ  4.8  H31s", terms) == "BRAIN SEQ  4.8  H31s"  # untouched
