"""The jury's plots, drawn as SVG text by this module: no JavaScript, no CDN, nothing to fetch,
because the venue's network may be down when the jury deliberates.

Every plot has one `<g class="series" data-team="...">` per team, labelled axes, a legend,
`width`, `height` and a `viewBox`, and keeps every coordinate inside the viewBox (points
outside an axis range are drawn on its edge). Team names are escaped wherever they appear.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

import numpy as np

from server.ranking import PRIMARY, Row
from server.results import ChallengeResults

# Okabe–Ito's colour-blind-safe palette without its yellow (invisible on a projected white
# background), then darker extras; past ten teams colours repeat with a dashed line.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#8C510A", "#7570B3", "#666666")
WIDTH, HEIGHT = 720, 440
# A presentation attribute, not a style attribute: the pages' Content-Security-Policy allows no
# inline style.
FONT = "system-ui, 'Segoe UI', Helvetica, Arial, sans-serif"
INK, GRID, REFERENCE = "#222222", "#dddddd", "#888888"
NAME_CHARS = 30


@dataclass
class _Plot:
    """A plot area inside the SVG and the linear maps from data to pixels."""

    title: str
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    x_label: str
    y_label: str
    left: float = 70
    right: float = 230
    top: float = 40
    bottom: float = 56
    width: float = WIDTH
    height: float = HEIGHT
    parts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.x_range = _widen(self.x_range)
        self.y_range = _widen(self.y_range)

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        return self.height - self.bottom

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

    def axes(self, x_ticks: Sequence[tuple[float, str]] | None = None,
             y_ticks: Sequence[tuple[float, str]] | None = None) -> None:
        xt = x_ticks if x_ticks is not None else [(v, _fmt(v)) for v in _ticks(*self.x_range)]
        yt = y_ticks if y_ticks is not None else [(v, _fmt(v)) for v in _ticks(*self.y_range)]
        out = ['<g class="axes">']
        for value, label in xt:
            px = self.x(value)
            out.append(f'<line x1="{px}" y1="{self.y1}" x2="{px}" y2="{self.y0}" '
                       f'stroke="{GRID}" stroke-width="1"/>')
            out.append(f'<text x="{px}" y="{self.y0 + 18}" text-anchor="middle" '
                       f'font-size="13">{escape(label)}</text>')
        for value, label in yt:
            py = self.y(value)
            out.append(f'<line x1="{self.x0}" y1="{py}" x2="{self.x1}" y2="{py}" '
                       f'stroke="{GRID}" stroke-width="1"/>')
            out.append(f'<text x="{self.x0 - 6}" y="{py + 4}" text-anchor="end" '
                       f'font-size="13">{escape(label)}</text>')
        out.append(f'<rect x="{self.x0}" y="{self.y1}" width="{self.x1 - self.x0}" '
                   f'height="{self.y0 - self.y1}" fill="none" stroke="{INK}" stroke-width="1"/>')
        mid_x = (self.x0 + self.x1) / 2
        out.append(f'<text class="x-label" x="{mid_x}" y="{self.height - 12}" '
                   f'text-anchor="middle" font-size="14">{escape(self.x_label)}</text>')
        mid_y = (self.y0 + self.y1) / 2
        out.append(f'<text class="y-label" x="16" y="{mid_y}" text-anchor="middle" '
                   f'font-size="14" transform="rotate(-90 16 {mid_y})">'
                   f'{escape(self.y_label)}</text>')
        out.append("</g>")
        self.parts.extend(out)

    def legend(self, entries: Sequence[tuple[str, str, str]]) -> None:
        """(team, colour, suffix) per entry, at the right of the plot area; long names are
        cut so the suffix (a metric) always shows, the full text is in a tooltip."""
        out = ['<g class="legend">']
        x = self.x1 + 14
        for n, (team, colour, label) in enumerate(entries):
            y = self.y1 + 10 + 22 * n
            if y > self.height - 10:
                break
            out.append(f'<g class="legend-item" data-team={quoteattr(team)}>'
                       f'<rect x="{x}" y="{y - 9}" width="14" height="10" fill="{colour}"/>'
                       f'<text x="{x + 20}" y="{y}" font-size="13">'
                       f'{escape(_short(team, NAME_CHARS - len(label)))}{escape(label)}'
                       f'<title>{escape(team + label)}</title></text></g>')
        out.append("</g>")
        self.parts.extend(out)

    def svg(self, kind: str) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot plot-{kind}" '
                f'width="{int(self.width)}" height="{int(self.height)}" '
                f'viewBox="0 0 {int(self.width)} {int(self.height)}" role="img" '
                f'aria-label={quoteattr(self.title)} font-family={quoteattr(FONT)}>')
        title = (f'<title>{escape(self.title)}</title>'
                 f'<rect x="0" y="0" width="{int(self.width)}" height="{int(self.height)}" '
                 f'fill="#ffffff"/>'
                 f'<text class="title" x="{self.x0}" y="24" font-size="16" font-weight="bold" '
                 f'fill="{INK}">{escape(self.title)}</text>')
        return head + title + "".join(self.parts) + "</svg>"


def colour(n: int) -> str:
    return PALETTE[n % len(PALETTE)]


def _dash(n: int) -> str:
    return ' stroke-dasharray="6 4"' if n >= len(PALETTE) else ""


def _series(team: str) -> str:
    return f'<g class="series" data-team={quoteattr(team)}>'


def roc_svg(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], top: int = 5) -> str:
    """ROC curves of the `top` teams by AUC; `curves[team] = (labels 0/1, probabilities)`."""
    from sklearn.metrics import roc_auc_score, roc_curve  # noqa: PLC0415 - slow import

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
    for n, (auc, team, labels, scores) in enumerate(scored[:top]):
        fpr, tpr, _ = roc_curve(labels, scores)
        points = " ".join(f"{plot.x(a)},{plot.y(b)}" for a, b in zip(fpr, tpr, strict=True))
        plot.parts.append(
            _series(team) + f'<polyline points="{points}" fill="none" stroke="{colour(n)}" '
            f'stroke-width="3"{_dash(n)}/></g>'
        )
        legend.append((team, colour(n), f" (AUC {auc:.3f})"))
    plot.legend(legend)
    return plot.svg("roc")


def bland_altman_svg(team: str, surface_true: Sequence[float],
                     surface_predicted: Sequence[float]) -> str:
    """Bland–Altman plot of one team's surfaces (mm² in, drawn in cm²): the mean of the
    two against their difference, with the mean bias and the 95% limits of agreement."""
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
    lines = [("bias", bias, f"mean bias {bias:+.2f} cm²", "0"),
             ("loa-high", high, f"+1.96 SD {high:+.2f} cm²", "6 4"),
             ("loa-low", low, f"−1.96 SD {low:+.2f} cm²", "6 4")]
    plot.parts.append(f'<line class="zero" x1="{plot.x0}" y1="{plot.y(0)}" x2="{plot.x1}" '
                      f'y2="{plot.y(0)}" stroke="{REFERENCE}" stroke-width="1"/>')
    for name, value, label, dash in lines:
        py = plot.y(value)
        plot.parts.append(
            f'<g class="{name}"><line x1="{plot.x0}" y1="{py}" x2="{plot.x1}" y2="{py}" '
            f'stroke="{PALETTE[1]}" stroke-width="2" stroke-dasharray="{dash}"/>'
            f'<text x="{plot.x1 + 6}" y="{py + 4}" font-size="12">{escape(label)}</text></g>'
        )
    dots = "".join(f'<circle cx="{plot.x(a)}" cy="{plot.y(b)}" r="4" fill="{PALETTE[0]}" '
                   f'fill-opacity="0.8"/>' for a, b in zip(mean, diff, strict=True))
    plot.parts.append(_series(team) + dots + "</g>")
    return plot.svg("bland-altman")


def dice_distribution_svg(per_team_dice: Mapping[str, Sequence[float]]) -> str:
    """Per-exam Dice of each team: a box (quartiles, median, min–max) over the points."""
    teams = list(per_team_dice)
    values = [v for d in per_team_dice.values() for v in d]
    low = min(values) if values else 0.0
    # Dice of good teams crowd near 1: start the axis just below the worst exam.
    x_lo = max(0.0, math.floor((low - 0.02) * 20) / 20)
    row_h = 30
    height = max(HEIGHT, 100 + row_h * len(teams))
    plot = _Plot("Per-exam Dice by team", (x_lo, 1.0), (0.0, float(max(1, len(teams)))),
                 "Dice per exam", "", left=190, right=30, height=height)
    plot.axes(y_ticks=[])
    for n, team in enumerate(teams):
        dice = np.asarray(per_team_dice[team], dtype=np.float64)
        centre = plot.y(len(teams) - n - 0.5)
        half = min(10.0, (plot.y0 - plot.y1) / max(1, len(teams)) / 3)
        parts = [_series(team),
                 f'<text x="{plot.x0 - 8}" y="{centre + 4}" text-anchor="end" font-size="13">'
                 f'{escape(_short(team, 24))}<title>{escape(team)}</title></text>']
        if len(dice):
            q1, median, q3 = (float(v) for v in np.percentile(dice, [25, 50, 75]))
            lo_px, hi_px = plot.x(float(dice.min())), plot.x(float(dice.max()))
            parts.append(f'<line x1="{lo_px}" y1="{centre}" x2="{hi_px}" y2="{centre}" '
                         f'stroke="{colour(n)}" stroke-width="1.5"/>')
            parts.append(f'<rect x="{plot.x(q1)}" y="{centre - half}" '
                         f'width="{max(1.0, plot.x(q3) - plot.x(q1))}" height="{2 * half}" '
                         f'fill="{colour(n)}" fill-opacity="0.25" stroke="{colour(n)}" '
                         f'stroke-width="2"/>')
            parts.append(f'<line x1="{plot.x(median)}" y1="{centre - half}" '
                         f'x2="{plot.x(median)}" y2="{centre + half}" stroke="{colour(n)}" '
                         f'stroke-width="3"/>')
            for k, value in enumerate(dice):
                # A fixed jitter pattern: the same data always draws the same picture.
                offset = ((k * 7) % 11 - 5) / 5 * half * 0.8
                parts.append(f'<circle cx="{plot.x(float(value))}" cy="{centre + offset:.2f}" '
                             f'r="2.5" fill="{colour(n)}"/>')
        parts.append("</g>")
        plot.parts.append("".join(parts))
    return plot.svg("dice")


def scatter_svg(team_points: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                low: float = 0.0, high: float = 10.0, label: str = "EDSS") -> str:
    """Predicted against true values per team (EDSS by default), with the identity line."""
    plot = _Plot(f"Predicted vs true {label}", (low, high), (low, high),
                 f"True {label}", f"Predicted {label}")
    plot.axes()
    plot.parts.append(f'<line class="identity" x1="{plot.x(low)}" y1="{plot.y(low)}" '
                      f'x2="{plot.x(high)}" y2="{plot.y(high)}" stroke="{REFERENCE}" '
                      f'stroke-dasharray="4 4" stroke-width="1.5"/>')
    legend = []
    for n, (team, (truth, predicted)) in enumerate(team_points.items()):
        t = np.asarray(truth, dtype=np.float64)
        p = np.asarray(predicted, dtype=np.float64)
        dots = "".join(f'<circle cx="{plot.x(a)}" cy="{plot.y(b)}" r="4" fill="{colour(n)}" '
                       f'fill-opacity="0.75"/>' for a, b in zip(t, p, strict=True))
        plot.parts.append(_series(team) + dots + "</g>")
        mse = float(np.mean((p - t) ** 2)) if len(t) else float("nan")
        legend.append((team, colour(n), f" (MSE {mse:.2f})"))
    plot.legend(legend)
    return plot.svg("scatter")


def score_over_time_svg(series: Mapping[str, Sequence[tuple[datetime, float]]],
                        higher_is_better: bool, *, metric: str = "score",
                        timezone: str = "UTC", start: datetime | None = None,
                        end: datetime | None = None) -> str:
    """Each team's score after each of its valid submissions, as a step line.

    The better end of the y axis is always at the top, so rising lines mean progress
    whichever way the metric goes.
    """
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
    for n, (team, points) in enumerate(series.items()):
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
                         f'stroke="{colour(n)}" stroke-width="2.5"{_dash(n)}/>')
            parts.extend(f'<circle cx="{plot.x(m.timestamp())}" cy="{plot.y(s)}" r="4" '
                         f'fill="{colour(n)}"/>' for m, s in ordered)
        parts.append("</g>")
        plot.parts.append("".join(parts))
        legend.append((team, colour(n), ""))
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


def _short(text: str, limit: int = NAME_CHARS) -> str:
    limit = max(6, limit)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def challenge_plots(challenge: ChallengeResults, rows: Sequence[Row],
                    timezone: str = "UTC") -> dict[str, str]:
    """The jury page's plots for one challenge, by name, from the counted submissions'
    details and every valid submission's metrics. A plot without data is left out."""
    by_id = {s.id: s for s in challenge.submissions}
    details = {}
    for row in rows:
        record = by_id.get(row.submission_id) if row.submission_id is not None else None
        if row.valid and record is not None and record.details is not None:
            details[row.team] = record.details
    plots: dict[str, str] = {}
    if details and challenge.kind == "binary-probability":
        plots["roc"] = roc_svg({t: (d["truth"], d["predicted"]) for t, d in details.items()})
    elif details and challenge.kind == "segmentation-surface":
        plots["dice"] = dice_distribution_svg({t: d["dice"] for t, d in details.items()})
        for team, d in details.items():
            plots[f"bland-altman:{team}"] = bland_altman_svg(team, d["surface_true"],
                                                            d["surface_predicted"])
    elif details and challenge.kind == "regression":
        plots["scatter"] = scatter_svg({t: (d["truth"], d["predicted"])
                                        for t, d in details.items()})
    metric, higher = PRIMARY[challenge.kind]
    series: dict[str, list[tuple[datetime, float]]] = {}
    for record in sorted(challenge.submissions, key=lambda s: (s.received_at, s.id)):
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
            series, higher, metric=METRIC_NAMES.get(metric, metric), timezone=timezone,
            start=challenge.started_at, end=challenge.deadline)
    return plots


METRIC_NAMES = {"dice": "Dice", "auc": "AUC", "mse": "MSE"}
