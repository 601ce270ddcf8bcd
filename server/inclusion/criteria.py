"""A question's inclusion criteria, as the event file declares them.

`parse_criteria(table, where)` reads one `[challenges.inclusion.criteria]` table (the event
loader passes the parsed TOML and where it is, `challenges[1].inclusion.criteria`) into a
frozen `Criteria`; a key it does not know, a value of the wrong type or out of its range, or a
key that does not apply (a kernel for MR, a FLAIR for CT) raises `CriteriaError` naming the
key. docs/inclusion.md lists every key; the seed's Table 1 is written out there in full.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, cast

from server.inclusion.violation import Severity

Modality = Literal["CT", "MR"]
Dimension = Literal["2d", "3d"]
KernelClass = Literal["soft", "hard"]
Contrast = Literal["required", "forbidden", "any"]
Acquisition = Literal["3d", "2d", "2d-axial", "2d-sagittal", "2d-coronal"]
FieldType = Literal["number", "integer", "choice", "date"]

MODALITIES: tuple[Modality, ...] = ("CT", "MR")
ACQUISITIONS: tuple[Acquisition, ...] = ("3d", "2d", "2d-axial", "2d-sagittal", "2d-coronal")
DEFAULT_MIN_SLICES = 20


class CriteriaError(ValueError):
    """A criteria table is refused: `key` is the dotted key (`challenges[1].inclusion.criteria.
    kernel`), `detail` what is wrong with it."""

    def __init__(self, where: str, key: str | None, detail: str) -> None:
        self.where = where
        self.key = f"{where}.{key}" if key else where
        self.detail = detail
        super().__init__(f"[{self.key}] {detail}")


def _number(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Interval:
    """A range of numbers, each end inclusive (`min`, `max`) or exclusive (`above`, `below`),
    or open. Values are compared after rounding to `digits` decimals: DICOM writers store
    1.25 mm as "1.250000" or "1.2500000476837", and a measured spacing of 1.2499999 mm is the
    1.25 mm slice it was meant to be."""

    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None
    high_inclusive: bool = True
    digits: int = 2

    def contains(self, value: float) -> bool:
        x = round(value, self.digits)
        if self.low is not None and (x < self.low or (x == self.low and not self.low_inclusive)):
            return False
        if self.high is not None:
            if x > self.high or (x == self.high and not self.high_inclusive):
                return False
        return True

    def text(self, unit: str = "") -> str:
        """"< 1.25 mm", "1.25 to 7 mm", "≥ 18"; the seed's own phrasings."""
        suffix = f" {unit}" if unit else ""
        low, high = self.low, self.high
        if low is not None and high is not None and self.low_inclusive and self.high_inclusive:
            return f"{_number(low)} to {_number(high)}{suffix}"
        parts = []
        if low is not None:
            parts.append(("≥ " if self.low_inclusive else "> ") + _number(low))
        if high is not None:
            parts.append(("≤ " if self.high_inclusive else "< ") + _number(high))
        return (" and ".join(parts) or "any value") + suffix


@dataclass(frozen=True)
class MalignancyRule:
    """A nodule is malignant when its volume or its diameter is above these (the seed:
    volume > 100 mm³ or diameter > 6 mm); None leaves that measure out."""

    volume_mm3_above: float | None = None
    diameter_mm_above: float | None = None

    def text(self) -> str:
        parts = []
        if self.volume_mm3_above is not None:
            parts.append(f"volume > {_number(self.volume_mm3_above)} mm³")
        if self.diameter_mm_above is not None:
            parts.append(f"diameter > {_number(self.diameter_mm_above)} mm")
        return " or ".join(parts)


@dataclass(frozen=True)
class NoduleRule:
    count: Interval
    positions: Literal["mm", "voxel"] = "mm"
    densities: frozenset[str] | None = None
    malignant: MalignancyRule | None = None


@dataclass(frozen=True)
class ClinicalField:
    name: str
    type: FieldType
    optional: bool = False
    range: Interval | None = None          # number, integer
    step: float | None = None              # number: EDSS in half steps
    choices: tuple[str, ...] = ()          # choice
    earliest: date | None = None           # date
    latest: date | None = None


@dataclass(frozen=True)
class Criteria:
    """One question's criteria. A check reads only the fields that are set: `kernel = "any"`,
    `contrast = "any"`, `sequence = None` and an empty `acquisition` check nothing."""

    modality: Modality
    dimension: Dimension
    min_slices: int = DEFAULT_MIN_SLICES
    slice_thickness: Interval | None = None
    kernel: KernelClass | Literal["any"] = "any"
    kernel_mismatch: Severity = Severity.VIOLATION
    kernel_unknown: Severity = Severity.WARNING
    # Kernel names this question adds to the vendor table (any manufacturer, any case).
    extra_kernels: Mapping[str, KernelClass] | None = None
    contrast: Contrast = "any"
    contrast_unknown: Severity = Severity.WARNING
    sequence: Literal["flair"] | None = None
    sequence_unknown: Severity = Severity.WARNING
    acquisition: frozenset[Acquisition] = frozenset()
    acquisition_unknown: Severity = Severity.WARNING
    mask: bool = False
    empty_mask: Severity | Literal["allowed"] = Severity.VIOLATION
    nodules: NoduleRule | None = None
    clinical: tuple[ClinicalField, ...] = ()


_TOP_KEYS = {
    "modality", "dimension", "min_slices", "slice_thickness_mm", "kernel", "kernel_mismatch",
    "kernel_unknown", "kernels", "contrast", "contrast_unknown", "sequence", "sequence_unknown",
    "acquisition", "acquisition_unknown", "mask", "empty_mask", "nodules", "clinical",
}
_INTERVAL_KEYS = {"min", "max", "above", "below"}
_NODULE_KEYS = {"count", "positions", "densities", "malignant"}
_MALIGNANT_KEYS = {"volume_mm3_above", "diameter_mm_above"}
_FIELD_KEYS = {"type", "optional", "min", "max", "above", "below", "step", "choices",
               "earliest", "latest"}
_SEVERITIES = ("violation", "warning")


class _Reader:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str | None, detail: str) -> CriteriaError:
        return CriteriaError(self.where, key, detail)

    def keys(self, table: Mapping[str, Any], allowed: set[str], prefix: str = "") -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(prefix + key, f"unknown key {key!r}; allowed: "
                                + ", ".join(sorted(allowed)))

    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"{key.rsplit('.', 1)[-1]} must be a table, got {value!r}")
        return value

    def choice(self, table: Mapping[str, Any], key: str, choices: Sequence[str],
               default: str | None = None, prefix: str = "") -> str:
        if key not in table:
            if default is None:
                raise self.fail(prefix + key, f"missing required key {key!r}")
            return default
        value = table[key]
        if value not in choices:
            raise self.fail(prefix + key, f"{key} must be one of "
                            + ", ".join(map(repr, choices)) + f", got {value!r}")
        return str(value)

    def severity(self, table: Mapping[str, Any], key: str, default: Severity) -> Severity:
        return Severity(self.choice(table, key, _SEVERITIES, default.value))

    def number(self, value: Any, key: str, *, minimum: float | None = None,
               integer: bool = False) -> float:
        kinds = (int,) if integer else (int, float)
        bad = isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value)
        if bad or (minimum is not None and value < minimum):
            what = "a whole number" if integer else "a number"
            bound = f" ≥ {_number(minimum)}" if minimum is not None else ""
            raise self.fail(key, f"{key.rsplit('.', 1)[-1]} must be {what}{bound}, "
                            f"got {value!r}")
        return float(value)

    def interval(self, value: Any, key: str, *, minimum: float | None = None,
                 integer: bool = False) -> Interval:
        table = self.table(value, key)
        self.keys(table, _INTERVAL_KEYS, key + ".")
        return self.bounds(table, key, minimum=minimum, integer=integer)

    def bounds(self, table: Mapping[str, Any], key: str, *, minimum: float | None,
               integer: bool) -> Interval:
        for inclusive, exclusive in (("min", "above"), ("max", "below")):
            if inclusive in table and exclusive in table:
                raise self.fail(f"{key}.{exclusive}", f"give {inclusive} (inclusive) or "
                                f"{exclusive} (exclusive), not both")
        found = {k: self.number(table[k], f"{key}.{k}", minimum=minimum, integer=integer)
                 for k in _INTERVAL_KEYS if k in table}
        if not found:
            raise self.fail(key, f"{key.rsplit('.', 1)[-1]} needs min or above, max or below")
        low = found.get("min", found.get("above"))
        high = found.get("max", found.get("below"))
        if low is not None and high is not None:
            empty = low > high or (low == high and ("above" in found or "below" in found))
            if empty:
                raise self.fail(key, f"the range {_describe(found)} holds no value")
        return Interval(low, "above" not in found, high, "below" not in found)

    def boolean(self, table: Mapping[str, Any], key: str, default: bool,
                prefix: str = "") -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(prefix + key, f"{key} must be true or false, got {value!r}")
        return value

    def strings(self, value: Any, key: str) -> tuple[str, ...]:
        ok = (isinstance(value, list) and value
              and all(isinstance(v, str) and v.strip() for v in value))
        if not ok:
            raise self.fail(key, f"{key.rsplit('.', 1)[-1]} must be a non-empty list of "
                            f"names, got {value!r}")
        if len({v.casefold() for v in value}) != len(value):
            raise self.fail(key, f"{key.rsplit('.', 1)[-1]} names a value twice: {value!r}")
        return tuple(value)

    def day(self, value: Any, key: str) -> date:
        # TOML has dates: earliest = 2017-01-01 (no quotes).
        if not isinstance(value, date) or hasattr(value, "hour"):
            raise self.fail(key, f"{key.rsplit('.', 1)[-1]} must be a TOML date "
                            f"(2017-01-01, no quotes), got {value!r}")
        return value


def _describe(found: Mapping[str, float]) -> str:
    signs = {"min": "≥", "above": ">", "max": "≤", "below": "<"}
    return " and ".join(f"{signs[k]} {_number(found[k])}" for k in signs if k in found)


def parse_criteria(table: Mapping[str, Any], where: str) -> Criteria:
    """The criteria of one question; `where` is the table's place in the event file, used in
    every refusal (`challenges[1].inclusion.criteria`)."""
    read = _Reader(where)
    read.table(table, "")
    read.keys(table, _TOP_KEYS)
    modality = read.choice(table, "modality", MODALITIES)
    dimension = read.choice(table, "dimension", ("2d", "3d"))

    def only(keys: Sequence[str], condition: bool, why: str) -> None:
        for key in keys:
            if key in table and not condition:
                raise read.fail(key, f"{key} {why}")

    only(("min_slices",), dimension == "3d", "applies to a volume (dimension = \"3d\")")
    only(("kernel", "kernel_mismatch", "kernel_unknown", "kernels"), modality == "CT",
         "applies to CT (a reconstruction kernel)")
    only(("sequence", "sequence_unknown", "acquisition", "acquisition_unknown"),
         modality == "MR", "applies to MR")

    min_slices = DEFAULT_MIN_SLICES
    if "min_slices" in table:
        min_slices = int(read.number(table["min_slices"], "min_slices", minimum=2,
                                     integer=True))
    thickness = None
    if "slice_thickness_mm" in table:
        thickness = read.interval(table["slice_thickness_mm"], "slice_thickness_mm",
                                  minimum=0)

    kernel = read.choice(table, "kernel", ("soft", "hard", "any"), "any")
    extra = _extra_kernels(read, table.get("kernels")) if "kernels" in table else None

    acquisition: frozenset[Acquisition] = frozenset()
    if "acquisition" in table:
        names = read.strings(table["acquisition"], "acquisition")
        for name in names:
            if name not in ACQUISITIONS:
                raise read.fail("acquisition", f"acquisition {name!r} is not one of "
                                + ", ".join(map(repr, ACQUISITIONS)))
        acquisition = frozenset(cast(tuple[Acquisition, ...], names))

    empty_mask: Severity | Literal["allowed"] = Severity.VIOLATION
    if "empty_mask" in table:
        only(("empty_mask",), "mask" in table, "applies with mask = true")
        value = read.choice(table, "empty_mask", (*_SEVERITIES, "allowed"))
        empty_mask = "allowed" if value == "allowed" else Severity(value)

    return Criteria(
        modality=cast(Modality, modality),
        dimension=cast(Dimension, dimension),
        min_slices=min_slices,
        slice_thickness=thickness,
        kernel=cast(KernelClass | Literal["any"], kernel),
        kernel_mismatch=read.severity(table, "kernel_mismatch", Severity.VIOLATION),
        kernel_unknown=read.severity(table, "kernel_unknown", Severity.WARNING),
        extra_kernels=extra,
        contrast=cast(Contrast, read.choice(table, "contrast",
                                            ("required", "forbidden", "any"), "any")),
        contrast_unknown=read.severity(table, "contrast_unknown", Severity.WARNING),
        sequence=None if read.choice(table, "sequence", ("flair", "any"), "any") == "any"
        else "flair",
        sequence_unknown=read.severity(table, "sequence_unknown", Severity.WARNING),
        acquisition=acquisition,
        acquisition_unknown=read.severity(table, "acquisition_unknown", Severity.WARNING),
        mask=read.boolean(table, "mask", False),
        empty_mask=empty_mask,
        nodules=_nodules(read, table["nodules"]) if "nodules" in table else None,
        clinical=_clinical(read, table["clinical"]) if "clinical" in table else (),
    )


def _extra_kernels(read: _Reader, value: Any) -> dict[str, KernelClass]:
    table = read.table(value, "kernels")
    read.keys(table, {"soft", "hard"}, "kernels.")
    out: dict[str, KernelClass] = {}
    for cls in ("soft", "hard"):
        for name in read.strings(table[cls], f"kernels.{cls}") if cls in table else ():
            key = name.strip().casefold()
            if key in out:
                raise read.fail(f"kernels.{cls}", f"kernel {name!r} is both soft and hard")
            out[key] = cast(KernelClass, cls)
    return out


def _nodules(read: _Reader, value: Any) -> NoduleRule:
    table = read.table(value, "nodules")
    read.keys(table, _NODULE_KEYS, "nodules.")
    if "count" not in table:
        raise read.fail("nodules.count", "missing required key 'count' ({min = 1, max = 5})")
    count = read.interval(table["count"], "nodules.count", minimum=0, integer=True)
    densities = None
    if "densities" in table:
        densities = frozenset(d.casefold() for d in
                              read.strings(table["densities"], "nodules.densities"))
    malignant = None
    if "malignant" in table:
        rule = read.table(table["malignant"], "nodules.malignant")
        read.keys(rule, _MALIGNANT_KEYS, "nodules.malignant.")
        if not rule:
            raise read.fail("nodules.malignant", "malignant needs volume_mm3_above or "
                            "diameter_mm_above")
        malignant = MalignancyRule(*(
            read.number(rule[k], f"nodules.malignant.{k}", minimum=0) if k in rule else None
            for k in ("volume_mm3_above", "diameter_mm_above")))
    positions = read.choice(table, "positions", ("mm", "voxel"), "mm", "nodules.")
    return NoduleRule(count, cast(Literal["mm", "voxel"], positions), densities, malignant)


def _clinical(read: _Reader, value: Any) -> tuple[ClinicalField, ...]:
    table = read.table(value, "clinical")
    if not table:
        raise read.fail("clinical", "clinical declares no field")
    return tuple(_field(read, name, spec) for name, spec in table.items())


def _field(read: _Reader, name: str, value: Any) -> ClinicalField:
    key = f"clinical.{name}"
    spec = read.table(value, key)
    read.keys(spec, _FIELD_KEYS, key + ".")
    kind = read.choice(spec, "type", ("number", "integer", "choice", "date"), prefix=key + ".")
    allowed = {"number": {"min", "max", "above", "below", "step"},
               "integer": {"min", "max", "above", "below"},
               "choice": {"choices"},
               "date": {"earliest", "latest"}}[kind or ""] | {"type", "optional"}
    for other in spec:
        if other not in allowed:
            raise read.fail(f"{key}.{other}", f"{other} does not apply to a {kind} field")
    optional = read.boolean(spec, "optional", False, key + ".")
    rng = None
    if _INTERVAL_KEYS & spec.keys():
        rng = read.bounds(spec, key, minimum=None, integer=kind == "integer")
    step = None
    if "step" in spec:
        step = read.number(spec["step"], f"{key}.step", minimum=0)
        if step == 0:
            raise read.fail(f"{key}.step", "step must be > 0")
    choices: tuple[str, ...] = ()
    if kind == "choice":
        if "choices" not in spec:
            raise read.fail(f"{key}.choices", "a choice field needs choices = [...]")
        choices = read.strings(spec["choices"], f"{key}.choices")
    earliest = read.day(spec["earliest"], f"{key}.earliest") if "earliest" in spec else None
    latest = read.day(spec["latest"], f"{key}.latest") if "latest" in spec else None
    if earliest and latest and earliest > latest:
        raise read.fail(f"{key}.latest", f"latest ({latest}) is before earliest ({earliest})")
    return ClinicalField(name, cast(FieldType, kind), optional, rng, step, choices,
                         earliest, latest)


def describe(criteria: Criteria) -> list[str]:
    """The criteria as a center reads them on the question's page, one line per rule:
    "CT", "one slice (2-D)", "slice thickness 1.25 to 7 mm", "a soft kernel" ..."""
    out: list[str] = [criteria.modality]
    out.append("one slice (2-D)" if criteria.dimension == "2d"
               else f"a volume (3-D) of at least {criteria.min_slices} slices")
    if criteria.slice_thickness is not None:
        out.append(f"slice thickness {criteria.slice_thickness.text('mm')}")
    if criteria.kernel != "any":
        mostly = "mostly " if criteria.kernel_mismatch is Severity.WARNING else ""
        out.append(f"{mostly}a {criteria.kernel} reconstruction kernel")
    out.append({"any": "with or without contrast injection", "required": "contrast injected",
                "forbidden": "without contrast injection"}[criteria.contrast])
    if criteria.sequence == "flair":
        out.append("a FLAIR")
    if criteria.acquisition:
        words = sorted(criteria.acquisition, key=lambda a: (a != "3d", a))
        out.append("acquired " + " or ".join(
            "in 3-D" if a == "3d" else "in 2-D" + (f" {a[3:]}" if a != "2d" else "")
            for a in words))
    if criteria.mask:
        out.append("a binary mask on the exam's grid")
    if criteria.nodules is not None:
        rule = criteria.nodules
        line = f"{rule.count.text()} nodules, with their positions"
        if rule.densities:
            line += " (density: " + ", ".join(sorted(rule.densities)) + ")"
        out.append(line)
        if rule.malignant is not None:
            out.append(f"malignant: {rule.malignant.text()}")
    for f in criteria.clinical:
        what = {"number": "a number", "integer": "a whole number", "date": "a date",
                "choice": " or ".join(f.choices)}[f.type]
        if f.range is not None:
            what += f", {f.range.text()}"
        if f.step is not None:
            what += f", in steps of {f.step:g}"
        out.append(f"{f.name}: {what}" + (" (optional)" if f.optional else ""))
    return out
