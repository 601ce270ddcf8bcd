"""segmentation-3d: label masks on 3-D exams (CT volumes), scored per exam and per label.

The truth is loaded once per process (`volume_truth`, through `truth.cached`) and kept small:
each structure (one label of one exam) as its bounding box and the packed bits inside it. A
submission's masks are read one exam at a time, each decoded once; everything after the
decode works in the box around the two structures compared (`distances.compare`).

Per exam and label: Dice, NSD at `tolerance_mm`, HD95 (mm), the predicted and true volumes
(mm³). Per exam: the mean over the challenge's labels. Metrics: the mean over exams. Empty
rules: a label absent from both the truth and the prediction of an exam counts as perfect
(Dice 1, NSD 1, HD95 0, no volume error); absent from one only, Dice 0, NSD 0 and HD95 the
exam's diagonal (the largest distance two points of the exam can have). No value is ever
left out of a mean.

`score_volume_masks(archive, members, truth, options)` scores the masks part of an already
opened archive (the members given); `score_segmentation_3d` is the whole-file entry point.
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from server.evaluators.archive import Archive, open_submission
from server.evaluators.distances import Agreement, bounding_box, compare
from server.evaluators.mask import NOT_MASKS
from server.evaluators.matching import IdIndex, assign
from server.evaluators.options import ScoringOptions
from server.evaluators.result import Invalid, Problem, Result, listing, notice, plural
from server.evaluators.segmentation import ARCHIVE_SUFFIXES
from server.evaluators.table import suffix_of
from server.evaluators.truth import TruthError, cached
from server.evaluators.volume import (
    HEADER_ROOM,
    WIDEST_VOXEL,
    VolumeGrid,
    exam_grid,
    mask_limit,
    read_dicom_mask,
    read_nifti,
    read_series_mask,
)

log = logging.getLogger(__name__)

Member = tuple[str, zipfile.ZipInfo]
Box = tuple[tuple[int, int, int], tuple[int, int, int]]
EXPECTED = ("one .zip holding a label mask per exam, named by its id: <id>.nii.gz, <id>.nii, "
            "<id>.dcm (a DICOM SEG) or <id>/ (a folder of DICOM slices)")
FILE_SUFFIXES = (".nii.gz", ".nii", ".dcm")


# --- truth ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Structure:
    """One label of one truth exam: its bounding box and the packed bits inside it."""

    box: Box
    bits: npt.NDArray[np.uint8]
    voxels: int

    def mask(self) -> npt.NDArray[np.bool_]:
        low, high = self.box
        shape = tuple(h - lo for lo, h in zip(low, high, strict=True))
        count = shape[0] * shape[1] * shape[2]
        return np.unpackbits(self.bits, count=count).view(np.bool_).reshape(shape)


@dataclass(frozen=True)
class VolumeExam:
    grid: VolumeGrid
    structures: dict[int, Structure]


@dataclass
class VolumeTruth:
    path: Path
    ids: tuple[str, ...]
    index: IdIndex
    exams: dict[str, VolumeExam]
    labels: tuple[int, ...]
    names: dict[int, str] = field(default_factory=dict)

    def label_name(self, label: int) -> str:
        return self.names.get(label, f"label {label}")


def volume_truth(path: Path) -> VolumeTruth:
    """The segmentation-3d truth at `path`, from the per-process cache while unchanged."""
    load = cast(Any, _load_truth)
    truth = cached(path, "folder", load)
    assert isinstance(truth, VolumeTruth)
    return truth


def _entries(folder: Path, errors: list[str], what: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            stem = entry.name
        else:
            suffix = suffix_of(entry.name)
            if suffix not in FILE_SUFFIXES or (what == "image" and suffix == ".dcm"):
                allowed = ("<id>.nii.gz, <id>.nii or <id>/ (DICOM slices)" if what == "image"
                           else "<id>.nii.gz, <id>.nii, <id>.dcm (DICOM SEG) or <id>/")
                errors.append(f"{entry}: not an {what} ({allowed})")
                continue
            stem = entry.name[: len(entry.name) - len(suffix)]
        if stem in found:
            errors.append(f"{entry}: id {stem} already given by {found[stem].name}")
            continue
        found[stem] = entry
    return found


def _load_truth(path: Path) -> VolumeTruth:
    images_dir, masks_dir = path / "images", path / "masks"
    for folder in (path, images_dir, masks_dir):
        if not folder.is_dir():
            raise TruthError(f"{folder}: truth folder not found")
    errors: list[str] = []
    images = _entries(images_dir, errors, "image")
    masks = _entries(masks_dir, errors, "mask")
    if no_mask := sorted(set(images) - set(masks)):
        errors.append(f"{masks_dir}: no mask for {len(no_mask)} exam(s): {listing(no_mask)}")
    if no_image := sorted(set(masks) - set(images)):
        errors.append(f"{images_dir}: no image for {len(no_image)} mask(s): "
                      f"{listing(no_image)}")
    if not images and not errors:
        errors.append(f"{images_dir}: no exams (<id>.nii.gz, <id>.nii or <id>/)")
    names = _label_names(path / "labels.csv", errors)
    exams: dict[str, VolumeExam] = {}
    for exam_id in sorted(set(images) & set(masks)):
        try:
            grid = exam_grid(images[exam_id])
        except Invalid as exc:
            errors.append(str(exc))
            continue
        mask_path = masks[exam_id]
        notes: list[Problem] = []
        try:
            exams[exam_id] = VolumeExam(grid, _structures(_read_truth_mask(mask_path, grid,
                                                                           notes)))
        except Invalid as exc:
            errors.append(f"{mask_path}: {exc}")
            continue
        for note in notes:  # the organisers' own file: worth a look, not a refusal
            log.warning("%s: %s", mask_path, note.message)
    found = sorted({label for exam in exams.values() for label in exam.structures})
    if names:
        if undeclared := [v for v in found if v not in names]:
            errors.append(f"{path / 'labels.csv'}: the truth masks hold labels "
                          f"{listing([str(v) for v in undeclared])}, not declared here")
    labels = tuple(sorted(names)) if names else tuple(found)
    if not labels and not errors:
        errors.append(f"{masks_dir}: every truth mask is empty; there is nothing to segment")
    if errors:
        raise TruthError("\n".join(errors[:10]) + (
            f"\n… and {len(errors) - 10} more" if len(errors) > 10 else ""))
    ids = tuple(sorted(exams))
    return VolumeTruth(path, ids, IdIndex.of(ids), exams, labels, names)


def _label_names(path: Path, errors: list[str]) -> dict[int, str]:
    """labels.csv: `label,name` rows (a header row is optional), naming each label."""
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: cannot be read ({exc})")
        return {}
    names: dict[int, str] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip():
            continue
        value_text, name = row[0].strip(), ",".join(row[1:]).strip()
        try:
            value = int(value_text)
        except ValueError:
            if number == 1:
                continue  # a header
            errors.append(f"{path}: row {number}: label {value_text!r} is not a whole number")
            continue
        if value < 1:
            errors.append(f"{path}: row {number}: label {value} must be 1 or more "
                          "(0 is the background)")
        elif value in names:
            errors.append(f"{path}: row {number}: label {value} given twice")
        else:
            names[value] = name or f"label {value}"
    return names


def _read_truth_mask(path: Path, grid: VolumeGrid, notes: list[Problem]) -> npt.NDArray[Any]:
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")]
        return read_series_mask([p.name for p in files], lambda i: files[i].read_bytes(),
                                path.name, grid, None, notes)
    data = path.read_bytes()
    if suffix_of(path.name) == ".dcm":
        return read_dicom_mask(data, path.name, grid, None, notes)
    return read_nifti(data, path.name, grid, None, notes)


def _structures(labels: npt.NDArray[Any]) -> dict[int, Structure]:
    box = bounding_box(labels)
    if box is None:
        return {}
    crop = labels[_slices(box)]
    values = np.unique(crop.ravel(order="K"))  # in memory order: no reordering copy
    bad = [v for v in values.tolist() if not float(v).is_integer() or v < 0]
    if bad:
        raise Invalid(Problem("not_integer", f"values {bad[:5]} are not labels (whole "
                              "numbers, 0 for the background)"))
    out: dict[int, Structure] = {}
    for value in values.tolist():
        if value == 0:
            continue
        inside = crop == value
        own = bounding_box(inside)
        assert own is not None
        part = inside[_slices(own)]
        out[int(value)] = Structure((_plus(box[0], own[0]), _plus(box[0], own[1])),
                                    np.packbits(part.reshape(-1)), int(np.count_nonzero(part)))
    return out


# --- scoring -------------------------------------------------------------------------------

@dataclass(frozen=True)
class MaskScoring:
    """What scoring a masks part gives: problems (the part is invalid when any), otherwise
    metrics and per-exam details; warnings either way."""

    problems: list[Problem]
    metrics: dict[str, float]
    details: dict[str, list[Any]] | None
    warnings: list[Problem]


@dataclass(frozen=True)
class _Source:
    """Where one exam's mask is in the archive: one file, or a folder of DICOM slices."""

    place: str
    files: tuple[Member, ...]
    series: bool

    @property
    def offset(self) -> int:
        return min(info.header_offset for _, info in self.files)


def score_segmentation_3d(truth: VolumeTruth, submission: Path, options: ScoringOptions,
                          name: str | None = None) -> Result:
    """Score a zip of label masks; `name` is the file's name as the team uploaded it."""
    name = name or submission.name
    suffix = suffix_of(name)
    if suffix != ".zip":
        hint = (" (a single mask: put the masks of every exam in one .zip)"
                if suffix in FILE_SUFFIXES else
                f" ({NOT_MASKS[suffix]})" if suffix in NOT_MASKS else "")
        return Result.invalid(
            [Problem("unsupported_format", f"{name} is not a .zip{hint}; send {EXPECTED}")],
            options.max_errors)
    try:
        archive = open_submission(submission, name, max_members=options.max_archive_members,
                                  max_expanded_bytes=options.max_expanded_bytes)
    except Invalid as exc:
        return Result.invalid(exc.problems, options.max_errors)
    with archive:
        scoring = score_volume_masks(archive, archive.members, truth, options)
    if scoring.problems:
        return Result.invalid(scoring.problems, options.max_errors, scoring.warnings)
    return Result.scored(scoring.metrics, scoring.details, scoring.warnings)


def score_volume_masks(archive: Archive, members: Sequence[Member], truth: VolumeTruth,
                       options: ScoringOptions, *, what: str = "mask") -> MaskScoring:
    """Score the label masks among `members` (the masks part of an opened archive: every
    member given must be a mask file or a slice of a mask folder)."""
    problems: list[Problem] = []
    notes: list[Problem] = []
    sources = _sources(members, truth, problems)
    if not sources and not problems:
        problems.append(Problem("empty", f"{archive.name} holds no masks; send {EXPECTED}"))
    assignment = assign(truth.index, [(stem, s, s.place) for stem, s in sources], what=what,
                        where="")
    problems.extend(assignment.problems)
    scores: dict[str, list[Agreement]] = {}
    for exam_id, source in sorted(assignment.matched.items(), key=lambda kv: kv[1].offset):
        exam = truth.exams[exam_id]
        try:
            scores[exam_id] = _score_exam(_read_mask(archive, source, exam.grid, exam_id, notes),
                                          exam, truth, source.place, exam_id,
                                          options.tolerance_mm, notes)
        except Invalid as exc:
            problems.extend(exc.problems)
            if archive.expanded >= archive.max_expanded_bytes:
                break  # the archive's byte budget is spent: nothing more may be inflated
    if problems:
        return MaskScoring(problems, {}, None, notes)
    metrics, details = _aggregate(truth, scores)
    return MaskScoring([], metrics, details, notes)


def _sources(members: Sequence[Member], truth: VolumeTruth, problems: list[Problem]
             ) -> list[tuple[str, _Source]]:
    files: list[tuple[str, _Source]] = []
    folders: dict[str, list[Member]] = {}
    unexpected: list[str] = []
    for name, info in members:
        parts = name.split("/")
        base = parts[-1]
        suffix = suffix_of(base)
        parent = parts[-2] if len(parts) > 1 else None
        if suffix in (".nii", ".nii.gz"):
            files.append((base[: len(base) - len(suffix)], _Source(name, ((name, info),), False)))
        elif parent is not None and truth.index.find(parent) is not None:
            folders.setdefault("/".join(parts[:-1]), []).append((name, info))
        elif suffix == ".dcm":
            files.append((base[: -len(".dcm")], _Source(name, ((name, info),), False)))
        elif suffix in NOT_MASKS:
            problems.append(Problem("unsupported_format", f"mask {name}: {NOT_MASKS[suffix]}",
                                    group=f"masks are {suffix} files: {NOT_MASKS[suffix]}"))
        elif suffix in ARCHIVE_SUFFIXES:
            problems.append(Problem(
                "unexpected_file",
                f"{name} is an archive inside the archive; put the masks directly in one .zip"))
        else:
            unexpected.append(name)
    if unexpected:
        problems.append(Problem(
            "unexpected_file",
            f"{plural(len(unexpected), 'file')} {'is' if len(unexpected) == 1 else 'are'} "
            f"not a mask: {listing(unexpected, 5)}; masks are <id>.nii.gz, <id>.nii, <id>.dcm "
            "(DICOM SEG) or DICOM slices in a folder named by the exam's id"))
    for folder, slices in folders.items():
        stem = folder.rsplit("/", 1)[-1]
        files.append((stem, _Source(folder + "/", tuple(sorted(slices)), True)))
    return files


def _read_mask(archive: Archive, source: _Source, grid: VolumeGrid, exam_id: str,
               notes: list[Problem]) -> npt.NDArray[Any]:
    if source.series:
        rows, columns = grid.shape[1], grid.shape[0]
        limit = HEADER_ROOM + rows * columns * WIDEST_VOXEL

        def read(i: int) -> bytes:
            name, info = source.files[i]
            return archive.read(name, info, exam_id, limit=limit,
                                what=f"a DICOM slice of {rows} × {columns} pixels")

        return read_series_mask([n for n, _ in source.files], read, source.place.rstrip("/"),
                                grid, exam_id, notes)
    name, info = source.files[0]
    data = archive.read(name, info, exam_id, limit=mask_limit(grid),
                        what=f"a label mask of {grid.describe()}")
    if suffix_of(name) == ".dcm":
        return read_dicom_mask(data, name, grid, exam_id, notes)
    return read_nifti(data, name, grid, exam_id, notes)


def _score_exam(labels: npt.NDArray[Any], exam: VolumeExam, truth: VolumeTruth, place: str,
                exam_id: str, tolerance_mm: float, notes: list[Problem]) -> list[Agreement]:
    """Each label's agreement on one exam. The mask is only read: every array made from it
    is the size of the box around its structures, one label at a time."""
    grid = exam.grid
    box = bounding_box(labels)
    counts: dict[int, int] = {}
    if box is None:
        notes.append(notice("empty_mask", f"mask {place} has no foreground voxel", exam_id,
                            group="masks have no foreground voxel"))
    else:
        crop = labels[_slices(box)]
        counts = {label: int(np.count_nonzero(crop == label)) for label in truth.labels}
        if sum(counts.values()) != int(np.count_nonzero(crop)):
            raise Invalid(_value_problem(crop, truth, place, exam_id))
    out: list[Agreement] = []
    for label in truth.labels:
        structure = exam.structures.get(label)
        boxes = [] if structure is None else [structure.box]
        if counts.get(label) and box is not None:
            own = bounding_box(labels[_slices(box)] == label)
            assert own is not None
            boxes.append((_plus(box[0], own[0]), _plus(box[0], own[1])))
        if not boxes:
            out.append(Agreement(1.0, 1.0, 0.0, 0, 0))  # absent from both
            continue
        low = (min(b[0][0] for b in boxes), min(b[0][1] for b in boxes),
               min(b[0][2] for b in boxes))
        high = (max(b[1][0] for b in boxes), max(b[1][1] for b in boxes),
                max(b[1][2] for b in boxes))
        # In C order, as the truth's box is: numpy compares two layouts voxel by voxel.
        predicted = np.ascontiguousarray(labels[_slices((low, high))] == label)
        true = np.zeros(predicted.shape, dtype=np.bool_)
        if structure is not None:
            t_low, t_high = structure.box
            true[_slices((_minus(t_low, low), _minus(t_high, low)))] = structure.mask()
        out.append(compare(true, predicted, grid.spacing, tolerance_mm, grid.diagonal_mm))
    return out


def _slices(box: Box) -> tuple[slice, slice, slice]:
    low, high = box
    return slice(low[0], high[0]), slice(low[1], high[1]), slice(low[2], high[2])


def _plus(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _minus(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _value_problem(crop: npt.NDArray[Any], truth: VolumeTruth, place: str,
                   exam_id: str) -> Problem:
    values = np.unique(crop)
    known = set(truth.labels) | {0}
    fractional = [v for v in values.tolist() if not np.isfinite(v) or not float(v).is_integer()]
    labels = ", ".join(str(v) for v in truth.labels)
    if fractional:
        shown = ", ".join(f"{v:g}" for v in fractional[:4]) + (", …" if len(fractional) > 4
                                                                  else "")
        return Problem(
            "not_integer",
            f"mask {place} holds values that are not whole numbers ({shown}); a label mask "
            f"holds 0 (background) and the labels {labels} (threshold a probability map, or "
            "take its argmax, before saving)",
            exam_id, group="masks hold values that are not whole numbers; a label mask holds "
            f"0 (background) and the labels {labels}")
    other = [int(v) for v in values.tolist() if int(v) not in known]
    shown = ", ".join(str(v) for v in other[:6]) + (", …" if len(other) > 6 else "")
    return Problem(
        "unknown_label",
        f"mask {place} holds {plural(len(other), 'value')} that "
        f"{'is' if len(other) == 1 else 'are'} not a label of this challenge ({shown}); the "
        f"labels are {labels}, 0 the background",
        exam_id, group=f"masks hold values that are not labels of this challenge; the labels "
        f"are {labels}, 0 the background")


def _aggregate(truth: VolumeTruth, scores: dict[str, list[Agreement]]
               ) -> tuple[dict[str, float], dict[str, list[Any]]]:
    ids = list(truth.ids)
    dice, nsd, hd95, error, relative, predicted_mm3, true_mm3 = [], [], [], [], [], [], []
    by_label: dict[str, list[list[float]]] = {"dice": [], "nsd": [], "hd95_mm": [],
                                              "volume_mm3": [], "volume_true_mm3": []}
    for exam_id in ids:
        agreements = scores[exam_id]
        voxel = truth.exams[exam_id].grid.voxel_mm3
        p = [a.predicted_voxels * voxel for a in agreements]
        t = [a.truth_voxels * voxel for a in agreements]
        dice.append(float(np.mean([a.dice for a in agreements])))
        nsd.append(float(np.mean([a.nsd for a in agreements])))
        hd95.append(float(np.mean([a.hd95_mm for a in agreements])))
        error.append(float(np.mean([abs(x - y) for x, y in zip(p, t, strict=True)])))
        shares = [abs(x - y) / y for x, y in zip(p, t, strict=True) if y > 0]
        relative.append(float(np.mean(shares)) if shares else None)
        predicted_mm3.append(float(sum(p)))
        true_mm3.append(float(sum(t)))
        by_label["dice"].append([a.dice for a in agreements])
        by_label["nsd"].append([a.nsd for a in agreements])
        by_label["hd95_mm"].append([a.hd95_mm for a in agreements])
        by_label["volume_mm3"].append(p)
        by_label["volume_true_mm3"].append(t)
    with_relative = [v for v in relative if v is not None]
    metrics = {
        "dice": float(np.mean(dice)),
        "nsd": float(np.mean(nsd)),
        "hd95_mm": float(np.mean(hd95)),
        "volume_error_mm3": float(np.mean(error)),
        "volume_relative_error": float(np.mean(with_relative)) if with_relative else 0.0,
        "dice_min": float(np.min(dice)),
        "dice_median": float(np.median(dice)),
    }
    details: dict[str, list[Any]] = {
        "ids": ids, "dice": dice, "nsd": nsd, "hd95_mm": hd95, "volume_error_mm3": error,
        "volume_relative_error": relative, "volume_mm3": predicted_mm3,
        "volume_true_mm3": true_mm3,
        "labels": list(truth.labels), "label_names": [truth.label_name(v) for v in truth.labels],
        **{f"{key}_by_label": values for key, values in by_label.items()},
    }
    return metrics, details
