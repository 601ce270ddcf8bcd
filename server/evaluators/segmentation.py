"""segmentation-surface (sarcopenia): mean per-exam Dice, and the MSE of surfaces in mm².

Masks are streamed from the zip one at a time and compared at once, so memory stays flat
whatever the number of exams. Each member is inflated only up to what it should hold: a mask
up to what a mask of its exam's shape can take in any mask format, the surfaces table up to
what a table of the truth's ids can take; the archive's own declarations never raise that.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from server.evaluators.archive import Archive, open_submission
from server.evaluators.mask import NOT_MASKS, mask_stem, read_mask
from server.evaluators.matching import assign, at_least, table_values
from server.evaluators.options import ScoringOptions
from server.evaluators.plausibility import MaskFacts, mask_facts, plausibility, settle_ambiguous
from server.evaluators.result import Invalid, Problem, Result, listing, plural
from server.evaluators.table import (
    REFUSED,
    TABLE_SUFFIXES,
    Table,
    TableRow,
    parse_table,
    suffix_of,
)
from server.evaluators.truth import SegmentationTruth, Target

SURFACE_STEMS = ("surfaces", "surface")
ARCHIVE_SUFFIXES = (".zip", ".rar", ".7z", ".tar", ".gz", ".tgz", ".bz2", ".xz")
EXPECTED = "one .zip holding a mask per exam (<id>.png, .dcm, .nii, .nii.gz or .npy) and " \
    "surfaces.csv (id,surface_mm2)"

Member = tuple[str, zipfile.ZipInfo]

# The widest pixel a mask is written with (float64, int64): twice that per pixel, plus room
# for headers (DICOM, NIfTI extensions), is more than any real mask file of the exam takes.
MASK_BYTES_PER_PIXEL = 2 * 8
MASK_HEADER_ROOM = 1024**2
# A table row is an id and a number; a kilobyte per expected row is generous.
TABLE_FLOOR = 4 * 1024**2
TABLE_BYTES_PER_ROW = 1024


def mask_member_limit(shape: tuple[int, int]) -> int:
    """The most bytes a mask of an exam of `shape` may expand to inside the archive."""
    rows, columns = shape
    return MASK_HEADER_ROOM + rows * columns * MASK_BYTES_PER_PIXEL


def table_member_limit(expected_rows: int) -> int:
    """The most bytes the surfaces table (CSV or xlsx) may expand to inside the archive."""
    return TABLE_FLOOR + expected_rows * TABLE_BYTES_PER_ROW


def score_segmentation(
    truth: SegmentationTruth, submission: Path, options: ScoringOptions, name: str | None = None
) -> Result:
    """Score a zip of masks; `name` is the file's name as the team uploaded it."""
    name = name or submission.name
    suffix = suffix_of(name)
    if suffix != ".zip":
        hint = f" ({NOT_MASKS[suffix]})" if suffix in NOT_MASKS else ""
        return Result.invalid(
            [Problem("unsupported_format", f"{name} is not a .zip{hint}; send {EXPECTED}")],
            options.max_errors,
        )
    targets = truth.targets(options.hu_window)
    try:
        archive = open_submission(submission, name, max_members=options.max_archive_members,
                                  max_expanded_bytes=options.max_expanded_bytes)
    except Invalid as exc:
        return Result.invalid(exc.problems, options.max_errors)
    with archive:
        problems, metrics, details, notes = _score_archive(archive, truth, targets, options)
    if problems:
        return Result.invalid(problems, options.max_errors, notes)
    return Result.scored(metrics, details, notes)


def _score_archive(
    archive: Archive, truth: SegmentationTruth, targets: dict[str, Target],
    options: ScoringOptions,
) -> tuple[list[Problem], dict[str, float], dict[str, list[Any]] | None, list[Problem]]:
    problems: list[Problem] = []
    notes: list[Problem] = []
    masks: list[tuple[str, Member, str]] = []
    tables: list[Member] = []
    unexpected: list[str] = []
    for name, info in archive.members:
        stem = mask_stem(name)
        base = name.rsplit("/", 1)[-1]
        suffix = suffix_of(base)
        if stem is not None:
            masks.append((stem, (name, info), name))
        elif _is_surfaces(base):
            tables.append((name, info))
        elif suffix in NOT_MASKS:
            problems.append(Problem("unsupported_format", f"mask {name}: {NOT_MASKS[suffix]}",
                                    truth.index.find(base[: len(base) - len(suffix)]),
                                    group=f"masks are {suffix} files: {NOT_MASKS[suffix]}"))
        elif suffix in ARCHIVE_SUFFIXES:
            problems.append(Problem(
                "unexpected_file",
                f"{name} is an archive inside the archive; put the masks directly in one .zip",
            ))
        else:
            unexpected.append(name)
    if unexpected:
        problems.append(Problem(
            "unexpected_file",
            f"{plural(len(unexpected), 'file')} {'is' if len(unexpected) == 1 else 'are'} "
            "neither a mask nor surfaces.csv: "
            f"{listing(unexpected, 5)}; remove them",
        ))
    if not masks and not tables:
        problems.insert(0, Problem("empty", f"{archive.name} holds no masks; send {EXPECTED}"))
    assignment = assign(truth.index, masks, what="mask", where="")
    problems.extend(assignment.problems)

    surfaces: dict[str, float] = {}
    ambiguous: dict[str, TableRow] = {}
    table_name = "surfaces.csv"
    if not tables:
        problems.append(Problem(
            "missing_surfaces",
            f"{archive.name} has no surfaces.csv; add it with one row per exam: id,surface_mm2",
        ))
    elif len(tables) > 1:
        problems.append(Problem(
            "duplicate_path",
            f"{archive.name} holds {len(tables)} surface tables "
            f"({listing([n for n, _ in tables])}); keep one",
        ))
    else:
        table_name, info = tables[0]
        try:
            data = archive.read(table_name, info, limit=table_member_limit(len(truth.ids)),
                                what=f"a table of {len(truth.ids)} exams (id,surface_mm2)")
            table = parse_table(data, table_name, len(truth.ids))
            surfaces, found = table_values(
                table, truth.index, label="surface", check=at_least(0.0), where=table_name
            )
            problems.extend(found)
            ambiguous = _ambiguous_rows(table, truth, surfaces)
        except Invalid as exc:
            problems.extend(exc.problems)

    dice: dict[str, float] = {}
    facts: dict[str, MaskFacts] = {}
    # Reading in archive order keeps the zip's reads sequential.
    ordered = sorted(assignment.matched.items(), key=lambda item: item[1][1].header_offset)
    for exam_id, (name, info) in ordered:
        target = targets[exam_id]
        rows, columns = target.shape
        try:
            data = archive.read(name, info, exam_id, limit=mask_member_limit(target.shape),
                                what=f"a mask of {rows} × {columns} pixels (one 2-D slice of "
                                     "0/1 values, e.g. uint8)")
            mask = read_mask(data, name, target.grid, exam_id, notes)
        except Invalid as exc:
            problems.extend(exc.problems)
            if archive.expanded >= archive.max_expanded_bytes:
                break  # the archive's byte budget is spent: nothing more may be inflated
            continue
        dice[exam_id] = exam_dice(mask, target)
        facts[exam_id] = mask_facts(mask, target)
    if ambiguous:
        settled, unsettled = settle_ambiguous(ambiguous, facts, targets, table_name)
        surfaces.update(settled.values)
        notes.extend(settled.notes)
        problems.extend(unsettled)
    if problems:
        return problems, {}, None, notes
    notes.extend(plausibility(truth, targets, facts, surfaces, options, table_name))
    per_exam_dice = [dice[i] for i in truth.ids]
    predicted_mm2 = [float(surfaces[i]) for i in truth.ids]
    truth_mm2 = [float(targets[i].surface_mm2) for i in truth.ids]
    details: dict[str, list[Any]] = {
        "ids": list(truth.ids), "dice": per_exam_dice,
        "surface_true": truth_mm2, "surface_predicted": predicted_mm2,
    }
    metrics = segmentation_metrics(
        np.array(per_exam_dice), np.array(predicted_mm2), np.array(truth_mm2)
    )
    return [], metrics, details, notes


def _ambiguous_rows(table: Table, truth: SegmentationTruth, surfaces: dict[str, float]
                    ) -> dict[str, TableRow]:
    out: dict[str, TableRow] = {}
    for row in table.rows:
        truth_id = truth.index.find(row.id)
        if truth_id is not None and truth_id in surfaces and row.alternative is not None:
            out[truth_id] = row
    return out


def _is_surfaces(base: str) -> bool:
    # A refused spreadsheet type (surfaces.xls, .ods) goes to the table reader, which says
    # what to send instead.
    stem, _, suffix = base.lower().rpartition(".")
    return stem in SURFACE_STEMS and (f".{suffix}" in TABLE_SUFFIXES or f".{suffix}" in REFUSED)


def exam_dice(mask: npt.NDArray[np.bool_], target: Target) -> float:
    """Dice of one exam; both masks empty counts as perfect agreement (1.0)."""
    rows, columns = target.shape
    size = rows * columns
    predicted = mask.reshape(-1)
    if target.window is not None:
        predicted = predicted & np.unpackbits(target.window, count=size).view(np.bool_)
    truth = np.unpackbits(target.truth, count=size).view(np.bool_)
    predicted_pixels = int(np.count_nonzero(predicted))
    total = predicted_pixels + target.truth_pixels
    if total == 0:
        return 1.0
    overlap = int(np.count_nonzero(predicted & truth))
    return 2.0 * overlap / total


def segmentation_metrics(
    dice: npt.NDArray[np.float64],
    predicted_mm2: npt.NDArray[np.float64],
    truth_mm2: npt.NDArray[np.float64],
) -> dict[str, float]:
    error = predicted_mm2 - truth_mm2
    mse = float(np.mean(error * error))
    return {
        "dice": float(np.mean(dice)),
        "surface_mse": mse,
        "dice_min": float(np.min(dice)),
        "dice_median": float(np.median(dice)),
        # 1 cm² = 100 mm²: the error a radiologist reads on a report.
        "surface_rmse_cm2": float(np.sqrt(mse)) / 100.0,
        "surface_mae_cm2": float(np.mean(np.abs(error))) / 100.0,
    }
