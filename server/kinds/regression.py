"""regression (the seed's EDSS question): a value per exam, scored by mean squared error;
lower wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.kinds.base import Details, Kind, Metric, SetExam, table_format
from server.ranking import ByMetric

if TYPE_CHECKING:
    from server.evaluators.options import ScoringOptions
    from server.evaluators.result import Result
    from server.event import ChallengeSpec
    from server.kinds.base import Floats, Ints

MSE = 2


def edss(value: float, text: str, exam_id: str) -> str | None:
    return None if 0 <= value <= 10 else f"EDSS {text} of id {exam_id} is outside 0–10"


def _load(path: Path) -> Any:
    from server.evaluators.truth import value_truth
    return value_truth(path, edss)


def _write_truth(challenge: ChallengeSpec, exams: Sequence[SetExam], target: Path) -> None:
    """id,value: the clinical value `[challenges.splits] value`."""
    from server.kinds.from_set import values_csv
    name = challenge.splits.value if challenge.splits and challenge.splits.value else "value"
    target.write_text(values_csv(exams, "value", f"its {name}"), encoding="utf-8")


def _evaluate(truth: Any, submission: Path, options: ScoringOptions, name: str) -> Result:
    from server.evaluators.regression import score_regression
    return score_regression(truth, submission, options, name)


def _plots(details: Mapping[str, Details], colours: Mapping[str, str]) -> dict[str, str]:
    from server.deliberation.plots import scatter_svg
    return {"scatter": scatter_svg({t: (d["truth"], d["predicted"])
                                    for t, d in details.items()}, colours=colours)}


def _resample(details: Mapping[str, Details], teams: Sequence[str], draws: Ints
              ) -> dict[str, Floats]:
    import numpy as np
    squared = np.array([(np.asarray(details[t]["predicted"], dtype=np.float64)
                         - np.asarray(details[t]["truth"], dtype=np.float64)) ** 2
                        for t in teams])
    return {"mse": squared[:, draws].mean(axis=2).T}


def _cases(details: Details) -> dict[str, list[float | None]]:
    errors = [float(p) - float(t)
              for p, t in zip(details["predicted"], details["truth"], strict=True)]
    squared: list[float | None] = [e * e for e in errors]
    absolute: list[float | None] = [abs(e) for e in errors]
    return {"mse": squared, "mae": absolute}


KIND = Kind(
    name="regression",
    summary="a value per exam (EDSS in [0, 10])",
    truth_shape="file",
    truth_text="a CSV file of id,value",
    metrics=(
        Metric("mse", "MSE", "MSE", False, MSE),
        Metric("mae", "MAE", "MAE", False, MSE),
    ),
    board=("mse",),
    ranking=ByMetric("mse", higher_is_better=False),
    format=table_format("the predicted value (EDSS in [0, 10])"),
    max_upload_mb=10.0,
    load_truth=_load,
    evaluate=_evaluate,
    expected_file="a table: two columns",
    plots=_plots,
    resample=_resample,
    cases=_cases,
    case_metrics=("mse", "mae"),
    write_truth=_write_truth,
)
