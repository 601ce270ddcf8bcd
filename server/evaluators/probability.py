"""binary-probability (pulmonary nodules): ROC AUC of probability against label, with its
DeLong interval, and the calibration of the probabilities: Brier score and expected
calibration error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from server.evaluators.matching import constant_warning, table_values, within
from server.evaluators.options import ScoringOptions
from server.evaluators.result import Invalid, Result
from server.evaluators.table import read_table
from server.evaluators.truth import ValueTruth

Z_95 = 1.959963984540054
ECE_BINS = 10


def score_probability(truth: ValueTruth, submission: Path, options: ScoringOptions,
                      name: str | None = None) -> Result:
    try:
        table = read_table(submission, name, len(truth.ids))
    except Invalid as exc:
        return Result.invalid(exc.problems, options.max_errors)
    values, problems = table_values(
        table, truth.index, label="probability", check=within(0.0, 1.0)
    )
    if problems:
        return Result.invalid(problems, options.max_errors)
    labels = truth.values
    scores = np.array([values[i] for i in truth.ids], dtype=np.float64)
    details: dict[str, list[Any]] = {
        "ids": list(truth.ids),
        "truth": [int(v) for v in labels],
        "predicted": [float(v) for v in scores],
    }
    return Result.scored(probability_metrics(labels, scores), details,
                         constant_warning(table.name, scores, "probability",
                                          "a constant ranks no exam above another (AUC 0.5)"))


def probability_metrics(
    labels: npt.NDArray[np.float64], scores: npt.NDArray[np.float64]
) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415 - slow import, workers only

    auc = float(roc_auc_score(labels, scores))
    low, high = delong_interval(labels, scores, auc)
    return {"auc": auc, "auc_ci_low": low, "auc_ci_high": high,
            "brier": brier_score(labels, scores), "ece": expected_calibration_error(labels, scores)}


def brier_score(labels: npt.NDArray[np.float64], scores: npt.NDArray[np.float64]) -> float:
    """Mean squared difference between probability and label (0 is perfect, lower is
    better)."""
    return float(np.mean((scores - labels) ** 2))


def calibration_bins(labels: npt.NDArray[np.float64], scores: npt.NDArray[np.float64],
                     bins: int = ECE_BINS
                     ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64],
                                npt.NDArray[np.float64]]:
    """Per bin of equal width on [0, 1]: the count of exams, their mean probability and the
    fraction of them labelled 1 (NaN for an empty bin). Bin k holds the probabilities in
    (k/bins, (k+1)/bins], the first one 0 too: scikit-learn's calibration_curve bins
    (strategy "uniform")."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], scores)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(which, weights=scores, minlength=bins) / counts
        observed = np.bincount(which, weights=labels, minlength=bins) / counts
    return counts.astype(np.int64), predicted, observed


def expected_calibration_error(labels: npt.NDArray[np.float64],
                               scores: npt.NDArray[np.float64], bins: int = ECE_BINS) -> float:
    """Expected calibration error: over `bins` bins of equal width (`calibration_bins`), the
    mean of |mean probability − fraction labelled 1| weighted by the bin's share of the exams
    (0 is perfect, lower is better)."""
    counts, predicted, observed = calibration_bins(labels, scores, bins)
    used = counts > 0
    return float(np.sum(counts[used] * np.abs(predicted[used] - observed[used]))
                 / max(1, int(counts.sum())))


def midranks(values: npt.ArrayLike, axis: int = -1) -> npt.NDArray[np.float64]:
    """Ranks from 1 along `axis`, ties sharing their average rank (scipy's rankdata
    'average'), in numpy alone: importing scipy.stats costs each scoring process most of a
    second at its start."""
    a = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    order = np.argsort(a, axis=-1, kind="mergesort")
    ordered = np.take_along_axis(a, order, axis=-1)
    n = ordered.shape[-1]
    if n == 0:
        return np.moveaxis(np.zeros(a.shape), -1, axis)
    first = np.ones(ordered.shape, dtype=bool)  # first of its tie group
    first[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    last = np.ones(ordered.shape, dtype=bool)
    last[..., :-1] = first[..., 1:]
    index = np.broadcast_to(np.arange(n), ordered.shape)
    start = np.maximum.accumulate(np.where(first, index, 0), axis=-1)
    end = np.flip(np.minimum.accumulate(np.flip(np.where(last, index, n), -1), axis=-1), -1)
    ranks = np.empty(ordered.shape)
    np.put_along_axis(ranks, order, (start + end) / 2 + 1, axis=-1)
    return np.moveaxis(ranks, -1, axis)


def delong_interval(
    labels: npt.NDArray[np.float64], scores: npt.NDArray[np.float64], auc: float
) -> tuple[float, float]:
    """95% confidence interval of the AUC by DeLong's method (Sun & Xu's midrank form).

    Deterministic, unlike a bootstrap. A class with a single case contributes no variance.
    """
    positive = scores[labels == 1]
    negative = scores[labels == 0]
    m, n = len(positive), len(negative)
    ranks_all = midranks(np.concatenate([positive, negative]))
    ranks_pos = midranks(positive)
    ranks_neg = midranks(negative)
    v10 = (ranks_all[:m] - ranks_pos) / n
    v01 = 1.0 - (ranks_all[m:] - ranks_neg) / m
    variance = (np.var(v10, ddof=1) / m if m > 1 else 0.0) + (
        np.var(v01, ddof=1) / n if n > 1 else 0.0
    )
    half = Z_95 * float(np.sqrt(variance))
    return max(0.0, auc - half), min(1.0, auc + half)


def auc_by_ranks(labels: npt.NDArray[np.float64], scores: npt.NDArray[np.float64]
                 ) -> npt.NDArray[np.float64]:
    """ROC AUC of each row (Mann–Whitney with midranks, as roc_auc_score); NaN for a row
    with a single class."""
    labels = np.atleast_2d(labels)
    scores = np.atleast_2d(scores)
    ranks = midranks(scores, axis=1)
    positive = labels == 1
    n_pos = positive.sum(axis=1).astype(np.float64)
    n_neg = labels.shape[1] - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return np.asarray(auc, dtype=np.float64)
