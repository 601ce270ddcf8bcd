"""regression (EDSS): mean squared error, with the mean absolute error beside it."""

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

EDSS_RANGE = (0.0, 10.0)


def score_regression(truth: ValueTruth, submission: Path, options: ScoringOptions,
                      name: str | None = None) -> Result:
    try:
        table = read_table(submission, name, len(truth.ids))
    except Invalid as exc:
        return Result.invalid(exc.problems, options.max_errors)
    values, problems = table_values(table, truth.index, label="EDSS", check=within(*EDSS_RANGE))
    if problems:
        return Result.invalid(problems, options.max_errors)
    predicted = np.array([values[i] for i in truth.ids], dtype=np.float64)
    details: dict[str, list[Any]] = {
        "ids": list(truth.ids),
        "truth": [float(v) for v in truth.values],
        "predicted": [float(v) for v in predicted],
    }
    return Result.scored(regression_metrics(truth.values, predicted), details,
                         constant_warning(table.name, predicted, "EDSS",
                                          "a constant tells no patient from another"))


def regression_metrics(
    expected: npt.NDArray[np.float64], predicted: npt.NDArray[np.float64]
) -> dict[str, float]:
    error = predicted - expected
    return {"mse": float(np.mean(error * error)), "mae": float(np.mean(np.abs(error)))}
