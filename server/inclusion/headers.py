"""A series' summary, built from its files' headers one file at a time.

A center's study arrives as files (a web upload unpacked, or a DICOM association). Whoever
receives them reads each with `pydicom.dcmread(..., stop_before_pixels=True)` and hands it to
a `SeriesBuilder` (or `StudyBuilder`, which sorts files into series by SeriesInstanceUID);
the builder keeps a few numbers per slice (position, orientation, thickness) and the
series-level attributes, never the pixels, so a 600-slice volume costs a few kilobytes.
`SeriesSummary.from_datasets(iterable)` does the same from any iterable (a generator reading
files lazily).

Multi-frame images (Enhanced CT/MR, and the Legacy Converted ones highdicom writes) count one
slice per frame, each frame's position and thickness read from its functional groups.

The derived facts the checks use — how many slices, in which plane, how far apart, how thick
— are computed here (`SeriesSummary.stack`, `slice_thickness`), once, from the numbers kept.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any, Literal

from pydicom.multival import MultiValue

Vector = tuple[float, float, float]
Plane = Literal["axial", "coronal", "sagittal"]

# Two slices closer than this along the normal are at the same position.
DUPLICATE_MM = 0.01
# A step this many times the usual spacing between neighbours means slices are missing.
GAP_FACTOR = 1.5
# Orientation cosines that differ by more than this are another plane.
ORIENTATION_TOLERANCE = 0.01
# SliceThickness and the spacing agree within this (relative), else the spacing wins when
# it is the larger (gaps between thin slices: the volume resolves only the spacing).
SPACING_TOLERANCE = 0.05


@dataclass(frozen=True)
class Slice:
    """One image (or one frame of a multi-frame image)."""

    position: Vector | None
    orientation: tuple[float, ...] | None   # six direction cosines
    thickness: float | None
    instance: int | None = None


@dataclass(frozen=True)
class Stack:
    """The slices as a volume: how many, in which plane, how far apart along the normal."""

    count: int
    positioned: int                  # slices with a position and an orientation
    orientations: int                # distinct orientations among them
    normal: Vector | None
    plane: Plane | None
    spacing: float | None            # the usual distance between neighbours (lower median), mm
    duplicates: int                  # slices at the position of another
    gaps: tuple[tuple[float, float], ...] = ()  # (from, to) along the normal, mm
    extent_mm: float | None = None   # first to last slice along the normal


@dataclass(frozen=True)
class Thickness:
    value: float | None
    source: Literal["SliceThickness", "spacing", "none"]
    note: str = ""


@dataclass(frozen=True)
class SeriesSummary:
    """What the checks need of one series, read from its headers."""

    series_uid: str
    study_uid: str
    series_number: int | None
    description: str
    protocol: str
    files: int
    slices: tuple[Slice, ...]
    series_uids: tuple[str, ...] = ()           # distinct, when files of several were mixed
    modalities: tuple[str, ...] = ()            # distinct values, in order of appearance
    manufacturer: str = ""
    model: str = ""
    kernels: tuple[tuple[str, ...], ...] = ()   # distinct ConvolutionKernel values
    image_types: tuple[tuple[str, ...], ...] = ()
    sizes: tuple[tuple[int, int], ...] = ()     # distinct (Rows, Columns)
    pixel_spacing: tuple[float, float] | None = None
    contrast_agent: str = ""
    contrast_route: str = ""
    # MR
    scanning_sequence: tuple[str, ...] = ()
    sequence_variant: tuple[str, ...] = ()
    scan_options: tuple[str, ...] = ()
    sequence_name: str = ""
    vendor_sequence: str = ""       # GE's and Philips' private pulse sequence names
    inversion_recovery: str = ""    # Enhanced MR's InversionRecovery: YES or NO
    inversion_time_ms: float | None = None
    echo_time_ms: float | None = None
    repetition_time_ms: float | None = None
    mr_acquisition_type: str = ""
    _stack: list[Stack] = field(default_factory=list, init=False, repr=False, compare=False)

    @classmethod
    def from_datasets(cls, datasets: Iterable[Any]) -> SeriesSummary:
        """One series from its files' datasets, taken one at a time (nothing of a dataset is
        kept but the numbers the checks use)."""
        builder = SeriesBuilder()
        for dataset in datasets:
            builder.add(dataset)
        return builder.summary()

    @property
    def modality(self) -> str:
        return self.modalities[0] if self.modalities else ""

    @property
    def kernel(self) -> tuple[str, ...]:
        return self.kernels[0] if self.kernels else ()

    @property
    def localizer(self) -> bool:
        return any("LOCALIZER" in (v.upper() for v in t) for t in self.image_types)

    @property
    def label(self) -> str:
        """How a center recognises the series: "series 3 'Thorax 1.0 B70f'"."""
        number = f"series {self.series_number}" if self.series_number is not None else "series"
        what = self.description or self.protocol
        return f"{number} {what!r}" if what else f"{number} {self.series_uid}"

    def texts(self) -> tuple[str, ...]:
        """The free texts a center's scanner wrote about the series."""
        return tuple(t for t in (self.description, self.protocol) if t)

    @property
    def stack(self) -> Stack:
        if not self._stack:
            self._stack.append(stack_of(self.slices))
        return self._stack[0]

    def slice_thickness(self) -> Thickness:
        return slice_thickness(self.slices, self.stack)


def _unit(v: Vector) -> Vector | None:
    n = math.sqrt(sum(c * c for c in v))
    return None if n < 1e-6 else (v[0] / n, v[1] / n, v[2] / n)


def normal_of(orientation: tuple[float, ...]) -> Vector | None:
    r, c = orientation[:3], orientation[3:6]
    return _unit((r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2],
                  r[0] * c[1] - r[1] * c[0]))


def plane_of(normal: Vector) -> Plane:
    """The plane a slice is closest to: its normal's largest component (an oblique axial,
    tilted along the AC–PC line, is still axial)."""
    axis = max(range(3), key=lambda i: abs(normal[i]))
    return ("sagittal", "coronal", "axial")[axis]


def stack_of(slices: tuple[Slice, ...]) -> Stack:
    placed = [s for s in slices if s.position is not None and s.orientation is not None]
    if not placed:
        return Stack(len(slices), 0, 0, None, None, None, 0)
    first = placed[0].orientation
    assert first is not None
    distinct = [first]
    for s in placed:
        assert s.orientation is not None
        if not any(max(abs(a - b) for a, b in zip(s.orientation, o, strict=True))
                   <= ORIENTATION_TOLERANCE for o in distinct):
            distinct.append(s.orientation)
    normal = normal_of(first)
    if normal is None:
        return Stack(len(slices), len(placed), len(distinct), None, None, None, 0)
    same = [s for s in placed if s.orientation is not None and max(
        abs(a - b) for a, b in zip(s.orientation, first, strict=True)) <= ORIENTATION_TOLERANCE]
    depths = sorted(sum(p * n for p, n in zip(s.position or (), normal, strict=True))
                    for s in same)
    steps = [b - a for a, b in zip(depths, depths[1:], strict=False)]
    duplicates = sum(1 for d in steps if d < DUPLICATE_MM)
    moving = [d for d in steps if d >= DUPLICATE_MM]
    # The lower median: with few slices and one gap, the gap is not taken for the rule.
    spacing = statistics.median_low(moving) if moving else None
    gaps: tuple[tuple[float, float], ...] = ()
    if spacing is not None:
        gaps = tuple((a, b) for a, b in zip(depths, depths[1:], strict=False)
                     if b - a > GAP_FACTOR * spacing)
    extent = depths[-1] - depths[0] if len(depths) > 1 else None
    return Stack(len(slices), len(placed), len(distinct), normal, plane_of(normal), spacing,
                 duplicates, gaps, extent)


def slice_thickness(slices: tuple[Slice, ...], stack: Stack) -> Thickness:
    """The series' slice thickness: SliceThickness when every slice gives the same one, else
    the spacing between slice positions along the normal. When the slices lie further apart
    than they are thick (1 mm slices every 5 mm), the volume resolves only the spacing, and the
    spacing is the thickness that counts."""
    nominal = {round(s.thickness, 3) for s in slices if s.thickness is not None
               and s.thickness > 0}
    missing = sum(1 for s in slices if s.thickness is None or s.thickness <= 0)
    spacing = stack.spacing
    if len(nominal) == 1 and not missing:
        t = nominal.pop()
        if spacing is not None and spacing > t * (1 + SPACING_TOLERANCE) + DUPLICATE_MM:
            return Thickness(spacing, "spacing",
                             f"SliceThickness says {t:g} mm but the slices are "
                             f"{spacing:.3g} mm apart")
        return Thickness(t, "SliceThickness")
    if spacing is not None:
        why = ("SliceThickness varies (" + ", ".join(f"{t:g}" for t in sorted(nominal))
               + " mm)") if len(nominal) > 1 else "SliceThickness is absent"
        return Thickness(spacing, "spacing", f"{why}; measured from the slice positions")
    if len(nominal) == 1:
        return Thickness(nominal.pop(), "SliceThickness",
                         f"SliceThickness absent from {missing} of {len(slices)} slices")
    if nominal:
        return Thickness(None, "none", "SliceThickness varies ("
                         + ", ".join(f"{t:g}" for t in sorted(nominal)) + " mm)")
    return Thickness(None, "none", "")


# --- reading a dataset --------------------------------------------------------------------

def _get(ds: Any, keyword: str) -> Any:
    try:
        return ds.get(keyword)
    except (ValueError, TypeError, OverflowError, KeyError):
        return None


def _text(ds: Any, keyword: str) -> str:
    value = _get(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, list | tuple | MultiValue):
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def _texts(ds: Any, keyword: str) -> tuple[str, ...]:
    value = _get(ds, keyword)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split("\\") if v.strip())
    try:
        return tuple(str(v).strip() for v in value if str(v).strip())
    except TypeError:
        return (str(value).strip(),)


def _float(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return x if math.isfinite(x) else None


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        items = [float(v) for v in value]
    except (TypeError, ValueError, OverflowError):
        return None
    if len(items) != n or not all(math.isfinite(x) for x in items):
        return None
    return tuple(items)


def _vector(value: Any) -> Vector | None:
    v = _floats(value, 3)
    return None if v is None else (v[0], v[1], v[2])


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _item(sequence: Any) -> Any:
    try:
        return sequence[0] if sequence else None
    except (TypeError, IndexError):
        return None


def _private(ds: Any, group: int, offset: int, creator: str) -> str:
    try:
        return str(ds.get_private_item(group, offset, creator).value).strip()
    except (KeyError, ValueError, AttributeError, TypeError):
        return ""


def _code_meanings(ds: Any, keyword: str) -> str:
    items = _get(ds, keyword) or ()
    try:
        return "; ".join(_text(item, "CodeMeaning") or _text(item, "CodeValue")
                         for item in items).strip("; ")
    except TypeError:
        return ""


def _frame_group(frame: Any, shared: Any, keyword: str) -> Any:
    """A functional group's item for one frame, per-frame first, then shared."""
    for source in (frame, shared):
        if source is not None and (item := _item(_get(source, keyword))) is not None:
            return item
    return None


def _slices(ds: Any) -> list[Slice]:
    frames = _get(ds, "PerFrameFunctionalGroupsSequence")
    shared = _item(_get(ds, "SharedFunctionalGroupsSequence"))
    if frames or shared is not None:
        count = _int(_get(ds, "NumberOfFrames")) or (len(frames) if frames else 1)
        out = []
        for index in range(count):
            frame = frames[index] if frames and index < len(frames) else None
            plane = _frame_group(frame, shared, "PlanePositionSequence")
            orient = _frame_group(frame, shared, "PlaneOrientationSequence")
            measures = _frame_group(frame, shared, "PixelMeasuresSequence")
            content = _frame_group(frame, shared, "FrameContentSequence")
            out.append(Slice(
                _vector(_get(plane, "ImagePositionPatient")) if plane is not None else None,
                _floats(_get(orient, "ImageOrientationPatient"), 6) if orient is not None else None,
                _float(_get(measures, "SliceThickness")) if measures is not None else None,
                _int(_get(content, "InStackPositionNumber")) if content is not None else index + 1))
        return out
    position = _vector(_get(ds, "ImagePositionPatient"))
    orientation = _floats(_get(ds, "ImageOrientationPatient"), 6)
    thickness = _float(_get(ds, "SliceThickness"))
    slice_ = Slice(position, orientation, thickness, _int(_get(ds, "InstanceNumber")))
    return [slice_] * (_int(_get(ds, "NumberOfFrames")) or 1)


def _pixel_spacing(ds: Any) -> tuple[float, float] | None:
    spacing = _floats(_get(ds, "PixelSpacing"), 2)
    if spacing is None:
        shared = _item(_get(ds, "SharedFunctionalGroupsSequence"))
        frame = _item(_get(ds, "PerFrameFunctionalGroupsSequence"))
        measures = _frame_group(frame, shared, "PixelMeasuresSequence")
        spacing = _floats(_get(measures, "PixelSpacing"), 2) if measures is not None else None
    if spacing is None or min(spacing) <= 0:
        return None
    return (spacing[0], spacing[1])


def _kernel(ds: Any) -> tuple[str, ...]:
    kernel = _texts(ds, "ConvolutionKernel")
    if not kernel:
        shared = _item(_get(ds, "SharedFunctionalGroupsSequence"))
        frame = _item(_get(ds, "PerFrameFunctionalGroupsSequence"))
        recon = _frame_group(frame, shared, "CTReconstructionSequence")
        kernel = _texts(recon, "ConvolutionKernel") if recon is not None else ()
    return kernel


def _inversion_time(ds: Any) -> float | None:
    time = _float(_get(ds, "InversionTime"))
    if time is None:
        # Enhanced MR: InversionTimes (one per inversion) in the MR Modifier group.
        shared = _item(_get(ds, "SharedFunctionalGroupsSequence"))
        frame = _item(_get(ds, "PerFrameFunctionalGroupsSequence"))
        modifier = _frame_group(frame, shared, "MRModifierSequence")
        times = _get(modifier, "InversionTimes") if modifier is not None else None
        if isinstance(times, int | float):
            time = _float(times)
        elif times is not None:
            time = next((t for t in map(_float, times) if t is not None), None)
    return time


class _Converted:
    """A dataset's attributes, top level first, then those a Legacy Converted Enhanced image
    keeps in its Unassigned Shared / Per-Frame Converted Attributes (ConvolutionKernel,
    InversionTime, ContrastBolusAgent ... as highdicom and the standard place them)."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds
        shared = _item(_get(ds, "SharedFunctionalGroupsSequence"))
        frame = _item(_get(ds, "PerFrameFunctionalGroupsSequence"))
        self.extra = [item for item in (
            _item(_get(shared, "UnassignedSharedConvertedAttributesSequence"))
            if shared is not None else None,
            _item(_get(frame, "UnassignedPerFrameConvertedAttributesSequence"))
            if frame is not None else None) if item is not None]

    def get(self, keyword: str) -> Any:
        value = _get(self.ds, keyword)
        for item in self.extra:
            if value is not None and value != "":
                break
            value = _get(item, keyword)
        return value

    def get_private_item(self, group: int, offset: int, creator: str) -> Any:
        return self.ds.get_private_item(group, offset, creator)


def _add_distinct(values: list[Any], value: Any) -> None:
    if value and value not in values:
        values.append(value)


class SeriesBuilder:
    """A series summary built one dataset at a time; `summary()` at any point."""

    def __init__(self) -> None:
        self.files = 0
        self.slices: list[Slice] = []
        self.first: dict[str, Any] = {}
        self.series_uids: list[str] = []
        self.modalities: list[str] = []
        self.kernels: list[tuple[str, ...]] = []
        self.image_types: list[tuple[str, ...]] = []
        self.sizes: list[tuple[int, int]] = []

    def _keep(self, name: str, read: Callable[[], Any]) -> None:
        """The first non-empty value of a series-level attribute (read only until found)."""
        if name not in self.first and (value := read()) not in (None, "", ()):
            self.first[name] = value

    def add(self, dataset: Any) -> None:
        # pydicom warns about each invalid value it converts; an invalid value is read here
        # as absent, and the check says what is missing.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._add(dataset)

    def _add(self, dataset: Any) -> None:
        self.files += 1
        self.slices.extend(_slices(dataset))
        ds = _Converted(dataset)
        _add_distinct(self.series_uids, _text(ds, "SeriesInstanceUID"))
        _add_distinct(self.modalities, _text(ds, "Modality").upper())
        _add_distinct(self.kernels, _kernel(ds))
        _add_distinct(self.image_types, _texts(ds, "ImageType"))
        rows, columns = _int(_get(ds, "Rows")), _int(_get(ds, "Columns"))
        if rows and columns:
            _add_distinct(self.sizes, (rows, columns))
        for name in ("StudyInstanceUID", "SeriesDescription", "ProtocolName", "Manufacturer",
                     "ManufacturerModelName", "ContrastBolusRoute", "SequenceName",
                     "MRAcquisitionType", "InversionRecovery", "PulseSequenceName"):
            self._keep(name, partial(_text, ds, name))
        for name in ("ScanningSequence", "SequenceVariant", "ScanOptions"):
            self._keep(name, partial(_texts, ds, name))
        self._keep("SeriesNumber", lambda: _int(_get(ds, "SeriesNumber")))
        self._keep("ContrastBolusAgent", lambda: _text(ds, "ContrastBolusAgent")
                   or _code_meanings(ds, "ContrastBolusAgentSequence"))
        self._keep("ContrastBolusRouteCode", lambda: _code_meanings(
            ds, "ContrastBolusAdministrationRouteSequence"))
        self._keep("PixelSpacing", lambda: _pixel_spacing(ds))
        self._keep("InversionTime", lambda: _inversion_time(ds))
        self._keep("EchoTime", lambda: _float(_get(ds, "EchoTime")))
        self._keep("RepetitionTime", lambda: _float(_get(ds, "RepetitionTime")))
        # Private pulse sequence names: GE (0019,109C), Philips (2001,1020).
        self._keep("GE", lambda: _private(ds, 0x0019, 0x9C, "GEMS_ACQU_01"))
        self._keep("Philips", lambda: _private(ds, 0x2001, 0x20, "Philips Imaging DD 001"))

    def summary(self) -> SeriesSummary:
        f = self.first.get
        vendor = " ".join(v for v in (f("PulseSequenceName"), f("GE"), f("Philips")) if v)
        return SeriesSummary(
            series_uid=self.series_uids[0] if self.series_uids else "",
            study_uid=f("StudyInstanceUID", ""),
            series_number=f("SeriesNumber"),
            description=f("SeriesDescription", ""),
            protocol=f("ProtocolName", ""),
            files=self.files,
            slices=tuple(self.slices),
            series_uids=tuple(self.series_uids),
            modalities=tuple(self.modalities),
            manufacturer=f("Manufacturer", ""),
            model=f("ManufacturerModelName", ""),
            kernels=tuple(self.kernels),
            image_types=tuple(self.image_types),
            sizes=tuple(self.sizes),
            pixel_spacing=f("PixelSpacing"),
            contrast_agent=f("ContrastBolusAgent", ""),
            contrast_route=f("ContrastBolusRoute", "") or f("ContrastBolusRouteCode", ""),
            scanning_sequence=f("ScanningSequence", ()),
            sequence_variant=f("SequenceVariant", ()),
            scan_options=f("ScanOptions", ()),
            sequence_name=f("SequenceName", ""),
            vendor_sequence=vendor,
            inversion_recovery=f("InversionRecovery", "").upper(),
            inversion_time_ms=f("InversionTime"),
            echo_time_ms=f("EchoTime"),
            repetition_time_ms=f("RepetitionTime"),
            mr_acquisition_type=f("MRAcquisitionType", "").upper(),
        )


class StudyBuilder:
    """A study's files sorted into series (by SeriesInstanceUID) as they arrive."""

    def __init__(self) -> None:
        self._series: dict[str, SeriesBuilder] = {}

    def add(self, ds: Any) -> None:
        uid = _text(ds, "SeriesInstanceUID")
        self._series.setdefault(uid, SeriesBuilder()).add(ds)

    def series(self) -> list[SeriesSummary]:
        return [builder.summary() for builder in self._series.values()]


def study_series(datasets: Iterable[Any]) -> list[SeriesSummary]:
    """A study's series from its files' datasets, taken one at a time."""
    builder = StudyBuilder()
    for dataset in datasets:
        builder.add(dataset)
    return builder.series()


def study_label(ds: Any) -> str:
    """What the center calls the study: its date, modality and description as its PACS sent
    them. Never the patient's name or ID."""
    raw = str(ds.get("StudyDate", "") or "").strip()
    date = f"{raw[:4]}-{raw[4:6]}-{raw[6:8]}" if len(raw) == 8 and raw.isdigit() else raw
    parts = [date, str(ds.get("Modality", "") or "").strip(),
             str(ds.get("StudyDescription", "") or "").strip()]
    return " ".join(p for p in parts if p)[:200]


# -- a summary as JSON (the DICOM node's marker carries its study's series) -----------------

def summary_to_json(summary: SeriesSummary) -> dict[str, Any]:
    """A series summary as JSON values (tuples become lists); `summary_from_json` undoes it."""
    out: dict[str, Any] = {f.name: getattr(summary, f.name) for f in fields(summary) if f.init}
    out["slices"] = [[s.position, s.orientation, s.thickness, s.instance]
                     for s in summary.slices]
    return out


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def summary_from_json(data: dict[str, Any]) -> SeriesSummary:
    """The summary `summary_to_json` wrote (every list of it was a tuple). KeyError or
    TypeError on anything else."""
    slices = tuple(Slice(_tuples(position), _tuples(orientation), thickness, instance)
                   for position, orientation, thickness, instance in data["slices"])
    rest = {k: _tuples(v) for k, v in data.items() if k != "slices"}
    return SeriesSummary(slices=slices, **rest)
