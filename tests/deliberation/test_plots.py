"""The jury's SVG plots: they parse, hold one series per team, escape names, stay in frame."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from server.deliberation.plots import (
    MIN_TEXT,
    PALETTE,
    WIDTH,
    bland_altman_svg,
    dice_distribution_svg,
    roc_svg,
    scatter_svg,
    score_over_time_svg,
    team_colours,
    text_width,
)

SVG = "{http://www.w3.org/2000/svg}"
NASTY = '<script>&"x"'
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("width") and root.get("height")
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert not list(root.iter(f"{SVG}script"))
    assert root.find(f".//{SVG}text[@class='x-label']") is not None
    assert root.find(f".//{SVG}text[@class='y-label']") is not None
    return root


def series(root: ET.Element) -> list[str]:
    return [g.get("data-team", "") for g in root.iter(f"{SVG}g") if g.get("class") == "series"]


def coordinates(root: ET.Element) -> Iterator[tuple[str, float]]:
    """Every x-like and y-like coordinate drawn, as ('x'|'y', value)."""
    for element in root.iter():
        for attribute, axis in (("x", "x"), ("x1", "x"), ("x2", "x"), ("cx", "x"),
                                ("y", "y"), ("y1", "y"), ("y2", "y"), ("cy", "y")):
            if element.get(attribute) is not None:
                yield axis, float(element.get(attribute, "0"))
        if element.get("points"):
            for pair in element.get("points", "").split():
                x, y = pair.split(",")
                yield "x", float(x)
                yield "y", float(y)


def assert_in_frame(root: ET.Element) -> None:
    _, _, width, height = (float(v) for v in root.get("viewBox", "").split())
    seen = 0
    for axis, value in coordinates(root):
        seen += 1
        assert 0 <= value <= (width if axis == "x" else height), (axis, value)
    assert seen > 10


def _curves(teams: list[str]) -> dict[str, tuple[list[int], list[float]]]:
    rng = np.random.default_rng(3)
    labels = [k % 2 for k in range(40)]
    return {team: (labels, [float(np.clip(lab * (0.2 + 0.1 * n) + rng.uniform(0, 0.8), 0, 1))
                            for lab in labels]) for n, team in enumerate(teams)}


def test_roc_shows_the_top_teams() -> None:
    teams = [NASTY, "Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot"]
    svg = roc_svg(_curves(teams), top=5)
    root = parse(svg)
    drawn = series(root)
    assert len(drawn) == 5 and len(set(drawn)) == 5
    # The strongest curves are drawn: the last teams were given the clearest signal.
    assert set(drawn) == {"Bravo", "Charlie", "Delta", "Echo", "Foxtrot"}
    assert root.find(f".//{SVG}line[@class='reference']") is not None
    assert_in_frame(root)
    everyone = parse(roc_svg(_curves([NASTY, "Alpha"])))
    assert sorted(series(everyone)) == sorted(["Alpha", NASTY])
    assert "<script>" not in roc_svg(_curves([NASTY, "Alpha"]))
    legend = [t.text for t in everyone.iter(f"{SVG}text") if t.text and "AUC" in t.text]
    assert any(text.startswith(NASTY) for text in legend)


def test_bland_altman() -> None:
    rng = np.random.default_rng(1)
    true = rng.uniform(10_000, 20_000, 30)
    predicted = true + rng.normal(150, 400, 30)
    root = parse(bland_altman_svg(NASTY, true.tolist(), predicted.tolist()))
    assert series(root) == [NASTY]
    assert len(list(next(g for g in root.iter(f"{SVG}g") if g.get("class") == "series"))) == 30
    labels = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    bias = float(np.mean(predicted - true)) / 100
    assert f"mean bias {bias:+.2f} cm²" in labels
    assert "+1.96 SD" in labels and "−1.96 SD" in labels
    assert_in_frame(root)


def test_dice_distribution() -> None:
    rng = np.random.default_rng(2)
    per_team = {team: np.clip(rng.normal(0.93 - 0.01 * n, 0.02, 12), 0, 1).tolist()
                for n, team in enumerate(["Alpha", NASTY, "A very long team name indeed, yes"])}
    per_team["Empty"] = []
    root = parse(dice_distribution_svg(per_team))
    assert series(root) == list(per_team)
    assert_in_frame(root)


def test_scatter_edss() -> None:
    truth = [0.0, 1.0, 2.5, 6.5, 9.5]
    root = parse(scatter_svg({NASTY: (truth, [0.5, 1.0, 3.0, 5.0, 11.0]),
                              "Bravo": (truth, truth)}))
    assert series(root) == [NASTY, "Bravo"]
    assert root.find(f".//{SVG}line[@class='identity']") is not None
    assert_in_frame(root)  # 11.0 is drawn on the edge, not outside


@pytest.mark.parametrize("higher", [True, False])
def test_score_over_time(higher: bool) -> None:
    start = datetime(2019, 10, 14, 8, 0, tzinfo=UTC)
    series_in = {
        NASTY: [(start + timedelta(minutes=5), 3.1), (start + timedelta(minutes=40), 1.2)],
        "Bravo": [(start + timedelta(minutes=20), 2.0)],
        "Charlie": [],
    }
    svg = score_over_time_svg(series_in, higher, metric="MSE", timezone="Europe/Paris",
                              start=start, end=start + timedelta(hours=1))
    root = parse(svg)
    assert series(root) == list(series_in)
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.text and re.fullmatch(r"\d\d:\d\d",
                                                                                t.text)]
    assert ticks[0] == "10:00" and ticks[-1] == "11:00"  # Paris time, summer
    assert_in_frame(root)
    first = next(g for g in root.iter(f"{SVG}g") if g.get("data-team") == NASTY)
    dots = [(float(c.get("cx", 0)), float(c.get("cy", 0))) for c in first.iter(f"{SVG}circle")]
    # The better end is at the top: with lower-is-better, the drop from 3.1 to 1.2 rises.
    assert (dots[1][1] < dots[0][1]) == (not higher)


LONG = "Hounsfield Harriers of the Northern Radiology Department"


def _every_plot(teams: list[str], colours: dict[str, str] | None = None) -> list[str]:
    rng = np.random.default_rng(4)
    start = datetime(2019, 10, 14, 8, 0, tzinfo=UTC)
    true = rng.uniform(10_000, 20_000, 12)
    return [
        roc_svg(_curves(teams), colours=colours),
        bland_altman_svg(teams[0], true.tolist(), (true + 200).tolist(), colours=colours),
        dice_distribution_svg({t: rng.uniform(0.8, 1, 12).tolist() for t in teams},
                              colours=colours),
        scatter_svg({t: ([1.0, 2.0], [1.5, 2.5]) for t in teams}, colours=colours),
        score_over_time_svg({t: [(start + timedelta(minutes=5 + n), 0.5 + n / 20)]
                             for n, t in enumerate(teams)}, True, timezone="Europe/Paris",
                            start=start, end=start + timedelta(hours=1), colours=colours),
    ]


def test_every_text_is_projector_sized_and_inside_the_picture() -> None:
    teams = [LONG, "Alpha", "Bravo", "Charlie", "Delta"]
    for svg in _every_plot(teams):
        root = parse(svg)
        width = float(root.get("width", "0"))
        assert width == WIDTH
        for text in root.iter(f"{SVG}text"):
            assert float(text.get("font-size", "0")) >= MIN_TEXT, text.text
            # A left-anchored text must end before the right edge, by its measured width.
            if text.get("text-anchor") in (None, "start") and text.get("transform") is None:
                size = float(text.get("font-size", "0"))
                end = float(text.get("x", "0")) + text_width(text.text or "", size,
                                                             bold=text.get("font-weight") == "bold")
                assert end <= width, (text.text, end)


def test_a_long_name_is_cut_in_the_legend_but_its_metric_shows() -> None:
    root = parse(roc_svg(_curves([LONG + LONG, "Alpha"])))
    legend = [t.text or "" for g in root.iter(f"{SVG}g") if g.get("class") == "legend"
              for t in g.iter(f"{SVG}text")]
    cut = next(text for text in legend if text.startswith("Hounsfield"))
    assert "…" in cut and cut.endswith(")") and "(AUC " in cut
    assert any(LONG + LONG in (t.text or "") for t in root.iter(f"{SVG}title"))


def test_many_teams_wrap_the_legend_onto_rows_and_the_picture_grows() -> None:
    few = parse(scatter_svg({f"Team {n}": ([1.0], [1.0]) for n in range(2)}))
    many = parse(scatter_svg({f"Team number {n}": ([1.0], [1.0]) for n in range(12)}))
    rows = {t.get("y") for g in many.iter(f"{SVG}g") if g.get("class") == "legend"
            for t in g.iter(f"{SVG}text")}
    assert len(rows) >= 3
    assert float(many.get("height", "0")) > float(few.get("height", "0"))
    assert_in_frame(many)


def test_a_team_has_one_colour_in_every_plot() -> None:
    teams = ["Charlie", "alpha", "Bravo"]
    colours = team_colours(["Zulu", *teams])
    assert list(colours) == ["alpha", "Bravo", "Charlie", "Zulu"]  # sorted, case aside
    assert colours == team_colours(reversed(["Zulu", *teams]))
    assert len(set(colours.values())) == 4 and set(colours.values()) <= set(PALETTE)
    for svg in _every_plot(teams, colours):
        root = parse(svg)
        for group in root.iter(f"{SVG}g"):
            team = group.get("data-team")
            if group.get("class") != "series" or team is None:
                continue
            drawn = {e.get("stroke") if e.tag == f"{SVG}polyline" else e.get("fill")
                     for e in group if e.tag in (f"{SVG}circle", f"{SVG}polyline")}
            assert drawn == {colours[team]}, (root.get("class"), team, drawn)


def test_past_the_palette_colours_repeat_dashed() -> None:
    teams = [f"Team {n:02d}" for n in range(len(PALETTE) + 2)]
    colours = team_colours(teams)
    root = parse(score_over_time_svg(
        {t: [(datetime(2019, 10, 14, 8, n, tzinfo=UTC), float(n))] for n, t in enumerate(teams)},
        True, colours=colours))
    dashed = {g.get("data-team") for g in root.iter(f"{SVG}g") if g.get("class") == "series"
              and any(p.get("stroke-dasharray") for p in g.iter(f"{SVG}polyline"))}
    assert dashed == set(teams[len(PALETTE):])
