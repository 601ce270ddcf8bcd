"""Matching submitted ids to truth ids, and turning a table into one checked value per id."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from server.evaluators.result import Problem, listing, notice, plural
from server.evaluators.table import Table, TableRow

_DIGITS = re.compile(r"\d+")

# (value) -> a phrase such as "is outside [0, 1]", or None when the value is acceptable.
RangeCheck = Callable[[float], str | None]

T = TypeVar("T")


@dataclass(frozen=True)
class IdIndex:
    """Truth ids, findable by their text or, when unambiguous, by their value as a number."""

    ids: tuple[str, ...]
    exact: frozenset[str]
    by_number: dict[int, tuple[str, ...]]

    @classmethod
    def of(cls, ids: Iterable[str]) -> IdIndex:
        ordered = tuple(ids)
        by_number: defaultdict[int, list[str]] = defaultdict(list)
        for truth_id in ordered:
            if _DIGITS.fullmatch(truth_id):
                by_number[int(truth_id)].append(truth_id)
        return cls(ordered, frozenset(ordered), {k: tuple(v) for k, v in by_number.items()})

    def find(self, submitted: str) -> str | None:
        """The truth id meant by a submitted id: itself, or the one equal to it as a number.

        A spreadsheet that stored 00042 as a number gives back 42; it still means 00042 when
        no other truth id is 42 as a number.
        """
        if submitted in self.exact:
            return submitted
        if _DIGITS.fullmatch(submitted):
            candidates = self.by_number.get(int(submitted), ())
            if len(candidates) == 1:
                return candidates[0]
        return None


@dataclass(frozen=True)
class Assignment(Generic[T]):
    """Which submitted items (rows, files) go with which truth id."""

    matched: dict[str, T]
    problems: tuple[Problem, ...]


def assign(
    index: IdIndex,
    items: Sequence[tuple[str, T, str]],
    *,
    what: str,
    where: str,
) -> Assignment[T]:
    """Match (submitted id, item, place) triples; report unknown, duplicate and missing ids.

    `place` says where an item was found ("row 17", "masks/0042.png") for messages.
    """
    found: defaultdict[str, list[tuple[T, str]]] = defaultdict(list)
    unknown: list[str] = []
    for submitted, item, place in items:
        truth_id = index.find(submitted)
        if truth_id is None:
            unknown.append(f"{submitted} ({place})" if submitted else place)
        else:
            found[truth_id].append((item, place))
    problems: list[Problem] = []
    prefix = f"{where}: " if where else ""
    for truth_id, hits in found.items():
        if len(hits) > 1:
            places = ", ".join(place for _, place in hits)
            problems.append(Problem(
                "duplicate_id",
                f"{prefix}id {truth_id} is given {len(hits)} times ({places}); keep one",
                truth_id,
            ))
    missing = [truth_id for truth_id in index.ids if truth_id not in found]
    if missing:
        problems.append(Problem(
            "missing_id", f"{prefix}{plural(len(missing), what)} missing: {listing(missing)}"
        ))
    if unknown:
        problems.append(Problem(
            "unknown_id",
            f"{prefix}{plural(len(unknown), 'id')} not in this challenge: {listing(unknown)}",
        ))
    matched = {truth_id: hits[0][0] for truth_id, hits in found.items() if len(hits) == 1}
    return Assignment(matched, tuple(problems))


def table_values(
    table: Table, index: IdIndex, *, label: str, check: RangeCheck, where: str = ""
) -> tuple[dict[str, float], list[Problem]]:
    """One finite, in-range value per truth id from a table, and every problem found."""
    rows = list(table.rows)
    if table.header is not None and index.find(table.header.id) is not None:
        # What looked like a header is a data row whose value is not a number.
        rows.insert(0, table.header)
    problems: list[Problem] = []
    prefix = f"{where}: " if where else f"{table.name}: "
    if rows and not any(row.text for row in rows):
        return {}, [Problem(
            "missing_value",
            f"{prefix}only one column (the ids); add the {label} as a second column: id,{label}",
        )]
    items: list[tuple[str, TableRow, str]] = []
    for row in rows:
        if not row.id:
            problems.append(Problem(
                "empty_id", f"{prefix}row {row.row} has a value ({row.text!r}) but no id"
            ))
            continue
        items.append((row.id, row, f"row {row.row}"))
    assignment = assign(index, items, what="id", where=prefix.rstrip(": "))
    problems.extend(assignment.problems)
    values: dict[str, float] = {}
    for truth_id, item in assignment.matched.items():
        problem = _value_problem(item, truth_id, label, check, prefix)
        if problem is not None:
            problems.append(problem)
        elif item.value is not None:
            values[truth_id] = item.value
    problems.sort(key=_by_row)
    return values, problems


def _value_problem(
    row: TableRow, truth_id: str, label: str, check: RangeCheck, prefix: str
) -> Problem | None:
    where = f"in row {row.row} (id {row.id})"
    if row.value is None:
        if row.text.endswith("%"):
            return Problem(
                "not_a_number",
                f"{prefix}{label} {row.text!r} {where} is a percentage; write a plain number "
                "(0.73, not 73%)",
                truth_id,
            )
        if not row.text:
            return Problem("missing_value", f"{prefix}row {row.row} (id {row.id}) has no {label}",
                           truth_id)
        return Problem(
            "not_a_number", f"{prefix}{label} {row.text!r} {where} is not a number", truth_id
        )
    if not math.isfinite(row.value):
        return Problem("not_finite", f"{prefix}{label} {row.text!r} {where} is not finite",
                       truth_id)
    phrase = check(row.value)
    if phrase is not None:
        return Problem("out_of_range", f"{prefix}{label} {row.text} {where} {phrase}", truth_id)
    return None


def _by_row(problem: Problem) -> tuple[int, int]:
    # Id-set problems (missing, unknown) first: they are usually the one real mistake.
    m = re.search(r"row (\d+)", problem.message)
    aggregate = problem.code in {"missing_id", "unknown_id"}
    return (0 if aggregate else 1, int(m.group(1)) if m and not aggregate else 0)


def within(low: float, high: float) -> RangeCheck:
    def check(value: float) -> str | None:
        if low <= value <= high:
            return None
        return f"is outside [{_fmt(low)}, {_fmt(high)}]"

    return check


def at_least(low: float) -> RangeCheck:
    def check(value: float) -> str | None:
        return None if value >= low else f"is below {_fmt(low)}"

    return check


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def constant_warning(name: str, values: npt.NDArray[np.float64], label: str,
                     consequence: str) -> list[Problem]:
    """`constant_predictions` when every value is the same: it tells no case from another."""
    if len(values) < 2 or not np.all(values == values[0]):
        return []
    return [notice(
        "constant_predictions",
        f"{name}: every {label} is {_fmt(float(values[0]))}; {consequence}. Check that the "
        "file holds your model's predictions",
    )]
