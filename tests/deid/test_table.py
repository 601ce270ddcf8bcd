"""Table E.1-1 as data: checked against pydicom's dictionary at import, and against an
independent transcription of the standard (dicom-anonymizer's, a test dependency)."""

from __future__ import annotations

import pytest
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.datadict import keyword_for_tag
from pydicom.tag import Tag

from server.deid.table import ATTRIBUTES, BY_KEYWORD, CODES, _parse

# dicom-anonymizer's lists, by our action codes.
THEIR_LISTS = {"D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D",
               "X_Z_TAGS": "X/Z", "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D",
               "X_Z_U_STAR_TAGS": "X/Z/U*"}


def theirs(edition: str) -> dict[Tag, str]:
    database = dicom_anonymization_database_selector(f"dicomfields_{edition}")
    return {Tag(*tag): code for name, code in THEIR_LISTS.items() for tag in database[name]
            if len(tag) == 2}  # their 4-tuples are our group rules (50xx, 60xx)


def test_the_table_has_every_row_of_the_2024c_edition() -> None:
    assert len(ATTRIBUTES) == 619  # 623 rows, less curves, overlays (2) and private
    assert {a.basic for a in ATTRIBUTES.values()} == CODES - {"K", "C"}
    assert BY_KEYWORD["PatientName"].basic == "Z"
    assert BY_KEYWORD["AcquisitionDate"].options == {"full": "K", "modif": "C"}
    assert BY_KEYWORD["PatientAge"].options == {"pat": "K"}
    assert BY_KEYWORD["SeriesDescription"].options == {"desc": "C"}
    assert BY_KEYWORD["ReferencedImageSequence"].basic == "X/Z/U*"
    for attribute in ATTRIBUTES.values():
        assert keyword_for_tag(attribute.tag) == attribute.keyword


def test_it_matches_an_independent_transcription_of_2024b() -> None:
    other = theirs("2024b")
    mine = {tag: a.basic for tag, a in ATTRIBUTES.items()}
    assert {t: c for t, c in mine.items() if t in other} == {t: other[t] for t in mine
                                                              if t in other}
    # Rows the 2024c edition added.
    assert {ATTRIBUTES[t].keyword for t in set(mine) - set(other)} == {
        "EthnicGroupCodeSequence", "TableTopPositionAlignmentUID"}
    assert set(other) <= set(mine)


def test_later_editions_only_add_rows() -> None:
    # 2026c keeps every row of ours with the same code, and adds 33 rows (25 of them unknown
    # to pydicom 3.0's dictionary): what updating the table to a later edition would bring.
    other = theirs("2026c")
    assert all(other[tag] == a.basic for tag, a in ATTRIBUTES.items())
    added = set(other) - set(ATTRIBUTES)
    assert len(added) == 33 and all(other[tag] in ("X", "D", "X/D") for tag in added)


@pytest.mark.parametrize(("line", "message"), [
    ("PatientsName                                     0010,0010 I  Z", "pydicom"),
    ("PatientName                                      0010,0020 I  Z", "pydicom"),
    ("PatientName                                      0010,0010 I  Q", "unknown action"),
    ("PatientName                                      0010,0010 I  Z      nope=K", "option"),
    ("PatientName 0010,0010", "not understood"),
    ("PatientName  0010,0010 I  Z\nPatientName  0010,0010 I  X", "twice"),
])
def test_a_typo_fails_loudly(line: str, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        _parse(line)
