"""A center's annotation of an exam against its question's criteria.

Pure functions on what the readers (server/evaluators/) already read: a mask array and the
exam's shape; nodule positions, sizes and densities; a clinical row as a mapping of field to
value. No file is opened here.

- `check_mask(mask, exam_shape, empty=...)`: present, the exam's shape (size-1 axes aside:
  a 2-D slice's mask may come as (1, rows, columns)), two values (0 and one other), not
  empty unless the question allows it.
- `check_nodules(nodules, rule, volume, label=None)`: a count in the rule's range, each
  position inside the volume (in mm, patient coordinates as DICOM's ImagePositionPatient,
  or in voxels (column, row, slice) from 0), each density allowed, and the exam's label
  consistent with the malignancy rule (the seed: malignant when volume > 100 mm³ or diameter
  > 6 mm).
- `check_clinical(row, fields, today=None)`: each declared field present (unless optional),
  of its type and in its range; a date never after `today`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from server.inclusion.criteria import ClinicalField, NoduleRule
from server.inclusion.headers import SeriesSummary, Vector, normal_of
from server.inclusion.violation import Severity, Violation

V, W = Severity.VIOLATION, Severity.WARNING


def _dims(shape: Sequence[int]) -> str:
    return " × ".join(str(n) for n in shape)


def check_mask(mask: npt.NDArray[Any] | None, exam_shape: Sequence[int], *,
               empty: Severity | Literal["allowed"] = V) -> list[Violation]:
    if mask is None:
        return [Violation("mask_missing", "mask", "the annotation has no mask; this question "
                          "needs one, on the exam's grid", V, "none", "a mask")]
    found = tuple(n for n in mask.shape if n != 1)
    wanted = tuple(n for n in exam_shape if n != 1)
    if found != wanted:
        hint = ""
        if found == wanted[::-1] or (len(found) == 3 and found == (wanted[2], wanted[1],
                                                                     wanted[0])):
            hint = " (its axes look reversed: write it in the exam's order)"
        return [Violation("mask_shape", "mask", f"the mask is {_dims(mask.shape)}, the exam "
                          f"{_dims(exam_shape)}{hint}", V, _dims(mask.shape),
                          _dims(exam_shape))]
    if mask.dtype == np.bool_:
        foreground = int(np.count_nonzero(mask))
    else:
        if mask.dtype.kind == "f" and not np.isfinite(mask).all():
            return [Violation("mask_not_binary", "mask", "the mask holds NaN or infinite "
                              "values; a mask has 0 and one other value", V, "NaN", "0 and 1")]
        nonzero = mask[mask != 0]
        foreground = int(nonzero.size)
        if foreground and (nonzero != nonzero.flat[0]).any():
            values = np.unique(nonzero)
            shown = ", ".join(f"{v:g}" for v in values[:4]) + (", …" if values.size > 4 else "")
            zero = "0 and " if foreground < mask.size else ""
            return [Violation("mask_not_binary", "mask", f"the mask holds {zero}{shown}: a "
                              "mask has 0 and one other value (one label)", V,
                              f"{values.size + (foreground < mask.size)} values", "0 and 1")]
    if foreground == 0 and empty != "allowed":
        return [Violation("mask_empty", "mask", "the mask is empty (every pixel is 0)",
                          Severity(empty), "empty", "a drawn mask")]
    return []


@dataclass(frozen=True)
class Volume:
    """Where an exam's voxels are: `shape` (slices, rows, columns), the first slice's first
    pixel at `origin`, the directions of a row and a column, the normal, and the spacings
    (between rows, between columns, between slices), in mm."""

    shape: tuple[int, int, int]
    origin: Vector = (0.0, 0.0, 0.0)
    row_direction: Vector = (1.0, 0.0, 0.0)      # along a row: columns increase
    column_direction: Vector = (0.0, 1.0, 0.0)   # along a column: rows increase
    normal: Vector = (0.0, 0.0, 1.0)             # slices increase
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)  # row, column, slice

    @classmethod
    def from_series(cls, series: SeriesSummary) -> Volume | None:
        """The volume of a series' stack, slices in order along the normal; None when its
        slices carry no geometry."""
        stack = series.stack
        placed = [s for s in series.slices if s.position is not None and s.orientation]
        if not placed or stack.normal is None or not series.sizes or not series.pixel_spacing:
            return None
        orientation = placed[0].orientation
        assert orientation is not None
        normal = normal_of(orientation) or stack.normal
        first = min(placed, key=lambda s: sum(p * n for p, n in
                                              zip(s.position or (), normal, strict=True)))
        assert first.position is not None
        rows, columns = series.sizes[0]
        r = (orientation[0], orientation[1], orientation[2])
        c = (orientation[3], orientation[4], orientation[5])
        return cls((len(placed), rows, columns), first.position, r, c, normal,
                   (series.pixel_spacing[0], series.pixel_spacing[1], stack.spacing or 1.0))

    def voxel_of(self, point: Vector) -> tuple[float, float, float]:
        """(column, row, slice) of a point in mm, fractional."""
        d = [p - o for p, o in zip(point, self.origin, strict=True)]

        def dot(u: Vector) -> float:
            return sum(a * b for a, b in zip(d, u, strict=True))

        return (dot(self.row_direction) / self.spacing[1],
                dot(self.column_direction) / self.spacing[0],
                dot(self.normal) / self.spacing[2])

    def contains_voxel(self, voxel: tuple[float, float, float]) -> bool:
        limits = (self.shape[2], self.shape[1], self.shape[0])   # columns, rows, slices
        return all(-0.5 <= v <= n - 0.5 for v, n in zip(voxel, limits, strict=True))


@dataclass(frozen=True)
class Nodule:
    position: Vector
    diameter_mm: float | None = None
    volume_mm3: float | None = None
    density: str | None = None
    name: str = ""        # how the center's file names it ("nodule 2", a row number)


def _malignant(nodule: Nodule, rule: NoduleRule) -> bool | None:
    m = rule.malignant
    assert m is not None
    said = []
    if m.volume_mm3_above is not None and nodule.volume_mm3 is not None:
        said.append(nodule.volume_mm3 > m.volume_mm3_above)
    if m.diameter_mm_above is not None and nodule.diameter_mm is not None:
        said.append(nodule.diameter_mm > m.diameter_mm_above)
    return any(said) if said else None


def _sizes(nodule: Nodule) -> str:
    parts = []
    if nodule.volume_mm3 is not None:
        parts.append(f"volume {nodule.volume_mm3:g} mm³")
    if nodule.diameter_mm is not None:
        parts.append(f"diameter {nodule.diameter_mm:g} mm")
    return ", ".join(parts)


def check_nodules(nodules: Sequence[Nodule], rule: NoduleRule, volume: Volume,
                  label: bool | int | None = None) -> list[Violation]:
    out = []
    n = len(nodules)
    expected = rule.count.text()
    if not rule.count.contains(n):
        out.append(Violation("nodule_count", "nodules.count", f"{n} nodule{'s' * (n != 1)} "
                             f"annotated; this question needs {expected}", V, str(n), expected))
    for index, nodule in enumerate(nodules, start=1):
        name = nodule.name or f"nodule {index}"
        if rule.positions == "voxel":
            voxel = nodule.position
        else:
            voxel = volume.voxel_of(nodule.position)
        if not volume.contains_voxel(voxel):
            where = ", ".join(f"{v:g}" for v in nodule.position)
            space = "voxel (column, row, slice)" if rule.positions == "voxel" else "mm"
            out.append(Violation("nodule_outside", "nodules.positions", f"{name} at ({where}) "
                                 f"{space} is outside the exam's volume "
                                 f"({_dims(volume.shape)} voxels)", V, f"({where})",
                                 "inside the volume"))
        if rule.densities is not None:
            density = (nodule.density or "").strip().casefold()
            if density not in rule.densities:
                said = f"density {nodule.density!r}" if density else "no density"
                out.append(Violation("nodule_density", "nodules.densities", f"{name} has {said}; "
                                     "allowed: " + ", ".join(sorted(rule.densities)), V,
                                     nodule.density or "none", ", ".join(sorted(rule.densities))))
    if rule.malignant is None:
        return out
    verdicts = []
    for index, nodule in enumerate(nodules, start=1):
        verdict = _malignant(nodule, rule)
        if verdict is None:
            out.append(Violation("nodule_size_missing", "nodules.malignant",
                                 f"{nodule.name or f'nodule {index}'} has no volume or diameter,"
                                 f" so it cannot be classed ({rule.malignant.text()} is "
                                 "malignant)", V, "no size", rule.malignant.text()))
        verdicts.append((nodule, index, verdict))
    if label is None or any(v is None for _, _, v in verdicts):
        return out
    expected_label = any(v for _, _, v in verdicts)
    if bool(label) != expected_label:
        if expected_label:
            nodule, index, _ = next(x for x in verdicts if x[2])
            why = (f"{nodule.name or f'nodule {index}'} has {_sizes(nodule)} "
                   f"({rule.malignant.text()}: malignant)")
        else:
            why = f"no nodule has {rule.malignant.text()}"
        said = "malignant (1)" if label else "benign (0)"
        out.append(Violation("label_disagrees", "nodules.malignant", f"the exam is labelled "
                             f"{said} but {why}", V, said,
                             "malignant (1)" if expected_label else "benign (0)"))
    return out


_DAY_FIRST = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and math.isnan(value))


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        x = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")    # a French spreadsheet's 3,5
        try:
            x = float(text)
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if re.fullmatch(r"\d{8}", text):                 # DICOM's DA: 20190314
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):     # ISO
            return date.fromisoformat(text)
        if m := _DAY_FIRST.match(text):                  # 14/03/2019, day first (France)
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    except ValueError:
        return None
    return None


def _field(field: ClinicalField, value: Any, today: date | None) -> Violation | None:
    name = field.name
    if _blank(value):
        if field.optional:
            return None
        return Violation("clinical_missing", f"clinical.{name}", f"{name} is empty; this "
                         "question needs it", V, "empty", field.type)
    shown = str(value).strip()
    if field.type in ("number", "integer"):
        x = _as_number(value)
        if x is None or (field.type == "integer" and x != int(x)):
            what = "a whole number" if field.type == "integer" else "a number"
            return Violation("clinical_value", f"clinical.{name}", f"{name} {shown!r} is not "
                             f"{what}", V, shown, what)
        if field.range is not None and not field.range.contains(x):
            expected = field.range.text()
            return Violation("clinical_range", f"clinical.{name}", f"{name} {x:g}; this "
                             f"question needs {expected}", V, f"{x:g}", expected)
        if field.step is not None:
            base = field.range.low if field.range and field.range.low is not None else 0.0
            steps = (x - base) / field.step
            if abs(steps - round(steps)) > 1e-6:
                return Violation("clinical_value", f"clinical.{name}", f"{name} {x:g} is not "
                                 f"a step of {field.step:g} from {base:g}", V, f"{x:g}",
                                 f"steps of {field.step:g}")
        return None
    if field.type == "choice":
        if shown.casefold() not in {c.casefold() for c in field.choices}:
            allowed = ", ".join(field.choices)
            return Violation("clinical_value", f"clinical.{name}", f"{name} {shown!r}; "
                             f"allowed: {allowed}", V, shown, allowed)
        return None
    day = _as_date(value)
    if day is None:
        return Violation("clinical_value", f"clinical.{name}", f"{name} {shown!r} is not a "
                         "date (write 2019-03-14, 20190314 or 14/03/2019)", V, shown, "a date")
    latest = field.latest
    if today is not None and (latest is None or today < latest):
        latest = today
    if field.earliest is not None and day < field.earliest:
        return Violation("clinical_range", f"clinical.{name}", f"{name} {day.isoformat()} is "
                         f"before {field.earliest.isoformat()}", V, day.isoformat(),
                         f"from {field.earliest.isoformat()}")
    if latest is not None and day > latest:
        future = " (in the future)" if today is not None and day > today else ""
        return Violation("clinical_range", f"clinical.{name}", f"{name} {day.isoformat()} is "
                         f"after {latest.isoformat()}{future}", V, day.isoformat(),
                         f"until {latest.isoformat()}")
    return None


def check_clinical(row: Mapping[str, Any], fields: Sequence[ClinicalField], *,
                   today: date | None = None,
                   also: Collection[str] = ()) -> list[Violation]:
    """A clinical row (field -> value as read from the center's table) against the declared
    fields; `today` (injected, never read from a clock here) refuses dates after it; `also`
    names columns the caller expects besides the fields (an exam id)."""
    out = [v for f in fields if (v := _field(f, row.get(f.name), today)) is not None]
    declared = {f.name for f in fields} | set(also)
    for extra in row:
        if extra not in declared:
            out.append(Violation("clinical_unknown_field", "clinical", f"the row has a column "
                                 f"{extra!r} this question does not ask for (declared: "
                                 + ", ".join(sorted(f.name for f in fields)) + ")", W,
                                 extra, "declared fields"))
    return out
