"""detection (the seed's pulmonary nodule question: find the nodules on 3-D chest CT): a
table of candidates `id,x,y,z,probability` in mm, scored as LUNA16 scores them: FROC curve,
`froc_cpm` (mean sensitivity at 1/8 … 8 false positives per exam); higher wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.kinds.base import WARNINGS_TEXT, Details, Kind, Metric, SetExam
from server.ranking import ByMetric

if TYPE_CHECKING:
    from server.evaluators.options import ScoringOptions
    from server.evaluators.result import Result
    from server.event import ChallengeSpec
    from server.kinds.base import Floats, Ints

SENSITIVITY = 3
# Mirrors server.evaluators.detection (RATE_KEYS, RATE_WORDS), which this module does not
# import: the kinds load in every process, the evaluator only in the scorers.
_RATES = (("sens_fp_1_8", "1/8"), ("sens_fp_1_4", "1/4"), ("sens_fp_1_2", "1/2"),
          ("sens_fp_1", "1"), ("sens_fp_2", "2"), ("sens_fp_4", "4"), ("sens_fp_8", "8"))


def _load(path: Path) -> Any:
    from server.evaluators.detection import detection_truth
    return detection_truth(path)


def _write_truth(challenge: ChallengeSpec, exams: Sequence[SetExam], target: Path) -> None:
    """id,x,y,z,diameter_mm: the intake's marks of each exam (mm, LPS); an exam without a
    nodule as its id alone."""
    from server.kinds.from_set import nodules_csv
    target.write_text(nodules_csv(exams), encoding="utf-8")


def _evaluate(truth: Any, submission: Path, options: ScoringOptions, name: str) -> Result:
    from server.evaluators.detection import score_detection
    return score_detection(truth, submission, options, name)


def _plots(details: Mapping[str, Details], colours: Mapping[str, str]) -> dict[str, str]:
    from server.deliberation.plots import froc_svg
    from server.evaluators.detection import details_froc
    curves = {}
    for team, d in details.items():
        curve = details_froc(d)
        curves[team] = (curve.fp_rates.tolist(), curve.sensitivities.tolist())
    return {"froc": froc_svg(curves, colours=colours)}


def _resample(details: Mapping[str, Details], teams: Sequence[str], draws: Ints
              ) -> dict[str, Floats]:
    import numpy as np

    from server.evaluators.detection import resampled_cpm
    return {"froc_cpm": np.stack([resampled_cpm(details[t], draws) for t in teams], axis=1)}


KIND = Kind(
    name="detection",
    summary="candidate nodules per exam: centre in mm and probability",
    truth_shape="file",
    truth_text="a CSV file of id,x,y,z,diameter_mm (one row per nodule; an exam without a "
               "nodule as its id alone)",
    metrics=(
        Metric("froc_cpm", "FROC CPM", "CPM", True,
               SENSITIVITY),
        *(Metric(key, f"Sensitivity at {words} FP per exam", f"Sens@{words}", True,
                 SENSITIVITY) for key, words in _RATES),
        Metric("sensitivity_max", "Sensitivity with every candidate", "Found", True,
               SENSITIVITY),
        Metric("fp_per_exam_max", "FP per exam with every candidate", "FP/ex", False, 2),
    ),
    board=("froc_cpm", "sens_fp_1", "sensitivity_max", "fp_per_exam_max"),
    ranking=ByMetric("froc_cpm", higher_is_better=True),
    format={
        "files": [".csv", ".xlsx"],
        "description": (
            "One .csv or .xlsx table of candidates, one row each: exam id, x, y, z (the "
            "candidate's centre in mm, in the exam's patient coordinates: DICOM's LPS, as "
            "ImagePositionPatient and ITK/SimpleITK's physical points give them, and as "
            "LUNA16's coordX, coordY, coordZ), probability in [0, 1]. A header row names the "
            "columns (id,x,y,z,probability; LUNA16's seriesuid,coordX,coordY,coordZ,"
            "probability too); without one they are in that order. Comma, semicolon or tab "
            "between columns; decimal point or comma. Any number of candidates per exam, up "
            "to 1000; an exam may have none. A candidate within a nodule's radius of its "
            "centre finds it; the others are false positives."),
        "warnings": WARNINGS_TEXT,
    },
    max_upload_mb=50.0,
    load_truth=_load,
    evaluate=_evaluate,
    expected_file="a table: five columns id,x,y,z,probability",
    plots=_plots,
    resample=_resample,
    write_truth=_write_truth,
)
