"""binary-probability (pulmonary nodules): ROC AUC of probability against label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from server.evaluators.matching import constant_warning, table_values, within
from server.evaluators.options import ScoringOptions
from server.evaluators.result import Invalid, Result
from server.evaluators.table import read_table
from server.evaluators.truth import ValueTruth

Z_95 = 1.959963984540054


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
    return {"auc": auc, "auc_ci_low": low, "auc_ci_high": high}


def delong_interval(
    labels: npt.NDArray[np.float64], scores: npt.NDArray[np.float64], auc: float
) -> tuple[float, float]:
    """95% confidence interval of the AUC by DeLong's method (Sun & Xu's midrank form).

    Deterministic, unlike a bootstrap. A class with a single case contributes no variance.
    """
    positive = scores[labels == 1]
    negative = scores[labels == 0]
    m, n = len(positive), len(negative)
    ranks_all = rankdata(np.concatenate([positive, negative]))
    ranks_pos = rankdata(positive)
    ranks_neg = rankdata(negative)
    v10 = (ranks_all[:m] - ranks_pos) / n
    v01 = 1.0 - (ranks_all[m:] - ranks_neg) / m
    variance = (np.var(v10, ddof=1) / m if m > 1 else 0.0) + (
        np.var(v01, ddof=1) / n if n > 1 else 0.0
    )
    half = Z_95 * float(np.sqrt(variance))
    return max(0.0, auc - half), min(1.0, auc + half)
