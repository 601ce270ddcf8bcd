"""The split's pure core: patient-disjoint, exact sizes, seeded, stratified within one."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.dataset.split import (
    OUTSIDE,
    SplitExam,
    SplitPlan,
    exam_class,
    exam_value,
    report,
    report_text,
    sizes_of,
    split,
    value_bin,
)
from server.errors import SplitRefused

CENTERS = ("Lyon", "Bordeaux", "Foch")
CLASSES = ("benign", "malignant")


@st.composite
def cohorts(draw: st.DrawFn, several: bool = True) -> list[SplitExam]:
    """Exams of patients with one exam, and (when `several`) a few patients with two or
    three, whose exams together never outnumber the smallest set asked in the tests."""
    singles = draw(st.integers(12, 60))
    exams = []
    for i in range(singles):
        exams.append(SplitExam(i + 1, f"P{i}", draw(st.sampled_from(CENTERS)),
                               draw(st.sampled_from(CLASSES)), draw(st.sampled_from("ABC"))))
    if several:
        for j in range(draw(st.integers(0, 2))):
            center = draw(st.sampled_from(CENTERS))
            for _ in range(draw(st.integers(2, 3))):
                exams.append(SplitExam(len(exams) + 1, f"Q{j}", center,
                                       draw(st.sampled_from(CLASSES)), "A"))
    return exams


def _plan(exams: list[SplitExam], seed: int) -> SplitPlan:
    # Every set at least 6 exams: more than the patients with several exams hold.
    n = len(exams)
    first, second = max(6, n // 3), max(6, n // 3)
    return SplitPlan(seed, (("training", n - first - second), ("validation", first),
                            ("test", second)), ("center", "class"))


@settings(max_examples=15, deadline=None)
@given(cohorts(), st.integers(0, 2**31))
def test_no_patient_is_in_two_sets_and_the_sizes_are_exact(exams: list[SplitExam],
                                                           seed: int) -> None:
    plan = _plan(exams, seed)
    result = split(exams, plan)
    sets_of: dict[str, set[str]] = {}
    for exam in exams:
        sets_of.setdefault(exam.patient_key, set()).add(result.assignment[exam.id])
    assert all(len(s) == 1 for s in sets_of.values())
    counts = Counter(result.assignment.values())
    assert [(name, counts[name]) for name, _ in plan.sets] == list(plan.sets)


@settings(max_examples=15, deadline=None)
@given(cohorts(), st.integers(0, 2**31), st.randoms(use_true_random=False))
def test_the_same_seed_gives_the_same_split_in_any_order(exams: list[SplitExam], seed: int,
                                                         shuffler: object) -> None:
    plan = _plan(exams, seed)
    again = list(exams)
    shuffler.shuffle(again)  # type: ignore[attr-defined]
    assert split(exams, plan).assignment == split(again, plan).assignment


@settings(max_examples=15, deadline=None)
@given(cohorts(several=False), st.integers(0, 2**31))
def test_each_stratum_is_within_one_of_its_share(exams: list[SplitExam], seed: int) -> None:
    plan = _plan(exams, seed)
    result = split(exams, plan)
    strata = Counter((e.center, e.target) for e in exams)
    got = Counter(((e.center, e.target), result.assignment[e.id]) for e in exams)
    for stratum, n in strata.items():
        for name, size in plan.sets:
            share = Fraction(n * int(size), len(exams))
            assert abs(got[(stratum, name)] - share) < 1, (stratum, name, share)


def test_another_seed_gives_another_split() -> None:
    exams = [SplitExam(i, f"P{i}", CENTERS[i % 3], CLASSES[i % 2]) for i in range(1, 61)]
    plan = SplitPlan(1, (("training", 30), ("test", 30)), ("center", "class"))
    assert split(exams, plan).assignment != split(exams, SplitPlan(2, plan.sets,
                                                                     plan.stratify)).assignment


def test_the_seed_sizes_of_table_4_and_fractions() -> None:
    assert sizes_of(SplitPlan(0, (("training", 513), ("validation", 512), ("test", 500))),
                    1525) == [("training", 513), ("validation", 512), ("test", 500)]
    # 1031 nodule exams at 1/3 each: the remainder goes to the set declared first.
    assert sizes_of(SplitPlan(0, (("training", 1 / 3), ("validation", 1 / 3),
                                  ("test", 1 / 3))), 1031) == [
        ("training", 344), ("validation", 344), ("test", 343)]


def test_fewer_exams_than_asked_is_refused_with_the_numbers() -> None:
    exams = [SplitExam(i, f"P{i}", "Lyon") for i in range(1, 11)]
    with pytest.raises(SplitRefused, match=r"ask for 12 exams \(training 6, test 6\) but the "
                                           r"question has 10 kept"):
        split(exams, SplitPlan(0, (("training", 6), ("test", 6))))


def test_a_patient_too_large_for_every_set_is_refused() -> None:
    exams = [SplitExam(i, "P-same", "Lyon") for i in range(1, 6)]
    exams.append(SplitExam(6, "P-other", "Lyon"))
    with pytest.raises(SplitRefused, match="patient P-same has 5 exams and no set has room"):
        split(exams, SplitPlan(0, (("training", 3), ("test", 3))))


def test_exams_left_over_are_in_no_set_and_reported() -> None:
    exams = [SplitExam(i, None, "Lyon", grade="B") for i in range(1, 11)]
    result = split(exams, SplitPlan(3, (("training", 4), ("test", 4))))
    rows = report(result)
    assert [(r["set"], r["exams"]) for r in rows] == [("training", 4), ("test", 4), (None, 2)]
    assert sum(1 for v in result.assignment.values() if v == OUTSIDE) == 2
    assert rows[0]["grades"] == {"B": 4} and rows[0]["centers"] == {"Lyon": 4}
    assert "in no set: 2 exams, 2 patients" in report_text(rows)


def test_an_exams_class_and_value_bin_from_its_summary() -> None:
    small = {"diameter_mm": 4.0, "volume_mm3": 30.0}
    large = {"diameter_mm": 8.0, "volume_mm3": 200.0}
    assert exam_class({"nodules": [small]}) == "benign"
    assert exam_class({"nodules": [small, large]}) == "malignant"
    assert exam_class({"label": 0, "nodules": [large]}) == "benign"
    assert exam_class({}) is None
    assert exam_value({"clinical": {"edss_2y": "3.5"}}, "edss_2y") == 3.5
    assert exam_value({"clinical": {"edss_2y": ""}}, "edss_2y") is None
    assert [value_bin(v, [0, 3, 6, 10]) for v in (0, 2.5, 3, 9.5, 10, None)] == [
        "[0, 3)", "[0, 3)", "[3, 6)", "[6, 10]", "[6, 10]", None]
