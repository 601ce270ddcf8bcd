"""detection (pulmonary nodules on chest CT, scored as LUNA16 scores them): candidates
`id,x,y,z,probability` in mm against nodule centres and diameters; FROC and its CPM.

A candidate hits a nodule when it lies within the nodule's radius (diameter / 2, boundary
included) of its centre, in Euclidean distance in mm. A nodule hit by several candidates counts
once, as a true positive at the highest probability among them; its other hits are neither true
nor false positives. A candidate that hits no nodule is a false positive, unless it hits an
irrelevant finding (LUNA16's term: a truth row flagged `irrelevant`, which no sensitivity
counts): then it is ignored. Keeping the candidates whose probability is at least t gives one
point of the FROC curve, (false positives / exams, detected nodules / nodules), for every
distinct probability t; the curve starts at (0, 0). `froc_cpm` is the mean of the
sensitivities the curve reaches at 1/8, 1/4, 1/2, 1, 2, 4 and 8
false positives per exam (`sensitivity_at`). See docs/formats.md.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from server.evaluators.matching import IdIndex, constant_warning
from server.evaluators.options import ScoringOptions
from server.evaluators.result import Invalid, Problem, Result, listing, notice, plural
from server.evaluators.table import Cell, Record, normalise_id, parse_records
from server.evaluators.truth import TruthError, cached

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

# The operating points of LUNA16's competition performance metric, in false positives per exam.
FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
RATE_KEYS = ("sens_fp_1_8", "sens_fp_1_4", "sens_fp_1_2", "sens_fp_1", "sens_fp_2",
             "sens_fp_4", "sens_fp_8")
RATE_WORDS = ("1/8", "1/4", "1/2", "1", "2", "4", "8")
# Candidates one exam may carry: keeps matching and the stored details bounded.
MAX_CANDIDATES = 1000

CANDIDATE_COLUMNS = ("id", "x", "y", "z", "probability")
NODULE_COLUMNS = ("id", "x", "y", "z", "diameter_mm")
NODULE_OPTIONAL = ("irrelevant",)  # 1: an irrelevant finding, 0 or empty: a nodule
# Header names a column is known by, lower case without spaces, underscores or brackets:
# LUNA16's own files (seriesuid, coordX, coordY, coordZ, diameter_mm, probability) read as is.
_NAMES = {
    "id": {"id", "examid", "exam", "seriesuid", "seriesinstanceuid", "caseid", "case"},
    "x": {"x", "xmm", "coordx"},
    "y": {"y", "ymm", "coordy"},
    "z": {"z", "zmm", "coordz"},
    "probability": {"probability", "prob", "p", "score", "confidence"},
    "diameter_mm": {"diametermm", "diameter", "d", "dmm"},
    "irrelevant": {"irrelevant", "irrelevantfinding", "excluded", "exclude", "ignore",
                   "ignored"},
}
_BLANK = Cell("", None)
_NOT_NAME = re.compile(r"[\s_()\[\]\-]+")


@dataclass(frozen=True)
class DetectionTruth:
    """The exams in file order and, per exam, its nodules: rows of x, y, z, diameter (mm);
    and its irrelevant findings, alike (only the exams that have some)."""

    path: Path
    ids: tuple[str, ...]
    index: IdIndex
    nodules: dict[str, Floats]
    irrelevant: dict[str, Floats] = field(default_factory=dict)

    @property
    def nodule_count(self) -> int:
        return sum(len(n) for n in self.nodules.values())


@dataclass(frozen=True)
class Candidates:
    """A team's candidates per truth exam (exams without any are absent): rows of x, y, z
    and the probabilities."""

    name: str
    points: dict[str, Floats]
    probabilities: dict[str, Floats]

    @property
    def count(self) -> int:
        return sum(len(p) for p in self.probabilities.values())


@dataclass(frozen=True)
class Froc:
    """A FROC curve: its points in order of decreasing threshold, from (0, 0)."""

    fp_rates: Floats       # false positives per exam
    sensitivities: Floats
    thresholds: Floats     # the probability of each point (inf for the origin)

    def at(self, rates: Sequence[float] = FP_RATES) -> Floats:
        return sensitivity_at(self.fp_rates, self.sensitivities, rates)


@dataclass(frozen=True)
class DetectionScore:
    """What scoring a candidates table gives: the metrics, the per-exam details (in truth
    order), and the warnings."""

    metrics: dict[str, float]
    details: dict[str, list[Any]]
    warnings: tuple[Problem, ...]

    def result(self) -> Result:
        return Result.scored(dict(self.metrics), self.details, self.warnings)


# Truth.

def detection_truth(path: Path) -> DetectionTruth:
    """The validated nodules table at `path`, from the per-process cache while unchanged."""
    truth = cached(path, "file", _load_nodules)
    assert isinstance(truth, DetectionTruth)
    return truth


def _load_nodules(path: Path) -> Any:  # the cache holds any kind's truth
    return _load_truth(path)


def _load_truth(path: Path) -> DetectionTruth:
    if not path.is_file():
        raise TruthError(f"{path}: truth file not found")
    try:
        records = parse_records(path.read_bytes(), path.name, columns=5,
                                what=",".join(NODULE_COLUMNS))
        columns, rows = _columns(records, path.name, NODULE_COLUMNS, NODULE_OPTIONAL)
    except Invalid as exc:
        raise TruthError(f"{path}: {exc}") from exc
    except OSError as exc:
        raise TruthError(f"{path}: truth cannot be read ({exc.strerror})") from exc
    errors: list[str] = []
    nodules: dict[str, list[tuple[float, ...]]] = {}
    irrelevant: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    first_row: dict[tuple[str, tuple[float, ...]], int] = {}
    empty_rows: dict[str, int] = {}
    nodule_rows: dict[str, int] = {}
    for record in rows:
        where = f"{path}: row {record.row}"
        cells = _cells(record, columns)
        exam_id = normalise_id(cells[0].text)
        width = max(len(NODULE_COLUMNS), max(columns) + 1)
        if len(record.cells) > width:
            errors.append(f"{where}: {len(record.cells)} cells; the table has {width} "
                          f"columns ({', '.join((*NODULE_COLUMNS, *NODULE_OPTIONAL)[:width])})")
            continue
        if not exam_id:
            errors.append(f"{where}: empty id")
            continue
        nodules.setdefault(exam_id, [])
        if all(not c.text for c in cells[1:5]):
            if exam_id in nodule_rows:
                errors.append(f"{where}: exam {exam_id} is listed without a nodule, but row "
                              f"{nodule_rows[exam_id]} gives it one")
            empty_rows.setdefault(exam_id, record.row)
            continue
        values: list[float] = []
        for name, cell in zip(NODULE_COLUMNS[1:], cells[1:5], strict=True):
            if cell.value is None or not math.isfinite(cell.value):
                errors.append(f"{where}: {name} {cell.text!r} of id {exam_id} is not a "
                              "finite number" + (" (leave x, y, z and diameter_mm all empty "
                                                 "for an exam without a nodule)"
                                                 if not cell.text else ""))
                break
            values.append(cell.value)
        else:
            flag = cells[5]
            if flag.text and flag.value not in (0.0, 1.0):
                errors.append(f"{where}: irrelevant {flag.text!r} of id {exam_id} is not 0 or "
                              "1 (1: an irrelevant finding, ignored; 0 or empty: a nodule)")
                continue
            if values[3] <= 0:
                errors.append(f"{where}: diameter_mm {cells[4].text} of id {exam_id} is not "
                              "above 0")
                continue
            if exam_id in empty_rows:
                errors.append(f"{where}: exam {exam_id} has a nodule, but row "
                              f"{empty_rows[exam_id]} lists it without one")
                continue
            key = (exam_id, tuple(values))
            if key in first_row:
                errors.append(f"{where}: repeats row {first_row[key]} (the same nodule twice)")
                continue
            first_row[key] = record.row
            nodule_rows.setdefault(exam_id, record.row)
            (irrelevant[exam_id] if flag.value == 1.0 else nodules[exam_id]).append(
                tuple(values))
    if not errors and not nodules:
        errors.append(f"{path}: no exam; one row per nodule (id,x,y,z,diameter_mm), and a row "
                      "with the id alone for each exam without a nodule")
    if not errors and not any(nodules.values()):
        errors.append(f"{path}: no exam has a nodule; a FROC needs at least one")
    if errors:
        more = f"\n… and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise TruthError("\n".join(errors[:10]) + more)
    ids = tuple(nodules)
    return DetectionTruth(path, ids, IdIndex.of(ids), _arrays(nodules), _arrays(irrelevant))


def _arrays(rows: Mapping[str, list[tuple[float, ...]]]) -> dict[str, Floats]:
    return {i: np.asarray(r, dtype=np.float64).reshape(-1, 4) for i, r in rows.items()}


def on_exams(truth: DetectionTruth, ids: Sequence[str]) -> DetectionTruth:
    """The nodules of `truth` on the exams `ids`, in that order (a challenge whose exams are
    known otherwise, e.g. from its images): an exam the table does not name has no nodule;
    a nodule on an exam that is not among them is refused."""
    known = set(ids)
    if stray := [i for i in truth.ids if i not in known
                 and (len(truth.nodules[i]) or i in truth.irrelevant)]:
        raise TruthError(f"{truth.path}: nodules of {plural(len(stray), 'exam')} that the "
                         f"challenge does not have: {listing(stray)}")
    ordered = tuple(ids)
    empty = np.zeros((0, 4))
    return DetectionTruth(truth.path, ordered, IdIndex.of(ordered),
                          {i: truth.nodules.get(i, empty) for i in ordered},
                          {i: f for i, f in truth.irrelevant.items() if i in known})


# Reading a table of several columns (candidates, nodules).

def _canonical(text: str) -> str:
    return _NOT_NAME.sub("", text.strip().lower())


def _columns(records: list[Record], name: str, wanted: tuple[str, ...],
             optional: tuple[str, ...] = ()) -> tuple[tuple[int, ...], list[Record]]:
    """Where each wanted then optional column is (its cell index, -1 for an optional column
    the header does not name) and the data rows. A first row none of whose cells after the
    first is a number is a header naming the columns (in any order); without one, the
    columns are `wanted` then `optional`, in order."""
    if not records:
        raise Invalid(Problem("empty", f"{name} has no rows; one row per {wanted[-1]}: "
                                       + ",".join(wanted)))
    first = records[0]
    if any(c.value is not None for c in first.cells[1:]) or len(first.cells) < 2:
        return tuple(range(len(wanted) + len(optional))), records
    found: dict[str, list[int]] = defaultdict(list)
    unknown: list[str] = []
    for k, cell in enumerate(first.cells):
        column = next((c for c in (*wanted, *optional)
                       if _canonical(cell.text) in _NAMES[c]), None)
        if column is None:
            unknown.append(f"column {k + 1} {cell.text!r}" if cell.text
                           else f"column {k + 1} (no name)")
        else:
            found[column].append(k)
    problems: list[Problem] = []
    said = ", ".join(c.text or "''" for c in first.cells)
    if unknown:
        hint = (" (an unnamed first column is a pandas index: write the file with "
                "index=False)" if not first.cells[0].text else "")
        problems.append(Problem(
            "too_many_columns",
            f"{name}: the header ({said}) has {plural(len(unknown), 'column')} that "
            f"{'is' if len(unknown) == 1 else 'are'} not one of {', '.join(wanted)}: "
            f"{', '.join(unknown)}{hint}; remove {'it' if len(unknown) == 1 else 'them'}"))
    twice = [c for c, at in found.items() if len(at) > 1]
    if twice:
        problems.append(Problem(
            "too_many_columns",
            f"{name}: the header ({said}) names {', '.join(twice)} more than once; keep one"))
    missing = [c for c in wanted if c not in found]
    if missing:
        problems.append(Problem(
            "missing_column",
            f"{name}: no column {' or '.join(missing)} in the header ({said}); the columns are "
            + ",".join(wanted)))
    if problems:
        raise Invalid(problems)
    return tuple(found[c][0] if c in found else -1 for c in (*wanted, *optional)), records[1:]


def _cells(record: Record, columns: tuple[int, ...]) -> list[Cell]:
    return [record.cells[k] if 0 <= k < len(record.cells) else _BLANK for k in columns]


class _Faults:
    """Problems found in many rows, one line per kind of problem: "x is not a number in 3
    rows: 5 ('abc'), 9 ('—'), 12 ('')"."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.found: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
        self.order: list[tuple[str, str]] = []

    def add(self, code: str, what: str, place: str, exam_id: str | None) -> None:
        key = (code, what)
        if key not in self.found:
            self.found[key] = []
            self.order.append(key)
        self.found[key].append((place, exam_id))

    def problems(self) -> list[Problem]:
        out = []
        for code, what in self.order:
            places = self.found[(code, what)]
            if len(places) == 1:
                place, exam_id = places[0]
                out.append(Problem(code, f"{self.name}: {what} in {place}", exam_id))
            else:
                out.append(Problem(code, f"{self.name}: {what} in {len(places)} rows: "
                                         f"{listing([p for p, _ in places])}"))
        return out


def read_candidates(data: bytes, name: str, truth: DetectionTruth,
                    max_candidates: int = MAX_CANDIDATES) -> Candidates:
    """A candidates table (`id,x,y,z,probability`, CSV or .xlsx as spreadsheets write them)
    checked against the truth's exams; raises Invalid with every problem found."""
    expected = len(truth.ids) * max_candidates
    records = parse_records(data, name, expected, columns=5, what=",".join(CANDIDATE_COLUMNS))
    columns, rows = _columns(records, name, CANDIDATE_COLUMNS)
    faults = _Faults(name)
    unknown: list[str] = []
    points: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    probabilities: dict[str, list[float]] = defaultdict(list)
    width = len(CANDIDATE_COLUMNS)
    for record in rows:
        place = f"row {record.row}"
        if len(record.cells) > width:
            faults.add("too_many_columns", f"more than {width} cells (the columns are "
                       f"{', '.join(CANDIDATE_COLUMNS)})", place, None)
            continue
        cells = _cells(record, columns)
        submitted = normalise_id(cells[0].text)
        if not submitted:
            faults.add("empty_id", "a candidate without an id", place, None)
            continue
        exam_id = truth.index.find(submitted)
        if exam_id is None:
            unknown.append(f"{submitted} (row {record.row})")
            continue
        values: list[float] = []
        for column, cell in zip(CANDIDATE_COLUMNS[1:], cells[1:], strict=True):
            value = _checked(faults, column, cell, f"{place} (id {submitted})", exam_id)
            if value is None:
                break
            values.append(value)
        else:
            points[exam_id].append((values[0], values[1], values[2]))
            probabilities[exam_id].append(values[3])
    problems: list[Problem] = []
    if unknown:
        problems.append(Problem(
            "unknown_id", f"{name}: {plural(len(unknown), 'id')} not in this challenge: "
                          f"{listing(unknown)}"))
    problems.extend(faults.problems())
    crowded = [f"{i} ({len(p)})" for i, p in probabilities.items() if len(p) > max_candidates]
    if crowded:
        problems.append(Problem(
            "too_many_candidates",
            f"{name}: {plural(len(crowded), 'exam has', 'exams have')} more than "
            f"{max_candidates} candidates: {listing(crowded)}; keep each exam's "
            f"{max_candidates} most probable"))
    if problems:
        raise Invalid(problems)
    return Candidates(name,
                      {i: np.asarray(p, dtype=np.float64).reshape(-1, 3)
                       for i, p in points.items()},
                      {i: np.asarray(p, dtype=np.float64) for i, p in probabilities.items()})


def _checked(faults: _Faults, column: str, cell: Cell, place: str, exam_id: str
             ) -> float | None:
    if not cell.text:
        faults.add("missing_value", f"no {column}", place, exam_id)
    elif cell.value is None:
        faults.add("not_a_number", f"{column} is not a number", f"{place}: {cell.text!r}"
                   if len(cell.text) <= 20 else place, exam_id)
    elif not math.isfinite(cell.value):
        faults.add("not_finite", f"{column} is not finite", f"{place}: {cell.text!r}",
                   exam_id)
    elif column == "probability" and not 0.0 <= cell.value <= 1.0:
        faults.add("out_of_range", "probability is outside [0, 1]",
                   f"{place}: {cell.text}", exam_id)
    else:
        return float(cell.value)
    return None


# Matching and the FROC.

def _inside(points: Floats, spheres: Floats) -> npt.NDArray[np.bool_]:
    """candidates × spheres: whether each point lies within each sphere (x, y, z, diameter),
    its surface included."""
    offsets = points[:, None, :] - spheres[None, :, :3]
    squared = np.einsum("cnk,cnk->cn", offsets, offsets)
    radius = spheres[:, 3] / 2
    return np.asarray(squared <= (radius * radius)[None, :])


def match_exam(nodules: Floats, points: Floats, probabilities: Floats,
               irrelevant: Floats | None = None) -> tuple[Floats, Floats]:
    """One exam's true positives (for each detected nodule, the highest probability among the
    candidates that hit it) and false positives (the probabilities of the candidates that hit
    no nodule nor irrelevant finding). `nodules`, `irrelevant`: rows of x, y, z, diameter;
    `points`: rows of x, y, z."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(points) == 0:
        return np.zeros(0), np.zeros(0)
    inside = _inside(points, nodules)
    missed = ~inside.any(axis=1)
    if irrelevant is not None and len(irrelevant):
        missed &= ~_inside(points, irrelevant).any(axis=1)
    best = np.where(inside, probabilities[:, None], -np.inf).max(axis=0, initial=-np.inf)
    return best[inside.any(axis=0)], probabilities[missed]


def froc(hits: Floats, false_positives: Floats, exams: float, nodules: float) -> Froc:
    """The FROC curve of true-positive probabilities `hits` (one per detected nodule) and
    false-positive probabilities over `exams` exams holding `nodules` nodules."""
    thresholds = np.unique(np.concatenate([hits, false_positives]))[::-1]
    tp = len(hits) - np.searchsorted(np.sort(hits), thresholds, side="left")
    fp = len(false_positives) - np.searchsorted(np.sort(false_positives), thresholds,
                                                side="left")
    return Froc(np.concatenate([[0.0], fp / exams]),
                np.concatenate([[0.0], tp / nodules]),
                np.concatenate([[np.inf], thresholds]))


def sensitivity_at(fp_rates: Floats, sensitivities: Floats,
                   rates: Sequence[float] = FP_RATES) -> Floats:
    """The sensitivity a FROC curve reaches at each false-positive rate: on the straight line
    between the last point at or below the rate and the next one; on a vertical step (several
    nodules found at one rate) its top; past the curve's last point, that point's sensitivity
    (the curve stops where the candidates do). Works on the last axis, so a stack of curves
    (one per bootstrap draw) is read at once."""
    f = np.asarray(fp_rates, dtype=np.float64)
    s = np.asarray(sensitivities, dtype=np.float64)
    out = np.empty((*f.shape[:-1], len(rates)))
    last = f.shape[-1] - 1
    for n, rate in enumerate(rates):
        k = np.sum(f <= rate, axis=-1) - 1          # the curves are nondecreasing
        k = np.clip(k, 0, last)
        nxt = np.minimum(k + 1, last)
        f0 = np.take_along_axis(f, k[..., None], -1)[..., 0]
        f1 = np.take_along_axis(f, nxt[..., None], -1)[..., 0]
        s0 = np.take_along_axis(s, k[..., None], -1)[..., 0]
        s1 = np.take_along_axis(s, nxt[..., None], -1)[..., 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(f1 > f0, (rate - f0) / (f1 - f0), 0.0)
        out[..., n] = s0 + np.clip(t, 0.0, 1.0) * (s1 - s0)
    return out


def froc_metrics(curve: Froc) -> dict[str, float]:
    at = curve.at(FP_RATES)
    metrics = {"froc_cpm": float(np.mean(at))}
    metrics.update({key: float(v) for key, v in zip(RATE_KEYS, at, strict=True)})
    metrics["sensitivity_max"] = float(curve.sensitivities[-1])
    metrics["fp_per_exam_max"] = float(curve.fp_rates[-1])
    return metrics


def details_froc(details: dict[str, Any] | Any) -> Froc:
    """The FROC curve of a submission's stored details."""
    hits = np.array([p for exam in details["hits"] for p in exam], dtype=np.float64)
    fps = np.array([p for exam in details["false_positives"] for p in exam], dtype=np.float64)
    return froc(hits, fps, len(details["ids"]), float(sum(details["nodules"])))


def score_candidates(truth: DetectionTruth, candidates: Candidates,
                     volumes: Mapping[str, tuple[Floats, Floats]] | None = None
                     ) -> DetectionScore:
    """Matches a checked candidates table with the truth: the metrics, the per-exam details
    (`ids`, `nodules`: counts, `hits`: the true-positive probabilities, `false_positives`:
    the false positives' probabilities, each a list per exam in truth order), the warnings.

    `volumes` (a challenge that releases the exams' series knows them): per exam, the lowest
    and highest x, y, z (mm, LPS) of its voxel centres; candidates outside their exam's
    volume are the warning `outside_exam` (voxel indices, or RAS, given for millimetres)."""
    hits: list[list[float]] = []
    fps: list[list[float]] = []
    for exam_id in truth.ids:
        tp, fp = match_exam(truth.nodules[exam_id],
                            candidates.points.get(exam_id, np.zeros((0, 3))),
                            candidates.probabilities.get(exam_id, np.zeros(0)),
                            truth.irrelevant.get(exam_id))
        hits.append([float(p) for p in tp])
        fps.append(sorted((float(p) for p in fp), reverse=True))
    details: dict[str, list[Any]] = {
        "ids": list(truth.ids),
        "nodules": [len(truth.nodules[i]) for i in truth.ids],
        "hits": hits,
        "false_positives": fps,
    }
    curve = details_froc(details)
    warnings: list[Problem] = []
    if candidates.count == 0:
        warnings.append(notice(
            "no_candidates", f"{candidates.name}: no candidate in any exam, so no nodule is "
                             "found (sensitivity 0); check that the file holds your model's "
                             "output"))
    else:
        every = np.concatenate(list(candidates.probabilities.values()))
        warnings.extend(constant_warning(
            candidates.name, every, "probability",
            "the FROC curve has a single point, joined to (0, 0)"))
        if volumes is not None:
            warnings.extend(_outside(candidates, volumes))
    return DetectionScore(froc_metrics(curve), details, tuple(warnings))


def _outside(candidates: Candidates, volumes: Mapping[str, tuple[Floats, Floats]]
             ) -> list[Problem]:
    """`outside_exam`: candidates farther than a millimetre outside their exam's volume."""
    out: dict[str, int] = {}
    for exam_id, points in candidates.points.items():
        if exam_id not in volumes or not len(points):
            continue
        low, high = (np.asarray(v, dtype=np.float64) for v in volumes[exam_id])
        lo, hi = np.minimum(low, high) - 1.0, np.maximum(low, high) + 1.0
        outside = int(np.count_nonzero(((points < lo) | (points > hi)).any(axis=1)))
        if outside:
            out[exam_id] = outside
    if not out:
        return []
    total = sum(out.values())
    return [notice(
        "outside_exam",
        f"{candidates.name}: {plural(total, 'candidate lies', 'candidates lie')} outside "
        f"{'its' if total == 1 else 'their'} exam's volume, so they find no nodule: "
        f"{listing([f'{i} ({n})' for i, n in out.items()])}. x, y, z are millimetres in the "
        "exam's patient coordinates (DICOM LPS, as ImagePositionPatient): not voxel "
        "indices, and not RAS (x and y negated)")]


def score_candidate_bytes(truth: DetectionTruth, data: bytes, name: str,
                          options: ScoringOptions) -> Result:
    """A candidates table given as bytes (an upload, or a member of a zip), scored."""
    try:
        candidates = read_candidates(data, name, truth)
    except Invalid as exc:
        return Result.invalid(exc.problems, options.max_errors)
    return score_candidates(truth, candidates).result()


def score_detection(truth: DetectionTruth, submission: Path, options: ScoringOptions,
                    name: str | None = None) -> Result:
    name = name or submission.name
    try:
        data = submission.read_bytes()
    except OSError as exc:
        return Result.invalid([Problem("unreadable", f"{name}: cannot be read "
                                                     f"({exc.strerror})")], options.max_errors)
    return score_candidate_bytes(truth, data, name, options)


# The rank bootstrap: the exams drawn, with their nodules and false positives.

def resampled_cpm(details: dict[str, Any] | Any, draws: Ints) -> Floats:
    """CPM on each bootstrap draw of exam indices (`draws`: draws × exams): an exam drawn
    twice brings its nodules and false positives twice; NaN for a draw without a nodule.

    Between two probabilities at which nodules are found the curve runs flat, so it is
    drawn through two points per such probability t — before and after the candidates of
    probability t enter — and its last point: the same lines as through every threshold,
    with as many points as nodules found, whatever the number of false positives."""
    n = len(details["ids"])
    hits = [np.sort(np.asarray(h, dtype=np.float64)) for h in details["hits"]]
    fps = [np.sort(np.asarray(f, dtype=np.float64)) for f in details["false_positives"]]
    levels = np.unique(np.concatenate([*hits, np.zeros(0)]))[::-1]

    def above(values: list[Floats], side: Any) -> Floats:
        # Per exam and level: how many values lie above it (side "right": strictly).
        return np.array([len(v) - np.searchsorted(v, levels, side=side) for v in values],
                        dtype=np.float64).reshape(n, len(levels))

    # Columns: the origin, then (before, after) for each level, then every candidate.
    tp_at = np.concatenate([np.zeros((n, 1)),
                            np.stack([above(hits, "right"), above(hits, "left")],
                                     axis=2).reshape(n, -1),
                            np.array([[len(h)] for h in hits], dtype=np.float64)], axis=1)
    fp_at = np.concatenate([np.zeros((n, 1)),
                            np.stack([above(fps, "right"), above(fps, "left")],
                                     axis=2).reshape(n, -1),
                            np.array([[len(f)] for f in fps], dtype=np.float64)], axis=1)
    weights = np.stack([np.bincount(d, minlength=n) for d in draws]).astype(np.float64) \
        if len(draws) else np.zeros((0, n))
    total = weights @ np.asarray(details["nodules"], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivities = (weights @ tp_at) / total[:, None]
    cpm = sensitivity_at((weights @ fp_at) / n, sensitivities).mean(axis=1)
    cpm[total == 0] = np.nan
    return np.asarray(cpm, dtype=np.float64)
