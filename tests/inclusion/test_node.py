"""The DICOM node inside the server: the question a study is for (pure, on the vendor corpus
and the seed's Table 1), then real senders — DCMTK's storescu and pynetdicom — against a
running server, and a server killed with SIGKILL in the middle of an association.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from server.inclusion.criteria import Criteria
from server.inclusion.headers import SeriesSummary
from server.inclusion.node import choose_question, source_key, study_label

from . import corpus

SEED_ORDER = ("sarcopenia", "nodules", "multiple-sclerosis")


def questions(criteria: Mapping[str, Criteria], *slugs: str) -> list[tuple[str, Criteria | None]]:
    return [(s, criteria[s]) for s in slugs]


@pytest.mark.parametrize(("series", "expected", "why"), [
    ("SIEMENS_L3_B30F", "sarcopenia", "meets"),           # one soft slice at L3
    ("SIEMENS_L3_TOO_THICK", "sarcopenia", "fewest"),     # one slice, 8 mm: still the 2-D one
    ("GE_ABDOMEN_SERIES", "nodules", "fewest"),           # a CT volume: the 3-D CT question
    ("SIEMENS_CHEST_B70F", "nodules", "meets"),
    ("SIEMENS_SPACE_FLAIR", "multiple-sclerosis", "meets"),
    ("SIEMENS_MPRAGE", "multiple-sclerosis", "fewest"),   # MR, not FLAIR: still the MR one
])
def test_a_study_goes_to_the_question_whose_modality_and_dimension_it_fits(
        criteria: dict[str, Criteria], summaries: dict[str, SeriesSummary], series: str,
        expected: str, why: str) -> None:
    choice = choose_question(questions(criteria, *SEED_ORDER), [summaries[series]])
    assert choice.challenge == expected
    assert why in choice.why


def test_the_choice_ignores_a_localizer_and_the_order_breaks_ties(
        criteria: dict[str, Criteria], summaries: dict[str, SeriesSummary]) -> None:
    study = [summaries["SIEMENS_TOPOGRAM"], summaries["SIEMENS_CHEST_B70F"]]
    assert choose_question(questions(criteria, *SEED_ORDER), study).challenge == "nodules"
    # Two questions the study fits alike: the one the center lists first.
    same = [("nodules", criteria["nodules"]), ("nodules-again", criteria["nodules"])]
    assert choose_question(same, study).challenge == "nodules"
    assert choose_question(same[::-1], study).challenge == "nodules-again"


def test_a_study_no_question_takes_goes_to_the_first_and_one_question_is_that_one(
        criteria: dict[str, Criteria], summaries: dict[str, SeriesSummary]) -> None:
    ct_only = questions(criteria, "nodules", "sarcopenia")
    choice = choose_question(ct_only, [summaries["SIEMENS_SPACE_FLAIR"]])
    assert choice.challenge == "nodules" and "no question takes this modality" in choice.why
    only = choose_question(questions(criteria, "sarcopenia"), [summaries["SIEMENS_CHEST_B70F"]])
    assert only.challenge == "sarcopenia" and only.why == "the center's only question"
    with pytest.raises(ValueError, match="without questions"):
        choose_question([], [summaries["SIEMENS_CHEST_B70F"]])


def test_the_label_says_date_modality_description_never_the_patient() -> None:
    ds = corpus.read_back(corpus.SIEMENS_CHEST_B70F.datasets()[0])
    ds.StudyDate, ds.StudyDescription = "20190314", "THORAX SANS INJ"
    ds.PatientName, ds.PatientID = "Dupont^Jean", "123456"
    label = study_label(ds)
    assert label == "2019-03-14 CT THORAX SANS INJ"
    assert "Dupont" not in label and "123456" not in label


def test_the_source_key_is_keyed_by_the_secret_and_the_center() -> None:
    a = source_key(b"s" * 32, 1, "1.2.3")
    assert a == source_key(b"s" * 32, 1, "1.2.3")
    assert len({a, source_key(b"t" * 32, 1, "1.2.3"), source_key(b"s" * 32, 2, "1.2.3"),
                source_key(b"s" * 32, 1, "1.2.4")}) == 4
    assert "1.2.3" not in a
