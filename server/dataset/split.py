"""A seeded, patient-disjoint, stratified split of a question's kept exams (docs/datasets.md).

Pure: no I/O, no event loop. `split(exams, plan)` places every exam in one named set (or in
none, when the sizes asked add up to fewer exams than there are) and returns the `Split`;
`report(split)` counts each set per center, per class or value bin and per quality grade.

The algorithm, and what it guarantees:

1. Sizes. Sizes given in exams are used as they are; fractions become sizes by the largest
   remainder on the number of exams (ties to the set declared first). More exams asked than
   there are is refused (`SplitRefused`); fewer leaves the rest out of every set.
2. Patients. Exams are grouped by the patient's pseudonym (an exam without one is a patient
   of its own); a patient is never divided. Its stratum is that of its first exam (by id).
3. Strata. A stratum is the combination of what `stratify` names: the center, and the class
   (benign / malignant) or the value's bin. Each stratum s with n_s exams is owed
   n_s × size_k / N exams in set k (N: all exams).
4. Patients with several exams are placed first, largest first (seeded order among equals),
   each in the set where its stratum is owed most, among the sets that still have room for
   all its exams. When none has room the split is refused.
5. The patients with one exam fill the rest: the room left in each set is shared among the
   strata in proportion to the exams each still has, and that table is rounded so that every
   row (a stratum's exams) and every column (a set's room) adds up exactly, each cell the
   floor or the ceiling of its share (a controlled rounding, found as a maximum flow). Within
   a stratum the patients are dealt to the sets in a seeded random order.

Guarantees: no patient in two sets; every set has exactly its size whenever the split is not
refused, and it is never refused when the exams of patients with several exams number no more
than the smallest set; the same exams, plan and seed give the same split, whatever the order
the exams are listed in; when every patient has one exam, each stratum's count in each set is
within one of its share n_s × size_k / N.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from server.errors import SplitRefused

STRATA = ("center", "class", "value")
OUTSIDE = ""  # the exams left out of every set when the sizes add up to fewer


@dataclass(frozen=True)
class SplitExam:
    """What the split knows of a kept exam. `target` is its class ("benign", "malignant") or
    its value's bin ("[2, 4)"), None when the question has neither."""

    id: int
    patient: str | None
    center: str
    target: str | None = None
    grade: str | None = None

    @property
    def patient_key(self) -> str:
        return self.patient if self.patient else f"exam {self.id}"


@dataclass(frozen=True)
class SplitPlan:
    """`sets`: names in order, each with a size in exams (int) or a fraction (float)."""

    seed: int
    sets: tuple[tuple[str, int | float], ...]
    stratify: tuple[str, ...] = ("center",)


@dataclass(frozen=True)
class Split:
    seed: int
    sizes: tuple[tuple[str, int], ...]          # each set's size, in the plan's order
    assignment: Mapping[int, str]               # exam id -> set name (OUTSIDE: in none)
    exams: tuple[SplitExam, ...] = field(repr=False)

    def members(self, name: str) -> list[SplitExam]:
        return sorted((e for e in self.exams if self.assignment[e.id] == name),
                      key=lambda e: e.id)


def sizes_of(plan: SplitPlan, total: int) -> list[tuple[str, int]]:
    """Each set's size in exams; SplitRefused when more are asked than there are."""
    names = [name for name, _ in plan.sets]
    amounts = [amount for _, amount in plan.sets]
    if all(isinstance(a, int) for a in amounts):
        sizes = [int(a) for a in amounts]
    else:
        shares = [Fraction(a).limit_denominator(10**6) * total for a in amounts]
        sizes = [math.floor(s) for s in shares]
        wanted = min(total, round(sum(shares)))
        by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - sizes[i]), i))
        for i in by_remainder[:max(0, wanted - sum(sizes))]:
            sizes[i] += 1
    asked = sum(sizes)
    if asked > total:
        listed = ", ".join(f"{n} {s}" for n, s in zip(names, sizes, strict=True))
        raise SplitRefused(f"the sets ask for {asked} exams ({listed}) but the question has "
                           f"{total} kept; lower the sizes or keep more exams")
    return list(zip(names, sizes, strict=True))


def split(exams: Iterable[SplitExam], plan: SplitPlan) -> Split:
    exams = tuple(sorted(exams, key=lambda e: e.id))
    sizes = sizes_of(plan, len(exams))
    left = len(exams) - sum(s for _, s in sizes)
    bins = [*sizes, (OUTSIDE, left)] if left else list(sizes)
    names = [n for n, _ in bins]
    room = {n: s for n, s in bins}
    rng = random.Random(_seed_bytes(plan.seed))  # noqa: S311 - reproducible, not secret

    patients: dict[str, list[SplitExam]] = defaultdict(list)
    for exam in exams:
        patients[exam.patient_key].append(exam)
    stratum = {key: _stratum(group[0], plan.stratify) for key, group in patients.items()}
    strata = sorted(set(stratum.values()))
    count = Counter(stratum[e.patient_key] for e in exams)
    total = len(exams)
    owed = {(s, n): Fraction(count[s] * room[n], total) if total else Fraction(0)
            for s in strata for n in names}

    assignment: dict[int, str] = {}
    placed: Counter[tuple[str, str]] = Counter()

    def place(key: str, name: str) -> None:
        for exam in patients[key]:
            assignment[exam.id] = name
        room[name] -= len(patients[key])
        placed[(stratum[key], name)] += len(patients[key])

    several = sorted(k for k, g in patients.items() if len(g) > 1)
    rng.shuffle(several)
    several.sort(key=lambda k: -len(patients[k]))
    for key in several:
        weight, s = len(patients[key]), stratum[key]
        fits = [n for n in names if room[n] >= weight]
        if not fits:
            raise SplitRefused(f"patient {key} has {weight} exams and no set has room for all "
                               "of them: with patients kept whole these sizes cannot be met "
                               "exactly; change the sizes by a few exams")
        place(key, max(fits, key=lambda n: (owed[(s, n)] - placed[(s, n)], room[n],
                                             -names.index(n))))

    singles: dict[str, list[str]] = {s: [] for s in strata}
    for key in sorted(k for k, g in patients.items() if len(g) == 1):
        singles[stratum[key]].append(key)
    rest = sum(len(v) for v in singles.values())
    if rest:
        share = {(s, n): Fraction(len(singles[s]) * room[n], rest)
                 for s in strata for n in names}
        cells = _controlled_rounding(share, strata, names,
                                     {s: len(singles[s]) for s in strata}, dict(room), rng)
        for s in strata:
            keys = singles[s]
            rng.shuffle(keys)
            at = 0
            for n in names:
                for key in keys[at:at + cells[(s, n)]]:
                    place(key, n)
                at += cells[(s, n)]
    return Split(seed=plan.seed, sizes=tuple(sizes), assignment=assignment, exams=exams)


def _seed_bytes(seed: int) -> bytes:
    # random.Random of an int is stable across Python versions too, but hashing keeps the
    # stream independent of how the seed is written (2019 and -2019 unrelated streams).
    return hashlib.sha256(f"podium-split:{seed}".encode()).digest()


def _stratum(exam: SplitExam, by: Sequence[str]) -> str:
    parts = []
    if "center" in by:
        parts.append(exam.center)
    if ("class" in by or "value" in by) and exam.target is not None:
        parts.append(exam.target)
    return " · ".join(parts)


def _controlled_rounding(share: Mapping[tuple[str, str], Fraction], rows: Sequence[str],
                         columns: Sequence[str], row_sums: Mapping[str, int],
                         column_sums: Mapping[str, int], rng: random.Random
                         ) -> dict[tuple[str, str], int]:
    """Each cell the floor or the ceiling of its share, rows and columns adding up to the sums
    given (both integers, the shares' own sums). A maximum flow from the rows' missing units
    to the columns' through the cells that have a fraction; the order the cells are tried in
    is seeded, so which cells round up varies with the seed."""
    cells = {c: math.floor(v) for c, v in share.items()}
    need_row = {r: row_sums[r] - sum(cells[(r, c)] for c in columns) for r in rows}
    need_col = {c: column_sums[c] - sum(cells[(r, c)] for r in rows) for c in columns}
    open_cells = [(r, c) for r in rows for c in columns if share[(r, c)] != cells[(r, c)]]
    rng.shuffle(open_cells)
    used: set[tuple[str, str]] = set()
    by_row: dict[str, list[str]] = defaultdict(list)
    for r, c in open_cells:
        by_row[r].append(c)

    # Augmenting paths: row -> column along an unused open cell, column -> row back along a
    # used one; a path ends at a column that still needs units.
    def augment(start: str) -> bool:
        parent: dict[Any, Any] = {("r", start): None}
        queue = [("r", start)]
        while queue:
            node = queue.pop(0)
            kind, name = node
            if kind == "r":
                for c in by_row[name]:
                    nxt = ("c", c)
                    if (name, c) not in used and nxt not in parent:
                        parent[nxt] = node
                        if need_col[c] > 0:
                            need_col[c] -= 1
                            _flip(parent, nxt, used)
                            return True
                        queue.append(nxt)
            else:
                for r in rows:
                    nxt = ("r", r)
                    if (r, name) in used and nxt not in parent:
                        parent[nxt] = node
                        queue.append(nxt)
        return False

    for r in rows:
        while need_row[r] > 0:
            if not augment(r):  # cannot happen: the shares themselves are a fractional flow
                raise AssertionError(f"no controlled rounding for stratum {r!r}")
            need_row[r] -= 1
    for cell in used:
        cells[cell] += 1
    return cells


def _flip(parent: Mapping[Any, Any], end: Any, used: set[tuple[str, str]]) -> None:
    node = end
    while parent[node] is not None:
        before = parent[node]
        if node[0] == "c":
            used.add((before[1], node[1]))
        else:
            used.discard((node[1], before[1]))
        node = before


# -- the report --------------------------------------------------------------------------------

def report(result: Split) -> list[dict[str, Any]]:
    """Per set, in order (then the exams in no set, when there are): its size and its counts
    per center, per class or value bin and per quality grade."""
    names = [n for n, _ in result.sizes]
    if OUTSIDE in result.assignment.values():
        names.append(OUTSIDE)
    out = []
    for name in names:
        members = result.members(name)
        out.append({
            "set": name or None,
            "exams": len(members),
            "patients": len({e.patient_key for e in members}),
            "centers": dict(sorted(Counter(e.center for e in members).items())),
            "targets": dict(sorted(Counter(e.target for e in members
                                           if e.target is not None).items())),
            "grades": dict(sorted(Counter(e.grade or "?" for e in members).items())),
        })
    return out


def report_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """The report as lines for a terminal (`podium split`)."""
    lines = []
    for row in rows:
        title = row["set"] or "in no set"
        lines.append(f"{title}: {row['exams']} exams, {row['patients']} patients")
        for label, key in (("centers", "centers"), ("class/bin", "targets"),
                           ("grades", "grades")):
            if row[key]:
                lines.append(f"  {label}: " + ", ".join(f"{k} {v}" for k, v in row[key].items()))
    return "\n".join(lines)


# -- what an exam's summary says of its target -------------------------------------------------

SEED_MALIGNANT = (100.0, 6.0)  # the seed: volume > 100 mm³ or diameter > 6 mm


def exam_class(summary: Mapping[str, Any],
               rule: tuple[float | None, float | None] = SEED_MALIGNANT) -> str | None:
    """benign / malignant: the summary's `label` (0 or 1) when it has one, else malignant when
    any of its `nodules` is by the rule (volume above, diameter above); None without either."""
    label = summary.get("label")
    if label in (0, 1) and not isinstance(label, bool):
        return "malignant" if label == 1 else "benign"
    nodules = summary.get("nodules")
    if not isinstance(nodules, list) or not nodules:
        return None
    volume, diameter = rule

    def malignant(nodule: Mapping[str, Any]) -> bool:
        v, d = nodule.get("volume_mm3"), nodule.get("diameter_mm")
        return bool((volume is not None and isinstance(v, int | float) and v > volume)
                    or (diameter is not None and isinstance(d, int | float) and d > diameter))
    return "malignant" if any(malignant(n) for n in nodules if isinstance(n, dict)) else "benign"


def exam_value(summary: Mapping[str, Any], name: str) -> float | None:
    """The clinical value `name` of the summary's clinical row, None when it has none."""
    row = summary.get("clinical")
    value = row.get(name) if isinstance(row, dict) else summary.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def value_bin(value: float | None, edges: Sequence[float]) -> str | None:
    """The bin "[low, high)" of `value` among the edges (the last bin closed); values outside
    go to the first or the last bin."""
    if value is None or len(edges) < 2:
        return None
    last = len(edges) - 2
    for i, (low, high) in enumerate(zip(edges, edges[1:], strict=False)):
        if value < high and i < last:
            return f"[{low:g}, {high:g})"
    return f"[{edges[-2]:g}, {edges[-1]:g}]"
