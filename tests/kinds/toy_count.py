"""A kind that exists only for the tests: the number of nodules an exam shows. It is the whole
of what adding a kind takes (this module), so the tests can show nothing else needs a change.

Truth: a CSV of id,count. A submission: a CSV or xlsx of id,count. Metrics: `exact` (share of
exams counted exactly, higher is better) and `mae`; ranked by the sum of the two ranks, ties
to the higher `exact`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from server.kinds import Kind, Metric, table_format
from server.kinds.base import Details
from server.ranking import SumOfRanks


def whole_count(value: float, text: str, exam_id: str) -> str | None:
    ok = value >= 0 and float(value).is_integer()
    return None if ok else f"count {text!r} of id {exam_id} is not a whole number ≥ 0"


def _load(path: Path) -> Any:
    from server.evaluators.truth import value_truth
    return value_truth(path, whole_count)


def _evaluate(truth: Any, submission: Path, options: Any, name: str) -> Any:
    from server.evaluators.matching import table_values
    from server.evaluators.result import Invalid, Result
    from server.evaluators.table import read_table

    try:
        table = read_table(submission, name, len(truth.ids))
    except Invalid as exc:
        return Result.invalid(exc.problems, options.max_errors)

    def check(value: float) -> str | None:
        return None if whole_count(value, "", "") is None else "is not a whole count"

    values, problems = table_values(table, truth.index, label="count", check=check)
    if problems:
        return Result.invalid(problems, options.max_errors)
    predicted = np.array([values[i] for i in truth.ids], dtype=np.float64)
    exact = predicted == truth.values
    return Result.scored(
        {"exact": float(exact.mean()), "mae": float(np.abs(predicted - truth.values).mean())},
        {"ids": list(truth.ids), "truth": [float(v) for v in truth.values],
         "predicted": [float(v) for v in predicted]})


def _resample(details: Mapping[str, Details], teams: Sequence[str], draws: Any
              ) -> dict[str, Any]:
    error = np.array([np.abs(np.asarray(details[t]["predicted"])
                             - np.asarray(details[t]["truth"])) for t in teams])
    return {"exact": (error == 0)[:, draws].mean(axis=2).T,
            "mae": error[:, draws].mean(axis=2).T}


KIND = Kind(
    name="nodule-count",
    summary="the number of nodules per exam",
    truth_shape="file",
    truth_text="a CSV file of id,count",
    metrics=(
        Metric("exact", "Exams counted exactly", "Exact", True, 2),
        Metric("mae", "Mean absolute error (nodules)", "MAE", False, 2, "nodules"),
    ),
    board=("exact", "mae"),
    ranking=SumOfRanks(on=(("exact", True), ("mae", False)), tie_break="exact"),
    format=table_format("the number of nodules"),
    max_upload_mb=1.0,
    load_truth=_load,
    evaluate=_evaluate,
    expected_file="a table: two columns",
    # A kind option passed to the scorer by name (a field of ScoringOptions): the event file's
    # `max_errors = N` on a nodule-count challenge.
    options=frozenset({"max_errors"}),
    resample=_resample,
)
