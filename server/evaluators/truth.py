"""Ground truth: loaded and validated once per process, then shared by every scoring.

A bad truth raises TruthError naming the file and row, so the event loader can refuse the
event at load time instead of failing the first team that uploads.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from server.evaluators.exam import ExamError, ExamGrid, hu_inside, read_exam
from server.evaluators.mask import MASK_SUFFIXES, mask_stem, read_mask
from server.evaluators.matching import IdIndex
from server.evaluators.result import Invalid, Problem, listing
from server.evaluators.table import Table, read_table

CACHE_SIZE = 8

log = logging.getLogger(__name__)


class TruthError(ValueError):
    """The organisers' truth is unusable; the message names the file and, if any, the row."""


@dataclass(frozen=True)
class ValueTruth:
    """One number per id, in file order (labels, values)."""

    path: Path
    ids: tuple[str, ...]
    values: npt.NDArray[np.float64]
    index: IdIndex


@dataclass(frozen=True)
class Target:
    """What one exam's prediction is compared with, under one HU window."""

    grid: ExamGrid
    truth: npt.NDArray[np.uint8]  # packed bits of the (windowed) truth mask
    truth_pixels: int
    window: npt.NDArray[np.uint8] | None  # packed bits of the HU window, if any
    surface_mm2: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape


@dataclass
class SegmentationTruth:
    path: Path
    ids: tuple[str, ...]
    index: IdIndex
    exams: dict[str, _Exam]
    surfaces: dict[str, float] | None  # from surfaces.csv, when the organisers gave one
    _targets: dict[tuple[float, float] | None, dict[str, Target]] = field(default_factory=dict)

    def targets(self, hu_window: tuple[float, float] | None) -> dict[str, Target]:
        """Per-exam targets for a window, computed once (the HU pass decodes every image)."""
        key = None if hu_window is None else (float(hu_window[0]), float(hu_window[1]))
        if key not in self._targets:
            self._targets[key] = {i: self._target(i, key) for i in self.ids}
        return self._targets[key]

    def _target(self, exam_id: str, hu_window: tuple[float, float] | None) -> Target:
        exam = self.exams[exam_id]
        rows, columns = exam.grid.shape
        truth = np.unpackbits(exam.mask, count=rows * columns).view(np.bool_)
        window = None
        if hu_window is not None:
            try:
                inside = hu_inside(exam.image, *hu_window).reshape(-1)
            except ExamError as exc:
                raise TruthError(str(exc)) from exc
            truth = truth & inside
            window = np.packbits(inside)
        pixels = int(np.count_nonzero(truth))
        if self.surfaces is not None:
            surface = self.surfaces[exam_id]
        else:
            spacing = exam.grid.spacing
            if spacing is None:  # load_truth refuses this case; keeps mypy honest
                raise TruthError(f"{exam.image}: no PixelSpacing and no surfaces.csv")
            # Surface of the mask actually compared: after the HU window, as in the 2019 rules.
            surface = pixels * spacing[0] * spacing[1]
        return Target(exam.grid, np.packbits(truth), pixels, window, surface)


@dataclass(frozen=True)
class _Exam:
    image: Path
    grid: ExamGrid
    mask: npt.NDArray[np.uint8]  # packed bits


Truth = ValueTruth | SegmentationTruth

_cache: OrderedDict[str, tuple[object, Truth]] = OrderedDict()

# A value truth's check of one value: the problem in words, or None when it is acceptable.
ValueCheck = Callable[[float, str, str], str | None]


def cached(path: Path, what: str, load: Callable[[Path], Truth]) -> Truth:
    """The truth at `path` as `load` reads it, from the per-process cache while unchanged.
    `what` names it in the refusal when it is missing ("folder", "file")."""
    path = Path(path)
    if not path.exists():
        raise TruthError(f"{path}: truth {what} not found")
    key = f"{load.__module__}.{load.__qualname__}:{path.resolve()}"
    stamp = _fingerprint(path)
    hit = _cache.get(key)
    if hit is not None and hit[0] == stamp:
        _cache.move_to_end(key)
        return hit[1]
    loaded = load(path)
    _cache[key] = (stamp, loaded)
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return loaded


def value_truth(path: Path, check: ValueCheck, *, two_classes: bool = False) -> ValueTruth:
    """A table of one value per id, each value passed through `check`; `two_classes`: the
    values must not all be equal (an AUC needs both classes)."""
    def load(path: Path) -> ValueTruth:
        return _load_values(path, check, two_classes=two_classes)
    load.__qualname__ = f"value_truth[{getattr(check, '__qualname__', check)}]"
    truth = cached(path, "file", load)
    assert isinstance(truth, ValueTruth)
    return truth


def segmentation_truth(path: Path) -> SegmentationTruth:
    truth = cached(path, "folder", _load_segmentation)
    assert isinstance(truth, SegmentationTruth)
    return truth


def clear_cache() -> None:
    _cache.clear()


def _fingerprint(path: Path) -> object:
    """mtime and size of the truth file, or of every file of a truth folder."""
    try:
        if not path.is_dir():
            st = path.stat()
            return (st.st_mtime_ns, st.st_size)
        stamps = []
        for root, _dirs, files in os.walk(path):
            for name in files:
                st = os.stat(os.path.join(root, name))
                stamps.append((root, name, st.st_mtime_ns, st.st_size))
        return tuple(sorted(stamps))
    except OSError as exc:
        raise TruthError(f"{path}: truth cannot be read ({exc.strerror})") from exc


def _read_truth_table(path: Path) -> Table:
    if not path.is_file():
        raise TruthError(f"{path}: truth file not found")
    try:
        return read_table(path)
    except Invalid as exc:
        raise TruthError(f"{path}: {exc}") from exc


def _load_values(path: Path, check: ValueCheck, *, two_classes: bool) -> ValueTruth:
    table = _read_truth_table(path)
    errors: list[str] = []
    seen: dict[str, int] = {}
    ids: list[str] = []
    values: list[float] = []
    for row in table.rows:
        where = f"{path}: row {row.row}"
        if not row.id:
            errors.append(f"{where}: empty id")
            continue
        if row.id in seen:
            errors.append(f"{where}: id {row.id} already in row {seen[row.id]}")
            continue
        seen[row.id] = row.row
        value = row.value
        if value is None or not math.isfinite(value):
            errors.append(f"{where}: value {row.text!r} of id {row.id} is not a number")
            continue
        if (problem := check(value, row.text, row.id)) is not None:
            errors.append(f"{where}: {problem}")
            continue
        ids.append(row.id)
        values.append(value)
    if table.header is not None and table.header.id and (
        table.header.id.isdigit() or table.header.id in seen
    ):
        errors.insert(0, f"{path}: row {table.header.row}: value {table.header.text!r} "
                         f"of id {table.header.id} is not a number")
    if not errors and two_classes and len(set(values)) < 2:
        only = "1 (abnormal)" if values and values[0] == 1 else "0 (normal)"
        errors.append(f"{path}: every label is {only}; an AUC needs both classes")
    if errors:
        raise TruthError(_joined(errors))
    return ValueTruth(path, tuple(ids), np.asarray(values, dtype=np.float64), IdIndex.of(ids))


def _joined(errors: list[str], limit: int = 10) -> str:
    more = f"\n… and {len(errors) - limit} more" if len(errors) > limit else ""
    return "\n".join(errors[:limit]) + more


def _by_stem(folder: Path, errors: list[str], suffixes: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        stem = mask_stem(entry.name) if suffixes == MASK_SUFFIXES else (
            entry.name[: -len(".dcm")] if entry.name.lower().endswith(".dcm") else None
        )
        if stem is None:
            errors.append(f"{entry}: not a {'/'.join(suffixes)} file")
            continue
        if stem in found:
            errors.append(f"{entry}: id {stem} already given by {found[stem].name}")
            continue
        found[stem] = entry
    return found


def _load_segmentation(path: Path) -> SegmentationTruth:
    images_dir, masks_dir = path / "images", path / "masks"
    for folder in (path, images_dir, masks_dir):
        if not folder.is_dir():
            raise TruthError(f"{folder}: truth folder not found")
    errors: list[str] = []
    images = _by_stem(images_dir, errors, (".dcm",))
    masks = _by_stem(masks_dir, errors, MASK_SUFFIXES)
    if no_mask := sorted(set(images) - set(masks)):
        errors.append(f"{masks_dir}: no mask for {len(no_mask)} image(s): {listing(no_mask)}")
    if no_image := sorted(set(masks) - set(images)):
        errors.append(f"{images_dir}: no image for {len(no_image)} mask(s): {listing(no_image)}")
    if not images and not errors:
        errors.append(f"{images_dir}: no exam images (<id>.dcm)")
    surfaces = _load_surfaces(path / "surfaces.csv", errors)
    exams: dict[str, _Exam] = {}
    for exam_id in sorted(set(images) & set(masks)):
        try:
            exam = read_exam(images[exam_id])
        except ExamError as exc:
            errors.append(str(exc))
            continue
        if exam.spacing is None and surfaces is None:
            errors.append(f"{exam.path}: no PixelSpacing, and no surfaces.csv to give surfaces")
        mask_path = masks[exam_id]
        notes: list[Problem] = []
        try:
            mask = read_mask(mask_path.read_bytes(), mask_path.name, exam.grid, notes=notes)
        except Invalid as exc:
            errors.append(f"{mask_path}: {exc}")
            continue
        for note in notes:  # the organisers' own file: worth a look, not a refusal
            log.warning("%s: %s", mask_path, note.message)
        exams[exam_id] = _Exam(exam.path, exam.grid, np.packbits(mask.reshape(-1)))
    if surfaces is not None:
        if missing := sorted(set(images) - set(surfaces)):
            errors.append(f"{path / 'surfaces.csv'}: no surface for {listing(missing)}")
        if extra := sorted(set(surfaces) - set(images)):
            errors.append(f"{path / 'surfaces.csv'}: ids without an image: {listing(extra)}")
    if errors:
        raise TruthError(_joined(errors))
    ids = tuple(sorted(exams))
    return SegmentationTruth(path, ids, IdIndex.of(ids), exams, surfaces)


def _load_surfaces(path: Path, errors: list[str]) -> dict[str, float] | None:
    if not path.exists():
        return None
    table = _read_truth_table(path)
    surfaces: dict[str, float] = {}
    rows: dict[str, int] = {}
    for row in table.rows:
        where = f"{path}: row {row.row}"
        if row.id in surfaces:
            errors.append(f"{where}: id {row.id} already in row {rows[row.id]}")
        elif row.value is None or not math.isfinite(row.value) or row.value < 0:
            errors.append(f"{where}: surface {row.text!r} of id {row.id} is not a number ≥ 0")
        else:
            surfaces[row.id] = row.value
            rows[row.id] = row.row
    return surfaces
