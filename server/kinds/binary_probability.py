"""binary-probability (the seed's nodule malignancy question): a probability per exam, scored
by ROC AUC against 0/1 labels; higher wins. The probabilities' calibration (Brier score,
expected calibration error) is reported beside the AUC, not ranked on."""

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

AUC = 3


def label(value: float, text: str, exam_id: str) -> str | None:
    return None if value in (0.0, 1.0) else f"label {text!r} of id {exam_id} is not 0 or 1"


def _load(path: Path) -> Any:
    from server.evaluators.truth import value_truth
    return value_truth(path, label, two_classes=True)


def _write_truth(challenge: ChallengeSpec, exams: Sequence[SetExam], target: Path) -> None:
    """id,label: 1 for a malignant exam, 0 for a benign one."""
    from server.kinds.from_set import values_csv
    missing = "benign / malignant (no label, no nodule sizes)"
    target.write_text(values_csv(exams, "label", missing), encoding="utf-8")


def _evaluate(truth: Any, submission: Path, options: ScoringOptions, name: str) -> Result:
    from server.evaluators.probability import score_probability
    return score_probability(truth, submission, options, name)


def _plots(details: Mapping[str, Details], colours: Mapping[str, str]) -> dict[str, str]:
    from server.deliberation.plots import reliability_svg, roc_svg
    curves = {t: (d["truth"], d["predicted"]) for t, d in details.items()}
    return {"roc": roc_svg(curves, colours=colours),
            "reliability": reliability_svg(curves, colours=colours)}


def _resample(details: Mapping[str, Details], teams: Sequence[str], draws: Ints
              ) -> dict[str, Floats]:
    import numpy as np

    from server.evaluators.probability import auc_by_ranks
    labels = np.asarray(details[teams[0]]["truth"], dtype=np.float64)
    scores = np.array([details[t]["predicted"] for t in teams], dtype=np.float64)
    return {"auc": np.stack([auc_by_ranks(labels[draws], scores[k][draws])
                             for k in range(len(teams))], axis=1)}


def _cases(details: Details) -> dict[str, list[float | None]]:
    squared: list[float | None] = [
        (float(p) - float(t)) ** 2
        for p, t in zip(details["predicted"], details["truth"], strict=True)]
    return {"brier": squared}


KIND = Kind(
    name="binary-probability",
    summary="a probability of the abnormal class per exam",
    truth_shape="file",
    truth_text="a CSV file of id,label (0 or 1)",
    metrics=(
        Metric("auc", "AUC", "AUC", True, AUC),
        Metric("auc_ci_low", "AUC 95% CI low", "CI low", True, AUC),
        Metric("auc_ci_high", "AUC 95% CI high", "CI high", True, AUC),
        Metric("brier", "Brier score", "Brier", False, AUC),
        Metric("ece", "Expected calibration error (10 bins)", "ECE", False, AUC),
    ),
    board=("auc", "brier", "ece"),
    ranking=ByMetric("auc", higher_is_better=True),
    format=table_format("the probability of the abnormal class in [0, 1]"),
    max_upload_mb=10.0,
    load_truth=_load,
    evaluate=_evaluate,
    expected_file="a table: two columns",
    plots=_plots,
    resample=_resample,
    cases=_cases,
    case_metrics=("brier",),
    write_truth=_write_truth,
)
