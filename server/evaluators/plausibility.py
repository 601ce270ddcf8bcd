"""Truth-free checks of a segmentation submission: what the team's own masks and the
released exams say about its file, never the truth.

The HU window comes from the exam's pixels, the areas from the team's masks and the exams'
PixelSpacing: a mask mostly outside the window is probably read the wrong way round (and the
reading that would fit is named), reported surfaces are compared with the masks' own areas,
and an ambiguous number ("12,827") is settled by the area it should match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.evaluators.options import ScoringOptions
from server.evaluators.result import Problem, listing, notice, plural
from server.evaluators.table import TableRow
from server.evaluators.truth import SegmentationTruth, Target


@dataclass(frozen=True)
class MaskFacts:
    """What scoring keeps of one submitted mask, for the truth-free warnings."""

    pixels: int
    outside: float | None  # share of its pixels outside the HU window, if there is one
    better: tuple[str, float] | None  # a reading (transposed, flipped) far more inside it


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
