"""server/inclusion/review.py: which reading an exam needs, who may give it, what each reviewer
sees, when the readings settle the exam."""

from __future__ import annotations

import pytest

from server.inclusion.review import (
    Reading,
    check_grade,
    may_take,
    needed,
    settled_grade,
    visible,
)


def r(reading: int, reviewer: int, grade: str) -> Reading:
    return Reading(reading, reviewer, grade, f"by {reviewer}")


def test_single_reading() -> None:
    assert (needed("single", []), settled_grade("single", [])) == (1, None)
    assert (needed("single", [r(1, 7, "C")]), settled_grade("single", [r(1, 7, "C")])) == (
        None, "C")
    assert may_take("single", [r(1, 7, "C")], 8) is None


def test_double_reading_agreeing_and_disagreeing() -> None:
    one = [r(1, 7, "B")]
    assert (needed("double", one), may_take("double", one, 7), may_take("double", one, 8)) == (
        2, None, 2)
    agree = [*one, r(2, 8, "B")]
    assert (settled_grade("double", agree), needed("double", agree)) == ("B", None)
    split = [*one, r(2, 8, "D")]
    assert (settled_grade("double", split), needed("double", split)) == (None, 3)
    assert [may_take("double", split, x) for x in (7, 8, 9)] == [None, None, 3]
    assert settled_grade("double", [*split, r(3, 9, "D")]) == "D"
    # reading 2 given first (reading 1 taken by a reviewer who never committed): 1 is next
    assert needed("double", [r(2, 8, "A")]) == 1


def test_blindness() -> None:
    split = [r(1, 7, "A"), r(2, 8, "D")]
    assert visible("double", split, 7) == [split[0]]
    assert visible("double", split, 8) == [split[1]]
    assert visible("double", split, 9) == split          # the one who settles it
    assert visible("double", [split[0]], 8) == []
    assert visible("double", split, None) == split       # the organizers
    settled = [*split, r(3, 9, "B")]
    assert visible("double", settled, 7) == settled


@pytest.mark.parametrize("given", ["E", "", None, 1, "A B"])
def test_bad_grades(given: object) -> None:
    with pytest.raises(ValueError, match="one of A, B, C or D"):
        check_grade(given)


def test_grades_are_read_in_either_case() -> None:
    assert [check_grade(g) for g in ("a", " D ", "C")] == ["A", "D", "C"]
