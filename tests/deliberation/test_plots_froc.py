"""The detection and calibration plots of server/deliberation/plots.py (`froc_svg`,
`reliability_svg`): they parse, hold one curve per team, stay in frame, keep projector-sized
text and the team's colour, and draw what the metrics say."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from server.deliberation.plots import (
    MIN_TEXT,
    WIDTH,
    froc_svg,
    reliability_svg,
    team_colours,
    text_width,
)
from server.evaluators.probability import expected_calibration_error

from .test_plots import NASTY, SVG, assert_in_frame, parse, series

LONG = "Hounsfield Units of the Round Table of the Lung"


def _froc_curves(teams: list[str]) -> dict[str, tuple[list[float], list[float]]]:
    """(0, 0), a step up, a diagonal, a flat run that stops before 8 FP per exam."""
    return {team: ([0.0, 0.0, 0.5 + n, 1.0 + n, 2.0 + n], [0.0, 0.2 + 0.1 * n, 0.4 + 0.1 * n,
                                                         0.4 + 0.1 * n, 0.6 + 0.1 * n])
            for n, team in enumerate(teams)}


def _labels_and_scores(teams: list[str]) -> dict[str, tuple[list[float], list[float]]]:
    rng = np.random.default_rng(8)
    labels = (rng.random(80) < 0.4).astype(float)
    return {team: (labels.tolist(),
                   np.clip(labels * (0.3 + 0.1 * n) + rng.random(80) * 0.6, 0, 1).tolist())
            for n, team in enumerate(teams)}


def _texts(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(f"{SVG}text"))


def _check_projector_text(root: ET.Element) -> None:
    width = float(root.get("width", "0"))
    assert width == WIDTH
    for text in _texts(root):
        size = float(text.get("font-size", "0"))
        assert size >= MIN_TEXT, text.text
        if text.get("text-anchor") in (None, "start") and text.get("transform") is None:
            end = float(text.get("x", "0")) + text_width(
                text.text or "", size, bold=text.get("font-weight") == "bold")
            assert end <= width, (text.text, end)


def test_froc_draws_one_curve_per_team_on_luna16s_axis() -> None:
    teams = [NASTY, "Alpha", LONG, "Bravo"]
    colours = team_colours(teams)
    svg = froc_svg(_froc_curves(teams), colours=colours)
    assert "<script>" not in svg
    root = parse(svg)
    assert series(root) == teams
    assert_in_frame(root)
    _check_projector_text(root)
    ticks = [t.text for t in _texts(root)]
    assert all(w in ticks for w in ("1/8", "1/4", "1/2", "1", "2", "4", "8"))
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "series":
            assert len(list(group.iter(f"{SVG}polyline"))) == 1
            # The seven operating points of the CPM, each in the team's colour.
            dots = list(group.iter(f"{SVG}circle"))
            assert len(dots) == 7
            assert {d.get("fill") for d in dots} == {colours[group.get("data-team", "")]}
    # Alpha's curve: (0, 0), (0, .3), (1.5, .5), (2, .5), (3, .7). At 1/8, 1/4, 1/2, 1: on
    # the diagonal, .3 + .2 × r / 1.5 = .316667, .333333, .366667, .433333; at 2 the point
    # (2, .5); at 4 and 8, past the last point: .7. CPM = (1.45 + .5 + 1.4) / 7 = .478571.
    at = [0.3 + 0.2 * r / 1.5 for r in (0.125, 0.25, 0.5, 1.0)] + [0.5, 0.7, 0.7]
    assert np.mean(at) == pytest.approx(3.35 / 7)
    legend = [t.text or "" for t in _texts(root) if (t.text or "").startswith("Alpha")]
    assert legend == [f"Alpha (CPM {np.mean(at):.3f})"]
    faded = [line for line in root.iter(f"{SVG}line") if line.get("class") == "beyond"]
    assert len(faded) == len(teams)  # every curve stops before 8 FP per exam


def test_froc_of_a_system_without_false_positives_is_flat_at_its_sensitivity() -> None:
    root = parse(froc_svg({"Zero": ([0.0, 0.0], [0.0, 0.8])}))
    group = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "series")
    heights = {c.get("cy") for c in group.iter(f"{SVG}circle")}
    assert len(heights) == 1
    assert any((t.text or "") == "Zero (CPM 0.800)" for t in _texts(root))


def test_reliability_bins_each_team_with_its_counts_and_ece() -> None:
    teams = ["Alpha", NASTY, LONG]
    curves = _labels_and_scores(teams)
    colours = team_colours(teams)
    root = parse(reliability_svg(curves, colours=colours))
    assert series(root) == teams
    assert_in_frame(root)
    _check_projector_text(root)
    assert root.find(f".//{SVG}line[@class='reference']") is not None
    for group in root.iter(f"{SVG}g"):
        if group.get("class") != "series":
            continue
        team = group.get("data-team", "")
        labels, scores = (np.asarray(v) for v in curves[team])
        which = np.searchsorted(np.linspace(0, 1, 11)[1:-1], scores)
        counts = np.bincount(which, minlength=10)
        dots = list(group.iter(f"{SVG}circle"))
        assert len(dots) == int((counts > 0).sum())
        said = sorted(int((d.findtext(f"{SVG}title") or "").split(": ", 1)[1].split()[0])
                      for d in dots)
        assert said == sorted(int(c) for c in counts if c)
        assert {d.get("fill") for d in dots} == {colours[team]}
        ece = expected_calibration_error(labels, scores)
        assert any(f"(ECE {ece:.3f})" in (t.text or "") for t in _texts(root))


@pytest.mark.parametrize("plot", [froc_svg, reliability_svg])
def test_a_plot_without_teams_still_parses(plot: object) -> None:
    root = parse(plot({}))  # type: ignore[operator]
    assert series(root) == []
