"""The truth-free checks directly: which reading of a mask fits the HU window, and how an
ambiguous surface is settled by the team's own mask area."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from server.evaluators.exam import ExamGrid
from server.evaluators.plausibility import MaskFacts, mask_facts, settle_ambiguous
from server.evaluators.table import TableRow
from server.evaluators.truth import Target


def target(inside: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> Target:
    flat = inside.reshape(-1)
    return Target(ExamGrid(inside.shape, spacing), np.packbits(np.zeros_like(flat)), 0,
                  np.packbits(flat), 0.0)


def muscle_top_right(shape: tuple[int, int]) -> np.ndarray:
    inside = np.zeros(shape, bool)
    inside[1:3, shape[1] - 4 : shape[1] - 1] = True
    return inside


@pytest.mark.parametrize(("reading", "named"), [
    (lambda m: m.T, "transposed"), (lambda m: m[::-1, :], "upside down"),
    (lambda m: m[:, ::-1], "mirrored left-right"), (lambda m: m[::-1, ::-1], "rotated 180°"),
])
def test_the_reading_that_fits_the_window_is_named(
        reading: Callable[[np.ndarray], np.ndarray], named: str) -> None:
    inside = muscle_top_right((8, 8))
    facts = mask_facts(np.ascontiguousarray(reading(inside)), target(inside))
    assert facts.outside == 1.0 and facts.better == (named, 0.0)


def test_a_mask_mostly_inside_the_window_says_nothing_more() -> None:
    inside = muscle_top_right((8, 8))
    mask = inside.copy()
    mask[0, 0] = True  # one pixel of 7 outside
    facts = mask_facts(mask, target(inside))
    assert facts.pixels == 7 and facts.outside == pytest.approx(1 / 7) and facts.better is None
    assert mask_facts(np.zeros((8, 8), bool), target(inside)) == MaskFacts(0, None, None)


def test_a_transposed_reading_is_only_tried_on_square_exams() -> None:
    inside = muscle_top_right((6, 9))
    facts = mask_facts(np.ascontiguousarray(inside[::-1, ::-1]), target(inside))
    assert facts.better is not None and facts.better[0] == "rotated 180°"


def row(text: str, value: float, alternative: float) -> TableRow:
    return TableRow(2, "a", text, value, alternative)


def test_an_ambiguous_surface_takes_the_reading_the_mask_area_supports() -> None:
    targets = {"a": target(np.ones((4, 4), bool), (30.0, 30.0))}  # 900 mm² per pixel
    rows = {"a": row("12,827", 12.827, 12827.0)}
    settled, problems = settle_ambiguous(rows, {"a": MaskFacts(14, None, None)}, targets,
                                         "surfaces.csv")
    assert settled.values == {"a": 12827.0} and problems == []
    assert [n.code for n in settled.notes] == ["number_read_from_masks"]
    small = {"a": MaskFacts(14, None, None)}
    tiny = {"a": target(np.ones((4, 4), bool), (1.0, 1.0))}  # 14 mm²: 12.827 fits
    assert settle_ambiguous(rows, small, tiny, "s.csv")[0].values == {"a": 12.827}
    # An area that fits neither (or no mask at all) leaves it open: refused with both readings.
    for facts in ({"a": MaskFacts(2000, None, None)}, {}):
        _, problems = settle_ambiguous(rows, facts, targets, "s.csv")
        [problem] = problems
        assert problem.code == "ambiguous_number" and "12827 or 12.827" in problem.message
