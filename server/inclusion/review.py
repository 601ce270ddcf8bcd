"""The experts' reading rules (docs/review.md): which reading an exam still needs, who may take
it, what a reviewer may see of the others' grades, and when the exam is settled. Pure: the
store (server/store/reviews.py) reads the readings and applies these.

Single reading: one expert's grade (reading 1) settles the exam. Double reading: two experts
grade it blind (readings 1 and 2, never seeing each other's grade or comment); when they agree
their grade settles it, when they differ a third expert (neither of the first two) grades it
seeing both readings (reading 3), and that grade settles it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GRADES = ("A", "B", "C", "D")
SINGLE, DOUBLE = "single", "double"
ADJUDICATION = 3


@dataclass(frozen=True)
class Reading:
    reading: int       # 1, 2 (blind), 3 (settles a disagreement)
    reviewer_id: int
    grade: str
    comment: str


def check_grade(grade: object) -> str:
    """The grade as stored, or ValueError in the reviewer's words."""
    if not isinstance(grade, str) or grade.strip().upper() not in GRADES:
        raise ValueError(f"the grade must be one of A, B, C or D, not {grade!r}")
    return grade.strip().upper()


def settled_grade(mode: str, readings: Sequence[Reading]) -> str | None:
    """The exam's final grade once its readings settle it, else None."""
    by = {r.reading: r for r in readings}
    if mode != DOUBLE:
        return by[1].grade if 1 in by else None
    if 1 not in by or 2 not in by:
        return None
    if by[1].grade == by[2].grade:
        return by[1].grade
    return by[ADJUDICATION].grade if ADJUDICATION in by else None


def needed(mode: str, readings: Sequence[Reading]) -> int | None:
    """The reading the exam needs next, None when it is settled. With double reading, 1 and
    2 are taken in either order (the lower first)."""
    if settled_grade(mode, readings) is not None:
        return None
    taken = {r.reading for r in readings}
    if mode != DOUBLE:
        return 1
    for reading in (1, 2):
        if reading not in taken:
            return reading
    return ADJUDICATION


def may_take(mode: str, readings: Sequence[Reading], reviewer_id: int) -> int | None:
    """The reading `reviewer_id` may give now, None when it may give none: the exam is
    settled, or this reviewer already read it (a third reader is neither of the first two)."""
    if any(r.reviewer_id == reviewer_id for r in readings):
        return None
    return needed(mode, readings)


def visible(mode: str, readings: Sequence[Reading], reviewer_id: int | None) -> list[Reading]:
    """The readings a reviewer may see: its own; both blind readings when it is the one to
    settle their disagreement; all once the exam is settled. `reviewer_id` None (the
    organizers): all."""
    if reviewer_id is None or settled_grade(mode, readings) is not None:
        return sorted(readings, key=lambda r: r.reading)
    if may_take(mode, readings, reviewer_id) == ADJUDICATION:
        return sorted(readings, key=lambda r: r.reading)
    return [r for r in readings if r.reviewer_id == reviewer_id]
