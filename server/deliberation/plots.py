"""The jury's plots, drawn as SVG text by this module: no JavaScript, no CDN, nothing to fetch,
because the venue's network may be down when the jury deliberates.

Every plot has one `<g class="series" data-team="...">` per team, labelled axes, a legend,
`width`, `height` and a `viewBox`, and keeps every coordinate inside the viewBox (points
outside an axis range are drawn on its edge). Team names are escaped wherever they appear.

Plots are read on a projector: every text is at least `MIN_TEXT` units high in a viewBox
`WIDTH` units wide, and the pages never show a plot narrower than 90 % of that width, so no
text is under 18 px at 1080p. Legends sit under the plot area and wrap onto as many rows as
their entries need, measured with `text_width`, so they never run off the picture. A team has
one colour everywhere (`team_colours`): on the boards and in every plot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

import numpy as np

from server import kinds
from server.ranking import Row
from server.results import ChallengeResults

# Okabe–Ito's colour-blind-safe palette without its yellow (invisible on a projected white
# background), then darker extras; past ten teams colours repeat with a dashed line.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#8C510A", "#7570B3", "#666666")
UNKNOWN_TEAM = "#666666"
WIDTH = 900
AREA_HEIGHT = 420
MIN_TEXT = 20               # ticks, legends, team names
LABEL_TEXT = 22             # axis labels
TITLE_TEXT = 26
# A presentation attribute, not a style attribute: the pages' Content-Security-Policy allows no
# inline style.
FONT = "system-ui, 'Segoe UI', Helvetica, Arial, sans-serif"
INK, GRID, REFERENCE = "#222222", "#dddddd", "#888888"
LEGEND_ROW = 32
SWATCH = 30
PAD = 20

# Advance widths in em of the widest common sans-serif a venue's machine falls back to (DejaVu
# Sans, as Chromium renders it on Linux); other fonts (Segoe UI, Helvetica) are narrower, so a
# text measured with these fits wherever it is drawn.
_WIDTHS = {
    0.28: "'ijl", 0.29: "IJ", 0.32: " ,.·", 0.34: "/:;\\f|", 0.36: "-", 0.39: "()[]t",
    0.4: "!r²", 0.46: '"', 0.5: "*_`–", 0.52: "sz", 0.53: "?", 0.55: "cç", 0.56: "L",
    0.58: "Fk", 0.59: "vxy", 0.6: "PT", 0.61: "Yaoàô", 0.62: "eéè", 0.63: "ESbdghnpquÉ",
    0.64: "0123456789${}µ", 0.66: "K", 0.68: "V", 0.69: "BRXZ", 0.7: "C", 0.71: "A",
    0.73: "U", 0.75: "HN", 0.77: "DG", 0.78: "&", 0.79: "OQ", 0.82: "w",
    0.84: "#+<=>^~−×±", 0.86: "M", 0.95: "%", 0.97: "m", 0.99: "W", 1.0: "@—…",
}
_EM = {char: width for width, chars in _WIDTHS.items() for char in chars}
_UNLISTED_EM = 0.8   # any other character: as wide as a capital, to be safe
_BOLD = 1.12


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    """The width `text` takes at `size` (in the SVG's units), erring on the wide side."""
    em = sum(_EM.get(char, _UNLISTED_EM) for char in text)
    return em * size * (_BOLD if bold else 1.0)


def fit(text: str, size: float, room: float, *, bold: bool = False) -> str:
    """`text`, cut with an ellipsis if it would not fit in `room` units."""
    if text_width(text, size, bold=bold) <= room:
        return text
    cut = text
    while cut and text_width(cut + "…", size, bold=bold) > room:
        cut = cut[:-1]
    return cut.rstrip() + "…"


def team_colours(teams: Iterable[str]) -> dict[str, str]:
    """One colour per team for the whole event, from its sorted list of teams: the boards, the
    reveal and every plot are given this same map, so a team keeps its colour everywhere."""
    ordered = sorted(set(teams), key=lambda t: (t.lower(), t))
    return {team: PALETTE[n % len(PALETTE)] for n, team in enumerate(ordered)}


@dataclass(frozen=True)
class _Styles:
    """Colour and line of each team in one plot."""

    colours: Mapping[str, str]

    def colour(self, team: str) -> str:
        return self.colours.get(team, UNKNOWN_TEAM)

    def dash(self, team: str) -> str:
        # Past the palette, colours repeat: the second use of a colour is dashed.
        order = list(self.colours)
        repeated = team in self.colours and order.index(team) >= len(PALETTE)
        return ' stroke-dasharray="8 5"' if repeated else ""


def _styles(colours: Mapping[str, str] | None, teams: Iterable[str]) -> _Styles:
    return _Styles(colours if colours is not None else team_colours(teams))


@dataclass(frozen=True)
class LegendEntry:
    label: str
    colour: str
    mark: str = "box"        # "box", "dot", "line" or "dashed"
    team: str | None = None
    full: str | None = None  # the whole text, for the tooltip, when the label had to be cut


@dataclass
class _Plot:
    """A plot area inside the SVG and the linear maps from data to pixels."""

    title: str
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    x_label: str
    y_label: str
    left: float = 0.0        # 0: wide enough for the y ticks
    right: float = 36
    top: float = 60
    area_height: float = AREA_HEIGHT
    width: float = WIDTH
    y_ticks: Sequence[tuple[float, str]] | None = None
    parts: list[str] = field(default_factory=list)
    legend_entries: list[LegendEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.x_range = _widen(self.x_range)
        self.y_range = _widen(self.y_range)
        if self.y_ticks is None:
            self.y_ticks = [(v, _fmt(v)) for v in _ticks(*self.y_range)]
        if not self.left:
            widest = max((text_width(label, MIN_TEXT) for _, label in self.y_ticks), default=0)
            self.left = 14 + LABEL_TEXT + 12 + widest + 10

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        return self.top + self.area_height

    @property
    def y1(self) -> float:
        return self.top

    def x(self, value: float) -> float:
        lo, hi = self.x_range
        t = (value - lo) / (hi - lo) if math.isfinite(value) else 0.0
        return round(self.x0 + min(1.0, max(0.0, t)) * (self.x1 - self.x0), 2)

    def y(self, value: float) -> float:
        lo, hi = self.y_range
        t = (value - lo) / (hi - lo) if math.isfinite(value) else 0.0
        return round(self.y0 - min(1.0, max(0.0, t)) * (self.y0 - self.y1), 2)

    def axes(self, x_ticks: Sequence[tuple[float, str]] | None = None) -> None:
        xt = x_ticks if x_ticks is not None else [(v, _fmt(v)) for v in _ticks(*self.x_range)]
        out = ['<g class="axes">']
        for value, label in xt:
            px = self.x(value)
            out.append(f'<line x1="{px}" y1="{self.y1}" x2="{px}" y2="{self.y0}" '
                       f'stroke="{GRID}" stroke-width="1"/>')
            out.append(f'<text x="{px}" y="{self.y0 + 26}" text-anchor="middle" '
                       f'font-size="{MIN_TEXT}">{escape(label)}</text>')
        for value, label in self.y_ticks or ():
            py = self.y(value)
            out.append(f'<line x1="{self.x0}" y1="{py}" x2="{self.x1}" y2="{py}" '
                       f'stroke="{GRID}" stroke-width="1"/>')
            out.append(f'<text x="{self.x0 - 10}" y="{py + 7}" text-anchor="end" '
                       f'font-size="{MIN_TEXT}">{escape(label)}</text>')
        out.append(f'<rect x="{self.x0}" y="{self.y1}" width="{self.x1 - self.x0}" '
                   f'height="{self.y0 - self.y1}" fill="none" stroke="{INK}" stroke-width="1"/>')
        mid_x = (self.x0 + self.x1) / 2
        x_label = fit(self.x_label, LABEL_TEXT, self.width - 2 * PAD)
        out.append(f'<text class="x-label" x="{mid_x}" y="{self.y0 + 60}" '
                   f'text-anchor="middle" font-size="{LABEL_TEXT}">{escape(x_label)}</text>')
        mid_y = (self.y0 + self.y1) / 2
        y_label = fit(self.y_label, LABEL_TEXT, self.area_height)
        out.append(f'<text class="y-label" x="{14 + LABEL_TEXT / 2}" y="{mid_y}" '
                   f'text-anchor="middle" dominant-baseline="central" font-size="{LABEL_TEXT}" '
                   f'transform="rotate(-90 {14 + LABEL_TEXT / 2} {mid_y})">'
                   f'{escape(y_label)}</text>')
        out.append("</g>")
        self.parts.extend(out)

    def legend(self, entries: Sequence[LegendEntry]) -> None:
        self.legend_entries.extend(entries)

    def _legend_svg(self) -> tuple[str, float]:
        """The legend under the axes, wrapped onto rows; returns it and where it ends."""
        top = self.y0 + 84
        if not self.legend_entries:
            return "", self.y0 + 72
        room = self.width - 2 * PAD
        out = ['<g class="legend">']
        x, row = float(PAD), 0
        for entry in self.legend_entries:
            label = fit(entry.label, MIN_TEXT, room - SWATCH - 10)
            item = SWATCH + 10 + text_width(label, MIN_TEXT)
            if x > PAD and x + item > PAD + room:
                x, row = float(PAD), row + 1
            y = top + row * LEGEND_ROW
            attrs = f' data-team={quoteattr(entry.team)}' if entry.team is not None else ""
            tip = entry.full or (entry.label if label != entry.label else None)
            out.append(f'<g class="legend-item"{attrs}>{_swatch(entry, x, y)}'
                       f'<text x="{x + SWATCH + 10:.1f}" y="{y + 7}" font-size="{MIN_TEXT}">'
                       f'{escape(label)}'
                       + (f"<title>{escape(tip)}</title>" if tip else "") + "</text></g>")
            x += item + 28
        out.append("</g>")
        return "".join(out), top + row * LEGEND_ROW + 18

    def svg(self, kind: str) -> str:
        legend, bottom = self._legend_svg()
        width, height = int(self.width), int(math.ceil(bottom + 14))
        title = fit(self.title, TITLE_TEXT, self.width - 2 * PAD, bold=True)
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot plot-{kind}" '
                f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
                f'aria-label={quoteattr(self.title)} font-family={quoteattr(FONT)}>')
        body = (f'<title>{escape(self.title)}</title>'
                f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>'
                f'<text class="title" x="{PAD}" y="36" font-size="{TITLE_TEXT}" '
                f'font-weight="bold" fill="{INK}">{escape(title)}</text>')
        return head + body + "".join(self.parts) + legend + "</svg>"


def _swatch(entry: LegendEntry, x: float, y: float) -> str:
    if entry.mark == "dot":
        return f'<circle cx="{x + SWATCH / 2}" cy="{y}" r="7" fill="{entry.colour}"/>'
    if entry.mark in ("line", "dashed"):
        dash = ' stroke-dasharray="8 5"' if entry.mark == "dashed" else ""
        return (f'<line x1="{x}" y1="{y}" x2="{x + SWATCH}" y2="{y}" stroke="{entry.colour}" '
                f'stroke-width="3"{dash}/>')
    return (f'<rect x="{x + 4}" y="{y - 11}" width="{SWATCH - 8}" height="22" '
            f'fill="{entry.colour}"/>')


def _series(team: str) -> str:
    return f'<g class="series" data-team={quoteattr(team)}>'


def roc_svg(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], top: int = 5,
            colours: Mapping[str, str] | None = None) -> str:
    """ROC curves of the `top` teams by AUC; `curves[team] = (labels 0/1, probabilities)`."""
    from sklearn.metrics import roc_auc_score, roc_curve  # noqa: PLC0415 - slow import

    styles = _styles(colours, curves)
    scored = []
    for team, (truth, predicted) in curves.items():
        labels = np.asarray(truth, dtype=np.float64)
        scores = np.asarray(predicted, dtype=np.float64)
        if len(set(labels.tolist())) < 2:
            continue  # no ROC curve without both classes
        scored.append((float(roc_auc_score(labels, scores)), team, labels, scores))
    # Stable sort: teams with equal AUC keep the caller's (board) order.
    scored.sort(key=lambda item: -item[0])
    plot = _Plot(f"ROC curves — top {min(top, len(scored))} teams", (0.0, 1.0), (0.0, 1.0),
                 "False positive rate (1 − specificity)", "True positive rate (sensitivity)")
    plot.axes()
    plot.parts.append(f'<line class="reference" x1="{plot.x(0)}" y1="{plot.y(0)}" '
                      f'x2="{plot.x(1)}" y2="{plot.y(1)}" stroke="{REFERENCE}" '
                      f'stroke-dasharray="4 4" stroke-width="1.5"/>')
    legend = []
    for auc, team, labels, scores in scored[:top]:
        fpr, tpr, _ = roc_curve(labels, scores)
        points = " ".join(f"{plot.x(a)},{plot.y(b)}" for a, b in zip(fpr, tpr, strict=True))
        plot.parts.append(
            _series(team) + f'<polyline points="{points}" fill="none" '
            f'stroke="{styles.colour(team)}" stroke-width="3.5"{styles.dash(team)}/></g>')
        legend.append(_team_entry(team, styles, f" (AUC {auc:.3f})"))
    plot.legend(legend)
    return plot.svg("roc")


def froc_svg(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
             colours: Mapping[str, str] | None = None) -> str:
    """FROC curves, one per team: sensitivity against false positives per exam on a log
    axis from 1/8 to 8, as LUNA16 draws them, with the seven points its CPM averages.
    `curves[team] = (false positives per exam, sensitivities)`, the curve's points from
    (0, 0) in order of decreasing threshold (`server.evaluators.detection.Froc`). Past its
    last point a curve goes on flat, faded: the CPM reads it there."""
    from server.evaluators.detection import FP_RATES, RATE_WORDS, sensitivity_at  # noqa: PLC0415

    styles = _styles(colours, curves)
    low, high = FP_RATES[0], FP_RATES[-1]
    plot = _Plot("FROC curves", (math.log2(low), math.log2(high)), (0.0, 1.0),
                 "Average false positives per exam", "Sensitivity",
                 y_ticks=[(v / 5, _fmt(v / 5)) for v in range(6)])
    plot.axes(x_ticks=[(math.log2(r), w) for r, w in zip(FP_RATES, RATE_WORDS, strict=True)])
    legend = []
    for team, (rates, sensitivities) in curves.items():
        f = np.asarray(rates, dtype=np.float64)
        s = np.asarray(sensitivities, dtype=np.float64)
        colour, dash = styles.colour(team), styles.dash(team)
        parts = [_series(team)]
        if len(f):
            at = sensitivity_at(f, s, FP_RATES)
            end = min(high, float(f[-1]))
            inside = [(float(a), float(b)) for a, b in zip(f, s, strict=True) if low < a < end]
            start = sensitivity_at(f, s, (max(low, 0.0),))[0]
            drawn = [(low, float(start)), *inside]
            if end > low:
                drawn.append((end, float(sensitivity_at(f, s, (end,))[0])))
            points = " ".join(f"{plot.x(math.log2(a))},{plot.y(b)}" for a, b in drawn)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                         f'stroke-width="3.5"{dash}/>')
            if end < high:
                last = drawn[-1]
                parts.append(f'<line class="beyond" x1="{plot.x(math.log2(last[0]))}" '
                             f'y1="{plot.y(last[1])}" x2="{plot.x(math.log2(high))}" '
                             f'y2="{plot.y(last[1])}" stroke="{colour}" stroke-width="2.5" '
                             f'stroke-opacity="0.45"{dash}/>')
            parts.extend(f'<circle cx="{plot.x(math.log2(r))}" cy="{plot.y(float(v))}" r="5" '
                         f'fill="{colour}"><title>{escape(team)}: sensitivity {v:.3f} at '
                         f'{w} FP per exam</title></circle>'
                         for r, w, v in zip(FP_RATES, RATE_WORDS, at, strict=True))
            suffix = f" (CPM {float(np.mean(at)):.3f})"
        else:
            suffix = ""
        parts.append("</g>")
        plot.parts.append("".join(parts))
        legend.append(_team_entry(team, styles, suffix, mark="line"))
    plot.legend(legend)
    return plot.svg("froc")


def reliability_svg(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                    colours: Mapping[str, str] | None = None) -> str:
    """Reliability diagram, one line per team: in each of the ten equal-width bins of
    probability (those of the ECE), the fraction of exams labelled 1 against their mean
    probability; a dot's area grows with its bin's exams (counted in its tooltip).
    `curves[team] = (labels 0/1, probabilities)`."""
    from server.evaluators.probability import (  # noqa: PLC0415 - scorers' module
        calibration_bins,
        expected_calibration_error,
    )

    styles = _styles(colours, curves)
    binned = {}
    for team, (truth, predicted) in curves.items():
        labels = np.asarray(truth, dtype=np.float64)
        scores = np.asarray(predicted, dtype=np.float64)
        binned[team] = (*calibration_bins(labels, scores),
                        expected_calibration_error(labels, scores) if len(labels) else 0.0)
    largest = max((int(c.max()) for c, *_ in binned.values() if len(c)), default=1) or 1
    plot = _Plot("Reliability — calibration of the probabilities", (0.0, 1.0), (0.0, 1.0),
                 "Mean predicted probability (per bin of 0.1)",
                 "Observed fraction labelled 1")
    plot.axes()
    plot.parts.append(f'<line class="reference" x1="{plot.x(0)}" y1="{plot.y(0)}" '
                      f'x2="{plot.x(1)}" y2="{plot.y(1)}" stroke="{REFERENCE}" '
                      f'stroke-dasharray="4 4" stroke-width="1.5"/>')
    legend = []
    for team, (counts, mean_predicted, observed, ece) in binned.items():
        colour, dash = styles.colour(team), styles.dash(team)
        used = [k for k in range(len(counts)) if counts[k] > 0]
        points = " ".join(f"{plot.x(float(mean_predicted[k]))},{plot.y(float(observed[k]))}"
                          for k in used)
        dots = "".join(
            f'<circle cx="{plot.x(float(mean_predicted[k]))}" '
            f'cy="{plot.y(float(observed[k]))}" '
            f'r="{3 + 9 * math.sqrt(int(counts[k]) / largest):.1f}" fill="{colour}" '
            f'fill-opacity="0.8"><title>{escape(team)}: {int(counts[k])} exams with a '
            f'probability in {_bin_words(k, len(counts))}, mean {mean_predicted[k]:.3f}, '
            f'{observed[k]:.0%} labelled 1</title></circle>' for k in used)
        plot.parts.append(_series(team) + f'<polyline points="{points}" fill="none" '
                          f'stroke="{colour}" stroke-width="3"{dash}/>' + dots + "</g>")
        legend.append(_team_entry(team, styles, f" (ECE {ece:.3f})", mark="line"))
    legend.append(LegendEntry("dot area: exams in the bin", REFERENCE, "dot"))
    plot.legend(legend)
    return plot.svg("reliability")


def _bin_words(k: int, bins: int) -> str:
    return f"{'[' if k == 0 else '('}{k / bins:.1f}, {(k + 1) / bins:.1f}]"


def _team_entry(team: str, styles: _Styles, suffix: str = "", mark: str = "box"
                ) -> LegendEntry:
    """A team's legend line: its name, cut if need be so that the suffix (a metric) shows."""
    room = WIDTH - 2 * PAD - SWATCH - 10 - text_width(suffix, MIN_TEXT)
    name = fit(team, MIN_TEXT, room)
    return LegendEntry(name + suffix, styles.colour(team), mark, team,
                       full=team + suffix if name != team else None)


def bland_altman_svg(team: str, surface_true: Sequence[float],
                     surface_predicted: Sequence[float],
                     colours: Mapping[str, str] | None = None) -> str:
    """Bland–Altman plot of one team's surfaces (mm² in, drawn in cm²): the mean of the
    two against their difference, with the mean bias and the 95% limits of agreement."""
    styles = _styles(colours, [team])
    truth = np.asarray(surface_true, dtype=np.float64) / 100.0
    predicted = np.asarray(surface_predicted, dtype=np.float64) / 100.0
    mean = (truth + predicted) / 2
    diff = predicted - truth
    bias = float(np.mean(diff)) if len(diff) else 0.0
    sd = float(np.std(diff, ddof=1)) if len(diff) > 1 else 0.0
    low, high = bias - 1.96 * sd, bias + 1.96 * sd
    y_values = [*diff.tolist(), low, high, 0.0]
    spread = max(abs(v) for v in y_values) or 1.0
    x_lo, x_hi = (float(mean.min()), float(mean.max())) if len(mean) else (0.0, 1.0)
    pad = (x_hi - x_lo) * 0.05 or 1.0
    plot = _Plot(f"Bland–Altman — {team}", (x_lo - pad, x_hi + pad),
                 (-spread * 1.15, spread * 1.15),
                 "Mean of predicted and true surface (cm²)", "Predicted − true (cm²)")
    plot.axes()
    reference = PALETTE[1] if styles.colour(team) != PALETTE[1] else PALETTE[0]
    lines = [("bias", bias, f"mean bias {bias:+.2f} cm²", "line"),
             ("loa-high", high, f"+1.96 SD {high:+.2f} cm²", "dashed"),
             ("loa-low", low, f"−1.96 SD {low:+.2f} cm²", "dashed")]
    plot.parts.append(f'<line class="zero" x1="{plot.x0}" y1="{plot.y(0)}" x2="{plot.x1}" '
                      f'y2="{plot.y(0)}" stroke="{REFERENCE}" stroke-width="1"/>')
    for name, value, _, mark in lines:
        py = plot.y(value)
        dash = ' stroke-dasharray="8 5"' if mark == "dashed" else ""
        plot.parts.append(f'<g class="{name}"><line x1="{plot.x0}" y1="{py}" x2="{plot.x1}" '
                          f'y2="{py}" stroke="{reference}" stroke-width="2.5"{dash}/></g>')
    dots = "".join(f'<circle cx="{plot.x(a)}" cy="{plot.y(b)}" r="5" '
                   f'fill="{styles.colour(team)}" fill-opacity="0.85"/>'
                   for a, b in zip(mean, diff, strict=True))
    plot.parts.append(_series(team) + dots + "</g>")
    plot.legend([_team_entry(team, styles, mark="dot"),
                 *(LegendEntry(label, reference, mark) for _, _, label, mark in lines)])
    return plot.svg("bland-altman")


def dice_distribution_svg(per_team_dice: Mapping[str, Sequence[float]],
                          colours: Mapping[str, str] | None = None) -> str:
    """Per-exam Dice of each team: a box (quartiles, median, min–max) over the points."""
    styles = _styles(colours, per_team_dice)
    teams = list(per_team_dice)
    values = [v for d in per_team_dice.values() for v in d]
    low = min(values) if values else 0.0
    # Dice of good teams crowd near 1: start the axis just below the worst exam.
    x_lo = max(0.0, math.floor((low - 0.02) * 20) / 20)
    row_h = 44
    name_room = WIDTH * 0.4
    names = [fit(team, MIN_TEXT, name_room) for team in teams]
    left = PAD + max((text_width(n, MIN_TEXT) for n in names), default=0) + 14
    plot = _Plot("Per-exam Dice by team", (x_lo, 1.0), (0.0, float(max(1, len(teams)))),
                 "Dice per exam", "", left=left, y_ticks=[],
                 area_height=max(AREA_HEIGHT, row_h * len(teams)))
    plot.axes()
    for n, team in enumerate(teams):
        colour = styles.colour(team)
        dice = np.asarray(per_team_dice[team], dtype=np.float64)
        centre = plot.y(len(teams) - n - 0.5)
        half = min(14.0, (plot.y0 - plot.y1) / max(1, len(teams)) / 3)
        tip = f"<title>{escape(team)}</title>" if names[n] != team else ""
        parts = [_series(team),
                 f'<text x="{plot.x0 - 10}" y="{centre + 7}" text-anchor="end" '
                 f'font-size="{MIN_TEXT}">{escape(names[n])}{tip}</text>']
        if len(dice):
            q1, median, q3 = (float(v) for v in np.percentile(dice, [25, 50, 75]))
            lo_px, hi_px = plot.x(float(dice.min())), plot.x(float(dice.max()))
            parts.append(f'<line x1="{lo_px}" y1="{centre}" x2="{hi_px}" y2="{centre}" '
                         f'stroke="{colour}" stroke-width="2"/>')
            parts.append(f'<rect x="{plot.x(q1)}" y="{centre - half}" '
                         f'width="{max(1.0, plot.x(q3) - plot.x(q1))}" height="{2 * half}" '
                         f'fill="{colour}" fill-opacity="0.25" stroke="{colour}" '
                         f'stroke-width="2.5"/>')
            parts.append(f'<line x1="{plot.x(median)}" y1="{centre - half}" '
                         f'x2="{plot.x(median)}" y2="{centre + half}" stroke="{colour}" '
                         f'stroke-width="4"/>')
            for k, value in enumerate(dice):
                # A fixed jitter pattern: the same data always draws the same picture.
                offset = ((k * 7) % 11 - 5) / 5 * half * 0.8
                parts.append(f'<circle cx="{plot.x(float(value))}" cy="{centre + offset:.2f}" '
                             f'r="3.5" fill="{colour}"/>')
        parts.append("</g>")
        plot.parts.append("".join(parts))
    return plot.svg("dice")


def scatter_svg(team_points: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                low: float = 0.0, high: float = 10.0, label: str = "EDSS",
                colours: Mapping[str, str] | None = None) -> str:
    """Predicted against true values per team (EDSS by default), with the identity line."""
    styles = _styles(colours, team_points)
    plot = _Plot(f"Predicted vs true {label}", (low, high), (low, high),
                 f"True {label}", f"Predicted {label}")
    plot.axes()
    plot.parts.append(f'<line class="identity" x1="{plot.x(low)}" y1="{plot.y(low)}" '
                      f'x2="{plot.x(high)}" y2="{plot.y(high)}" stroke="{REFERENCE}" '
                      f'stroke-dasharray="4 4" stroke-width="1.5"/>')
    legend = []
    for team, (truth, predicted) in team_points.items():
        t = np.asarray(truth, dtype=np.float64)
        p = np.asarray(predicted, dtype=np.float64)
        dots = "".join(f'<circle cx="{plot.x(a)}" cy="{plot.y(b)}" r="5" '
                       f'fill="{styles.colour(team)}" fill-opacity="0.8"/>'
                       for a, b in zip(t, p, strict=True))
        plot.parts.append(_series(team) + dots + "</g>")
        mse = float(np.mean((p - t) ** 2)) if len(t) else float("nan")
        legend.append(_team_entry(team, styles, f" (MSE {mse:.2f})", mark="dot"))
    plot.legend(legend)
    return plot.svg("scatter")


def score_over_time_svg(series: Mapping[str, Sequence[tuple[datetime, float]]],
                        higher_is_better: bool, *, metric: str = "score",
                        timezone: str = "UTC", start: datetime | None = None,
                        end: datetime | None = None,
                        colours: Mapping[str, str] | None = None) -> str:
    """Each team's score after each of its valid submissions, as a step line.

    The better end of the y axis is always at the top, so rising lines mean progress
    whichever way the metric goes. Times are the event's (`timezone`), named on the axis.
    """
    styles = _styles(colours, series)
    zone = ZoneInfo(timezone)
    moments = [t for points in series.values() for t, _ in points]
    scores = [s for points in series.values() for _, s in points]
    t0 = start or (min(moments) if moments else datetime.now(zone))
    t1 = end or (max(moments) if moments else t0)
    x_lo, x_hi = t0.timestamp(), max(t1.timestamp(), t0.timestamp() + 60)
    s_lo, s_hi = (min(scores), max(scores)) if scores else (0.0, 1.0)
    pad = (s_hi - s_lo) * 0.08 or 0.05
    y_range = (s_lo - pad, s_hi + pad) if higher_is_better else (s_hi + pad, s_lo - pad)
    direction = "higher is better" if higher_is_better else "lower is better"
    plot = _Plot(f"{metric} over time", (x_lo, x_hi), y_range,
                 f"Time ({timezone})", f"{metric} ({direction})")
    x_ticks = [(v, datetime.fromtimestamp(v, zone).strftime("%H:%M"))
               for v in _ticks(x_lo, x_hi, 6, step_of=_time_step)]
    plot.axes(x_ticks=x_ticks)
    legend = []
    for team, points in series.items():
        colour = styles.colour(team)
        ordered = sorted(points, key=lambda item: item[0])
        parts = [_series(team)]
        if ordered:
            coords: list[str] = []
            for k, (moment, score) in enumerate(ordered):
                px, py = plot.x(moment.timestamp()), plot.y(score)
                if k:
                    coords.append(f"{px},{plot.y(ordered[k - 1][1])}")
                coords.append(f"{px},{py}")
            coords.append(f"{plot.x(x_hi)},{plot.y(ordered[-1][1])}")
            parts.append(f'<polyline points="{" ".join(coords)}" fill="none" '
                         f'stroke="{colour}" stroke-width="3"{styles.dash(team)}/>')
            parts.extend(f'<circle cx="{plot.x(m.timestamp())}" cy="{plot.y(s)}" r="5" '
                         f'fill="{colour}"/>' for m, s in ordered)
        parts.append("</g>")
        plot.parts.append("".join(parts))
        legend.append(_team_entry(team, styles))
    plot.legend(legend)
    return plot.svg("over-time")


def _widen(bounds: tuple[float, float]) -> tuple[float, float]:
    lo, hi = bounds
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return (0.0, 1.0)
    if lo == hi:
        return (lo - 0.5, hi + 0.5)
    return bounds


def _nice_step(span: float, count: int) -> float:
    raw = abs(span) / max(1, count)
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power  # pragma: no cover - the loop always returns


def _time_step(span: float, count: int) -> float:
    for minutes in (1, 2, 5, 10, 15, 20, 30, 60, 120, 240):
        if span / (minutes * 60) <= count:
            return minutes * 60.0
    return _nice_step(span, count)


def _ticks(lo: float, hi: float, count: int = 5,
           step_of: Callable[[float, int], float] = _nice_step) -> list[float]:
    a, b = min(lo, hi), max(lo, hi)
    step = step_of(b - a, count)
    first = math.ceil(a / step - 1e-9) * step
    ticks: list[float] = []
    value = first
    while value <= b + step * 1e-9 and len(ticks) < 50:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:,.0f}".replace(",", "\u202f")
    return f"{value:.3g}"


def challenge_plots(challenge: ChallengeResults, rows: Sequence[Row],
                    timezone: str = "UTC", colours: Mapping[str, str] | None = None
                    ) -> dict[str, str]:
    """The jury page's plots for one challenge, by name, from the counted submissions'
    details and every valid submission's metrics. A plot without data is left out.

    Only the teams of `rows` are drawn: the reveal passes the places revealed so far.
    `colours` is the event's map (`team_colours`), the one the boards use."""
    shown = {row.team for row in rows}
    palette = colours if colours is not None else team_colours(challenge.teams)
    details = challenge.counted_details(rows)
    kind = kinds.of(challenge)
    plots: dict[str, str] = kind.plots(details, palette) if details and kind.plots else {}
    metric, higher = kind.primary.key, kind.primary.higher_is_better
    series: dict[str, list[tuple[datetime, float]]] = {}
    for record in sorted(challenge.submissions, key=lambda s: (s.received_at, s.id)):
        if record.team not in shown:
            continue
        if record.status == "scored" and record.metrics and metric in record.metrics:
            points = series.setdefault(record.team, [])
            value = record.metrics[metric]
            if challenge.counts == "best" and points:
                # The board shows the best so far, so the line never gets worse.
                best = points[-1][1]
                value = max(value, best) if higher else min(value, best)
            points.append((record.received_at, value))
    if series:
        plots["over-time"] = score_over_time_svg(
            series, higher, metric=kind.primary.short, timezone=timezone,
            start=challenge.started_at, end=challenge.deadline, colours=palette)
    return plots



# -- The jury's ranking analysis (server/deliberation/analysis.py) ------------------------

BLOB_AREA = 420
BLOB_NAME_ROOM = 240        # a team name on the rotated x axis, in units along its slant
BLOB_SLANT = 35             # degrees


def _svg_head(kind: str, title: str, width: float, height: float) -> str:
    width_i, height_i = int(width), int(math.ceil(height))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot plot-{kind}" '
            f'width="{width_i}" height="{height_i}" viewBox="0 0 {width_i} {height_i}" '
            f'role="img" aria-label={quoteattr(title)} font-family={quoteattr(FONT)}>'
            f'<title>{escape(title)}</title>'
            f'<rect x="0" y="0" width="{width_i}" height="{height_i}" fill="#ffffff"/>'
            f'<text class="title" x="{PAD}" y="36" font-size="{TITLE_TEXT}" font-weight="bold" '
            f'fill="{INK}">{escape(fit(title, TITLE_TEXT, width - 2 * PAD, bold=True))}</text>')


def _y_label(text: str, top: float, bottom: float) -> str:
    mid = (top + bottom) / 2
    x = 14 + LABEL_TEXT / 2
    return (f'<text class="y-label" x="{x}" y="{mid}" text-anchor="middle" '
            f'dominant-baseline="central" font-size="{LABEL_TEXT}" '
            f'transform="rotate(-90 {x} {mid})">{escape(fit(text, LABEL_TEXT, bottom - top))}'
            '</text>')


def _rank_ticks(count: int) -> list[int]:
    step = max(1, math.ceil(count / 10))
    ticks = list(range(1, count + 1, step))
    return ticks if ticks[-1] == count else [*ticks, count]


def rank_distribution_svg(distributions: Sequence[Any], draws: int,
                          colours: Mapping[str, str] | None = None,
                          ranking: str = "") -> str:
    """challengeR's blob plot: one column per team in board order (x), its rank over the
    bootstrap draws (y, 1 at the top): a dot per rank whose area is the share of draws with
    it, the median (a black bar) and the 95 % interval (a black line). `distributions` are
    server.deliberation.analysis.RankDistribution (team, rank, median, low, high, shares)."""
    styles = _styles(colours, [d.team for d in distributions])
    count = max(1, len(distributions))
    top_rank = max([count, *(max(d.shares, default=1) for d in distributions)])
    ticks = _rank_ticks(top_rank)
    left = 14 + LABEL_TEXT + 12 + max(text_width(str(t), MIN_TEXT) for t in ticks) + 10
    x0, x1, y1 = left, WIDTH - 36, 60.0
    y0 = y1 + BLOB_AREA
    column = (x1 - x0) / count
    step = BLOB_AREA / top_rank

    def x(k: int) -> float:
        return round(x0 + (k + 0.5) * column, 2)

    def y(rank: float) -> float:
        return round(y1 + (rank - 0.5) * step, 2)

    biggest = max(3.0, min(column, step) * 0.5)
    parts = ['<g class="axes">']
    for t in ticks:
        parts.append(f'<line x1="{x0}" y1="{y(t)}" x2="{x1}" y2="{y(t)}" stroke="{GRID}" '
                     f'stroke-width="1"/><text x="{x0 - 10}" y="{y(t) + 7}" text-anchor="end" '
                     f'font-size="{MIN_TEXT}">{t}</text>')
    parts.append(f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{BLOB_AREA}" '
                 f'fill="none" stroke="{INK}" stroke-width="1"/>')
    parts.append(_y_label("Rank in the bootstrap draws", y1, y0))
    names_bottom = y0
    slant = math.radians(BLOB_SLANT)
    for k, d in enumerate(distributions):
        # Slanted up to the left: a name may not run past the picture's left edge.
        room = min(BLOB_NAME_ROOM, (x(k) + 6 - 4) / math.cos(slant))
        name = fit(f"{d.rank}. {d.team}", MIN_TEXT, room)
        tip = f"<title>{escape(d.team)}</title>" if not name.endswith(d.team) else ""
        px, py = x(k) + 6, y0 + 18
        parts.append(f'<text class="team-name" x="{px}" y="{py}" text-anchor="end" '
                     f'font-size="{MIN_TEXT}" transform="rotate(-{BLOB_SLANT} {px} {py})">'
                     f'{escape(name)}{tip}</text>')
        names_bottom = max(names_bottom,
                           py + text_width(name, MIN_TEXT) * math.sin(slant) + MIN_TEXT)
    parts.append("</g>")
    for k, d in enumerate(distributions):
        colour = styles.colour(d.team)
        blobs = "".join(
            f'<circle cx="{x(k)}" cy="{y(rank)}" r="{biggest * math.sqrt(share):.2f}" '
            f'fill="{colour}" fill-opacity="0.8" data-rank="{rank}" data-share="{share:.4f}">'
            f'<title>{escape(d.team)}: rank {rank} in {share:.0%} of draws</title></circle>'
            for rank, share in sorted(d.shares.items()) if share > 0)
        half = min(column * 0.35, 26.0)
        parts.append(
            _series(d.team) + blobs
            + f'<line class="interval" x1="{x(k)}" y1="{y(d.low)}" x2="{x(k)}" '
              f'y2="{y(d.high)}" stroke="{INK}" stroke-width="2.5"/>'
            + f'<line class="median" x1="{x(k) - half}" y1="{y(d.median)}" '
              f'x2="{x(k) + half}" y2="{y(d.median)}" stroke="{INK}" stroke-width="4"/></g>')
    label_y = names_bottom + 12
    parts.append(f'<text class="x-label" x="{(x0 + x1) / 2}" y="{label_y:.1f}" '
                 f'text-anchor="middle" font-size="{LABEL_TEXT}">'
                 f'{escape(fit("Team, in the order of the board", LABEL_TEXT, WIDTH - 2 * PAD))}'
                 '</text>')
    legend_y = label_y + 40
    legend = [("dot", f"share of {draws:,} draws (area)".replace(",", "\u202f")),
              ("median", "median rank"), ("interval", "95 % interval")]
    lx = float(PAD)
    parts.append('<g class="legend">')
    for mark, text in legend:
        if mark == "dot":
            swatch = (f'<circle cx="{lx + SWATCH / 2}" cy="{legend_y}" r="9" '
                      f'fill="{REFERENCE}"/>')
        elif mark == "median":
            swatch = (f'<line x1="{lx}" y1="{legend_y}" x2="{lx + SWATCH}" y2="{legend_y}" '
                      f'stroke="{INK}" stroke-width="4"/>')
        else:
            swatch = (f'<line x1="{lx + SWATCH / 2}" y1="{legend_y - 12}" '
                      f'x2="{lx + SWATCH / 2}" y2="{legend_y + 12}" stroke="{INK}" '
                      'stroke-width="2.5"/>')
        parts.append(f'<g class="legend-item">{swatch}<text x="{lx + SWATCH + 10:.1f}" '
                     f'y="{legend_y + 7}" font-size="{MIN_TEXT}">{escape(text)}</text></g>')
        lx += SWATCH + 10 + text_width(text, MIN_TEXT) + 28
    parts.append("</g>")
    bottom = legend_y + 18
    if ranking:
        note = fit(f"Ranking: {ranking}", MIN_TEXT, WIDTH - 2 * PAD)
        parts.append(f'<text class="note" x="{PAD}" y="{bottom + 22}" font-size="{MIN_TEXT}" '
                     f'fill="{INK}">{escape(note)}</text>')
        bottom += 32
    return (_svg_head("rank-distribution", "Rank distributions over bootstrap draws",
                      WIDTH, bottom + 14) + "".join(parts) + "</svg>")


SIGNIFICANT, NOT_SIGNIFICANT = "#0072B2", "#eeeeee"


def significance_svg(teams: Sequence[str], p: Sequence[Sequence[float | None]],
                     alpha: float, metric: str, adjust: str = "none",
                     colours: Mapping[str, str] | None = None) -> str:
    """The significance map: row team against column team, both in board order; a cell is
    dark when the row team is significantly better than the column team (one-sided Wilcoxon
    signed-rank on the per-exam values of `metric`, p < `alpha`), light otherwise; each cell
    prints its p-value when there is room."""
    styles = _styles(colours, teams)
    count = max(1, len(teams))
    names = [fit(f"{k + 1}. {team}", MIN_TEXT, WIDTH * 0.34) for k, team in enumerate(teams)]
    left = 14 + LABEL_TEXT + 14 + max((text_width(n, MIN_TEXT) for n in names), default=0) + 30
    top = 60 + 34
    cell = min(84.0, (WIDTH - 36 - left) / count)
    size = cell * count
    parts = ['<g class="axes">', _y_label("Team (is it better than …)", top, top + size)]
    for k, name in enumerate(names):
        cy = top + (k + 0.5) * cell
        tip = f"<title>{escape(teams[k])}</title>" if not name.endswith(teams[k]) else ""
        parts.append(f'<rect x="{left - 12 - 8}" y="{cy - 9}" width="8" height="18" '
                     f'fill="{styles.colour(teams[k])}"/>'
                     f'<text class="team-name" x="{left - 30}" y="{cy + 7}" text-anchor="end" '
                     f'font-size="{MIN_TEXT}">{escape(name)}{tip}</text>')
        parts.append(f'<text x="{left + (k + 0.5) * cell}" y="{top - 10}" text-anchor="middle" '
                     f'font-size="{MIN_TEXT}">{k + 1}</text>')
    parts.append("</g>")
    show_p = cell >= text_width("<.001", MIN_TEXT) + 4
    for i, team in enumerate(teams):
        row = [_series(team)]
        for j in range(len(teams)):
            value = p[i][j] if i < len(p) and j < len(p[i]) else None
            x, y = left + j * cell, top + i * cell
            if i == j or value is None:
                row.append(f'<rect x="{x:.2f}" y="{y:.2f}" width="{cell:.2f}" '
                           f'height="{cell:.2f}" fill="#ffffff" stroke="{GRID}"/>')
                continue
            significant = value < alpha
            fill = SIGNIFICANT if significant else NOT_SIGNIFICANT
            text = f"{teams[i]} vs {teams[j]}: p = {value:.3g}"
            row.append(f'<rect class="{"significant" if significant else "not-significant"}" '
                       f'x="{x:.2f}" y="{y:.2f}" width="{cell:.2f}" height="{cell:.2f}" '
                       f'fill="{fill}" stroke="#ffffff" stroke-width="2" '
                       f'data-against={quoteattr(teams[j])} data-p="{value:.6g}">'
                       f'<title>{escape(text)}</title></rect>')
            if show_p:
                shown = "<.001" if value < 0.001 else f"{value:.3f}".removeprefix("0")
                ink = "#ffffff" if significant else INK
                row.append(f'<text x="{x + cell / 2:.2f}" y="{y + cell / 2 + 7:.2f}" '
                           f'text-anchor="middle" font-size="{MIN_TEXT}" fill="{ink}">'
                           f'{shown}</text>')
        row.append("</g>")
        parts.append("".join(row))
    bottom = top + size
    parts.append(f'<text class="x-label" x="{left + size / 2}" y="{bottom + 34}" '
                 f'text-anchor="middle" font-size="{LABEL_TEXT}">… than team (rank)</text>')
    adjusted = ", Holm-adjusted" if adjust == "holm" else ""
    legend_y = bottom + 76
    entries = [(SIGNIFICANT, f"significantly better: p < {alpha:g}{adjusted}"),
               (NOT_SIGNIFICANT, "not significant")]
    parts.append('<g class="legend">')
    lx = float(PAD)
    for colour, text in entries:
        parts.append(f'<g class="legend-item"><rect x="{lx + 4}" y="{legend_y - 11}" '
                     f'width="{SWATCH - 8}" height="22" fill="{colour}" stroke="{REFERENCE}"/>'
                     f'<text x="{lx + SWATCH + 10:.1f}" y="{legend_y + 7}" '
                     f'font-size="{MIN_TEXT}">{escape(text)}</text></g>')
        lx += SWATCH + 10 + text_width(text, MIN_TEXT) + 28
    parts.append("</g>")
    note = fit(f"One-sided Wilcoxon signed-rank test on the per-exam {metric}",
               MIN_TEXT, WIDTH - 2 * PAD)
    parts.append(f'<text class="note" x="{PAD}" y="{legend_y + 40}" font-size="{MIN_TEXT}" '
                 f'fill="{INK}">{escape(note)}</text>')
    return (_svg_head("significance", f"Significance map — {metric}", WIDTH, legend_y + 62)
            + "".join(parts) + "</svg>")
