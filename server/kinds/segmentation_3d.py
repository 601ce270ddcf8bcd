"""segmentation-3d (the seed's pulmonary nodules, segmented on CT volumes): a label mask per
exam (0 background, 1..K structures), scored on the exam's own geometry by Dice, the
normalised surface distance at `tolerance_mm`, the 95th-percentile Hausdorff distance and the
volume error; ranked by the sum of the ranks on Dice, NSD and HD95, ties to the higher Dice.
See docs/formats.md ("Label volumes: segmentation-3d")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.kinds.base import WARNINGS_TEXT, Details, Kind, Metric, SetExam
from server.ranking import SumOfRanks

if TYPE_CHECKING:
    from server.evaluators.options import ScoringOptions
    from server.evaluators.result import Result
    from server.event import ChallengeSpec
    from server.kinds.base import Floats, Ints

DICE = 4
# The per-exam means: what the bootstrap resamples and the per-case schemes rank on.
MEANS = ("dice", "nsd", "hd95_mm", "volume_error_mm3", "volume_relative_error")


def _load(path: Path) -> Any:
    from server.evaluators.segmentation3d import volume_truth
    return volume_truth(path)


def _write_truth(challenge: ChallengeSpec, exams: Sequence[SetExam], target: Path) -> None:
    """`images/<id>/` (the exam's series, DICOM slices) and `masks/<id>.nii.gz|.nii|.dcm`."""
    from server.kinds.from_set import write_volumes
    write_volumes(exams, target)


def _evaluate(truth: Any, submission: Path, options: ScoringOptions, name: str) -> Result:
    from server.evaluators.segmentation3d import score_segmentation_3d
    return score_segmentation_3d(truth, submission, options, name)


def _plots(details: Mapping[str, Details], colours: Mapping[str, str]) -> dict[str, str]:
    from server.deliberation.plots import dice_distribution_svg, scatter_svg
    plots = {"dice": dice_distribution_svg({t: d["dice"] for t, d in details.items()},
                                           colours=colours)}
    millilitres = {t: ([v / 1000.0 for v in d["volume_true_mm3"]],
                       [v / 1000.0 for v in d["volume_mm3"]]) for t, d in details.items()}
    values = [v for true, predicted in millilitres.values() for v in (*true, *predicted)]
    if values:
        high = max(values) * 1.05 or 1.0
        plots["volume"] = scatter_svg(millilitres, low=0.0, high=high, label="volume (mL)",
                                      colours=colours)
    return plots


def _resample(details: Mapping[str, Details], teams: Sequence[str], draws: Ints
              ) -> dict[str, Floats]:
    import numpy as np
    out: dict[str, Floats] = {}
    for key in MEANS:
        values = np.array([[np.nan if v is None else float(v) for v in details[t][key]]
                           for t in teams], dtype=np.float64)
        drawn = values[:, draws]
        present = ~np.isnan(drawn)
        if key == "volume_relative_error":
            # A mean over the exams that have a true volume; a draw with none counts 0.
            total = np.where(present, drawn, 0.0).sum(axis=2)
            count = present.sum(axis=2)
            out[key] = np.divide(total, count, out=np.zeros_like(total),
                                 where=count > 0).T
        else:
            out[key] = drawn.mean(axis=2).T
    return out


def _cases(details: Details) -> dict[str, list[float | None]]:
    return {key: [None if v is None else float(v) for v in details[key]] for key in MEANS}


KIND = Kind(
    name="segmentation-3d",
    summary="a label mask per exam (3-D volume), scored on the exam's geometry",
    truth_shape="folder",
    truth_text="a folder with images/ (NIfTI files or DICOM series folders) and masks/",
    metrics=(
        Metric("dice", "Dice", "Dice", True, DICE),
        Metric("nsd", "Normalised surface distance (NSD)", "NSD", True, DICE),
        Metric("hd95_mm", "Hausdorff distance, 95th percentile (mm)", "HD95", False, 2, "mm"),
        Metric("volume_error_mm3", "Volume error, mean absolute (mm³)", "Vol. err", False, 0,
               "mm³", grouped=True),
        Metric("volume_relative_error", "Volume error, relative to the true volume",
               "Rel. vol. error", False, 3),
        Metric("dice_min", "Dice (worst exam)", "Dice min", True, DICE),
        Metric("dice_median", "Dice (median)", "Dice median", True, DICE),
    ),
    board=("dice", "nsd", "hd95_mm", "volume_error_mm3"),
    ranking=SumOfRanks(on=(("dice", True), ("nsd", True), ("hd95_mm", False)),
                       tie_break="dice"),
    format={
        "files": [".zip"],
        "description": (
            "One .zip holding a label mask per exam, named by its id, in any folder of the "
            "archive: <id>.nii.gz or <id>.nii (NIfTI), <id>.dcm (a DICOM SEG, each segment "
            "number a label) or <id>/ (a folder of DICOM slices). A mask holds 0 for the "
            "background and the challenge's labels (whole numbers 1..K) for the structures, "
            "on the exam's voxel grid: the exam's shape and spacing."),
        "orientation": (
            "A mask is placed on its exam by its geometry: a NIfTI's affine (sform or qform), "
            "a DICOM series' ImageOrientationPatient / ImagePositionPatient, a DICOM SEG's "
            "referenced slices or frame positions. Axis order and flips follow, so masks "
            "written with the exam's geometry (SimpleITK CopyInformation, nibabel with the "
            "exam's affine, dcm2niix, highdicom) read right. Shape and spacing must then be "
            "the exam's; an origin or direction that differs is a warning. A NIfTI without "
            "orientation (identity affine) is read in the exam's voxel order, with the "
            "warning orientation_assumed."),
        "warnings": WARNINGS_TEXT,
    },
    max_upload_mb=2048.0,
    load_truth=_load,
    evaluate=_evaluate,
    expected_file="a label mask: one 3-D volume of the exam's shape with whole-number labels, "
                  "e.g. uint8 NIfTI",
    options=frozenset({"tolerance_mm"}),
    plots=_plots,
    resample=_resample,
    cases=_cases,
    case_metrics=MEANS,
    write_truth=_write_truth,
)
