"""segmentation-surface (sarcopenia): mean per-exam Dice, and the MSE of surfaces in mm².

Masks are streamed from the zip one at a time and compared at once, so memory stays flat
whatever the number of exams.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from server.evaluators.archive import Archive, open_archive
from server.evaluators.mask import NOT_MASKS, mask_stem, read_mask
from server.evaluators.matching import assign, at_least, table_values
from server.evaluators.options import ScoringOptions
from server.evaluators.result import Invalid, Problem, Result, listing, notice, plural
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
        archive = open_archive(
            submission,
            max_members=options.max_archive_members,
            max_expanded_bytes=options.max_expanded_bytes,
        )
    except Invalid as exc:
        return Result.invalid(renamed(exc.problems, submission.name, name), options.max_errors)
    archive.name = name
    with archive:
        problems, metrics, details, notes = _score_archive(archive, truth, targets, options)
    if problems:
        return Result.invalid(problems, options.max_errors, notes)
    return Result.scored(metrics, details, notes)


def renamed(problems: Iterable[Problem], stored: str, name: str) -> list[Problem]:
    """Problems that name the stored file, told with the name the team uploaded instead."""
    if stored == name:
        return list(problems)
    return [replace(p, message=p.message.replace(stored, name)) for p in problems]


@dataclass(frozen=True)
class MaskFacts:
    """What scoring keeps of one submitted mask, for the truth-free warnings."""

    pixels: int
    outside: float | None  # share of its pixels outside the HU window, if there is one
    better: tuple[str, float] | None  # a reading (transposed, flipped) far more inside it


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
            table = parse_table(archive.read(table_name, info), table_name)
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
        try:
            mask = read_mask(archive.read(name, info, exam_id), name, target.grid, exam_id,
                             notes)
        except Invalid as exc:
            problems.extend(exc.problems)
            if any(p.code == "too_large" for p in exc.problems):
                break  # the byte budget is spent: nothing more may be inflated
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


@dataclass(frozen=True)
class Settled:
    values: dict[str, float]
    notes: list[Problem]


# A reported surface within this factor of the team's own mask area is the reading it meant;
# the two readings of an ambiguous number are 1000 times apart, so at most one can be.
SETTLE_FACTOR = 2.0


def settle_ambiguous(rows: dict[str, TableRow], facts: dict[str, MaskFacts],
                     targets: dict[str, Target], table_name: str
                     ) -> tuple[Settled, list[Problem]]:
    """Each "12,827" read as 12827 or 12.827, whichever the team's own mask area supports;
    the values no area settles are refused, all in one line."""
    values: dict[str, float] = {}
    read_grouped: list[str] = []
    read_decimal: list[str] = []
    open_ids: list[str] = []
    for exam_id, row in rows.items():
        fact, spacing = facts.get(exam_id), targets[exam_id].grid.spacing
        assert row.value is not None and row.alternative is not None
        fits: list[float] = []
        if fact is not None and fact.pixels and spacing is not None:
            area = fact.pixels * spacing[0] * spacing[1]
            fits = [v for v in (row.value, row.alternative)
                    if v > 0 and 1 / SETTLE_FACTOR <= v / area <= SETTLE_FACTOR]
        if len(fits) == 1:
            values[exam_id] = fits[0]
            (read_grouped if fits[0] == row.alternative else read_decimal).append(exam_id)
        else:
            open_ids.append(exam_id)
    notes: list[Problem] = []
    for ids, how in ((read_grouped, "with a thousands separator"),
                     (read_decimal, "with a decimal separator")):
        if ids:
            shown = ", ".join(f"{rows[i].text} ({i})" for i in ids[:5])
            notes.append(notice(
                "number_read_from_masks",
                f"{table_name}: {plural(len(ids), 'surface')} written like {rows[ids[0]].text} "
                f"could be read two ways; {'it was' if len(ids) == 1 else 'they were'} read "
                f"{how}, the reading your own masks' areas support: {shown}"
                f"{', …' if len(ids) > 5 else ''}. Write surfaces without thousands "
                "separators (12827 or 12827.5)",
            ))
    problems: list[Problem] = []
    if open_ids:
        shown = ", ".join(
            f"{rows[i].text} ({i}: {_fmt(rows[i].alternative)} or {_fmt(rows[i].value)})"
            for i in open_ids[:8]
        )
        problems.append(Problem(
            "ambiguous_number",
            f"{table_name}: {plural(len(open_ids), 'surface')} can be read two ways, with a "
            f"thousands separator or a decimal one, and the masks do not settle which: "
            f"{shown}{', …' if len(open_ids) > 8 else ''}. Write them without thousands "
            "separators, with a decimal point or comma only where there are decimals "
            "(12827 or 12827.5)",
        ))
    return Settled(values, notes), problems


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"


# Truth-free plausibility thresholds.
OUTSIDE_SHARE = 0.5  # more than half of a mask outside the HU window is not muscle
INSIDE_SHARE = 0.25  # a reading with at most this share outside would fit the window
SURFACE_TOLERANCE = 0.10


def mask_facts(mask: npt.NDArray[np.bool_], target: Target) -> MaskFacts:
    """The mask's size, and how much of it falls outside the HU window as read and as it
    would if transposed or flipped."""
    pixels = int(np.count_nonzero(mask))
    if target.window is None or pixels == 0:
        return MaskFacts(pixels, None, None)
    rows, columns = target.shape
    inside = np.unpackbits(target.window, count=rows * columns).view(np.bool_).reshape(
        rows, columns)
    outside = 1.0 - int(np.count_nonzero(mask & inside)) / pixels
    better = None
    if outside > OUTSIDE_SHARE:
        readings = [("upside down", mask[::-1, :]), ("mirrored left-right", mask[:, ::-1]),
                    ("rotated 180°", mask[::-1, ::-1])]
        if rows == columns:
            readings += [("transposed", mask.T), ("transposed and upside down", mask.T[::-1, :]),
                         ("transposed and mirrored", mask.T[:, ::-1])]
        shares = [(how, 1.0 - int(np.count_nonzero(m & inside)) / pixels) for how, m in readings]
        how, share = min(shares, key=lambda item: item[1])
        if share <= INSIDE_SHARE and share < outside / 2:
            better = (how, share)
    return MaskFacts(pixels, outside, better)


def plausibility(truth: SegmentationTruth, targets: dict[str, Target],
                 facts: dict[str, MaskFacts], surfaces: dict[str, float],
                 options: ScoringOptions, table_name: str) -> list[Problem]:
    """Warnings computed from the team's own files and the released exams only."""
    notes: list[Problem] = []
    empty = [i for i in truth.ids if facts[i].pixels == 0]
    if empty:
        notes.append(notice(
            "empty_mask",
            f"{plural(len(empty), 'mask')} {'is' if len(empty) == 1 else 'are'} empty (no "
            f"foreground pixel): {listing(empty)}; if muscle was predicted there, check the "
            "mask's values (nonzero is muscle)",
        ))
    if options.hu_window is not None:
        low, high = (f"{v:g}" for v in options.hu_window)
        for i in truth.ids:
            fact = facts[i]
            if fact.outside is None or fact.outside <= OUTSIDE_SHARE:
                continue
            notes.append(notice(
                "outside_hu_window",
                f"mask {i}: {fact.outside:.0%} of its pixels lie outside the HU window "
                f"[{low}, {high}] on the exam, so they are not muscle",
                i, group=f"masks have most of their pixels outside the HU window [{low}, {high}]"
                " on their exam, so not on muscle",
            ))
            if fact.better is not None:
                how, share = fact.better
                message = (f"mask {i} looks {how}: read {how}, only {share:.0%} of it would lie "
                           "outside the HU window. Check the axis order and direction your "
                           "writer uses")
                group = (f"masks look {how}: read {how}, they would lie inside the HU window. "
                         "Check the axis order and direction your writer uses")
                if how.startswith("transposed"):
                    notes.append(notice("looks_transposed", message, i, group=group))
                else:
                    notes.append(notice("looks_flipped", message, i, group=group))
    notes.extend(_surface_notes(truth, targets, facts, surfaces, table_name))
    values = {surfaces[i] for i in truth.ids}
    if len(truth.ids) > 1 and len(values) == 1:
        notes.append(notice(
            "constant_predictions",
            f"{table_name}: every surface is {_fmt(values.pop())} mm²; a constant says nothing "
            "about each exam",
        ))
    return notes


def _surface_notes(truth: SegmentationTruth, targets: dict[str, Target],
                   facts: dict[str, MaskFacts], surfaces: dict[str, float],
                   table_name: str) -> list[Problem]:
    off: list[tuple[str, float]] = []
    for i in truth.ids:
        spacing, pixels = targets[i].grid.spacing, facts[i].pixels
        if spacing is None or pixels == 0:
            continue
        area = pixels * spacing[0] * spacing[1]
        ratio = surfaces[i] / area
        if abs(ratio - 1) > SURFACE_TOLERANCE:
            off.append((i, ratio))
    if len(off) < min(2, len(truth.ids)):
        return []
    ratios = np.array([r for _, r in off])
    median = float(np.median(ratios))
    hint = ""
    if 0.005 <= median <= 0.02:
        hint = " They look like cm² (about 1/100 of the areas): surfaces are in mm²."
    elif all((s := targets[i].grid.spacing) is not None
             and abs(surfaces[i] / facts[i].pixels - 1) <= SURFACE_TOLERANCE
             and abs(s[0] * s[1] - 1) > SURFACE_TOLERANCE for i, _ in off):
        hint = (" They look like pixel counts: multiply by PixelSpacing (rows × columns, "
                "in mm) to get mm².")
    shown = ", ".join(f"{i} ({surfaces[i]:g} vs {surfaces[i] / r:.0f})" for i, r in off[:6])
    return [notice(
        "surface_mismatch",
        f"{table_name}: on {plural(len(off), 'exam')} the surface differs by more than 10 % "
        f"from your own mask's area × PixelSpacing (reported vs mask, mm²): {shown}"
        f"{', …' if len(off) > 6 else ''}.{hint}",
    )]


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
