"""segmentation-surface (the seed's sarcopenia question): a binary mask per exam on its L3 CT
slice and the muscle surface in mm²; mean per-exam Dice and the surfaces' mean squared error,
ranked by the sum of the two ranks, ties to the higher Dice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.kinds.base import WARNINGS_TEXT, Details, Kind, Metric, SetExam, TruthMissing
from server.ranking import SumOfRanks

if TYPE_CHECKING:
    from server.evaluators.options import ScoringOptions
    from server.evaluators.result import Result
    from server.event import ChallengeSpec
    from server.kinds.base import Floats, Ints

DICE = 4


def _load(path: Path) -> Any:
    from server.evaluators.truth import segmentation_truth
    return segmentation_truth(path)


def _write_truth(challenge: ChallengeSpec, exams: Sequence[SetExam], target: Path) -> None:
    """`images/<id>.dcm` (the exam's one slice) and `masks/<id>.nii.gz|.nii|.dcm` (the
    center's mask); the surfaces follow from the masks and PixelSpacing."""
    import shutil

    from server.kinds.from_set import copy_mask, series_folder
    (target / "images").mkdir(parents=True)
    (target / "masks").mkdir()
    for exam in sorted(exams, key=lambda e: e.id):
        slices = sorted(p for p in series_folder(exam).iterdir() if p.is_file())
        if len(slices) != 1:
            raise TruthMissing(exam.id, f"single slice ({len(slices)} files in its series)")
        copy_mask(exam, target / "masks")
        shutil.copyfile(slices[0], target / "images" / f"{exam.id}.dcm")


def _evaluate(truth: Any, submission: Path, options: ScoringOptions, name: str) -> Result:
    from server.evaluators.segmentation import score_segmentation
    return score_segmentation(truth, submission, options, name)


def _plots(details: Mapping[str, Details], colours: Mapping[str, str]) -> dict[str, str]:
    from server.deliberation.plots import bland_altman_svg, dice_distribution_svg
    plots = {"dice": dice_distribution_svg({t: d["dice"] for t, d in details.items()},
                                           colours=colours)}
    for team, d in details.items():
        plots[f"bland-altman:{team}"] = bland_altman_svg(
            team, d["surface_true"], d["surface_predicted"], colours=colours)
    return plots


def _resample(details: Mapping[str, Details], teams: Sequence[str], draws: Ints
              ) -> dict[str, Floats]:
    import numpy as np
    dice = np.array([details[t]["dice"] for t in teams], dtype=np.float64)
    squared = np.array([(np.asarray(details[t]["surface_predicted"], dtype=np.float64)
                         - np.asarray(details[t]["surface_true"], dtype=np.float64)) ** 2
                        for t in teams])
    return {"dice": dice[:, draws].mean(axis=2).T,
            "surface_mse": squared[:, draws].mean(axis=2).T}


def _cases(details: Details) -> dict[str, list[float | None]]:
    squared: list[float | None] = [(float(p) - float(t)) ** 2
               for p, t in zip(details["surface_predicted"], details["surface_true"], strict=True)]
    return {"dice": [float(v) for v in details["dice"]], "surface_mse": squared}


KIND = Kind(
    name="segmentation-surface",
    summary="a binary mask per exam (2-D) and its surface in mm²",
    truth_shape="folder",
    truth_text="a folder with images/ and masks/",
    metrics=(
        Metric("dice", "Dice", "Dice", True, DICE),
        Metric("surface_mse", "Surface MSE (mm²)²", "MSE", False, 0, "(mm²)²", grouped=True),
        Metric("dice_min", "Dice (worst exam)", "Dice min", True, DICE),
        Metric("dice_median", "Dice (median)", "Dice median", True, DICE),
        Metric("surface_rmse_cm2", "Surface RMSE (cm²)", "RMSE", False, 1, "cm²"),
        Metric("surface_mae_cm2", "Surface MAE (cm²)", "MAE", False, 1, "cm²"),
    ),
    board=("dice", "surface_mse"),
    ranking=SumOfRanks(on=(("dice", True), ("surface_mse", False)), tie_break="dice"),
    format={
        "files": [".zip"],
        "description": (
            "One .zip holding a binary mask per exam named by its id (<id>.dcm, <id>.png, "
            "<id>.nii, <id>.nii.gz or <id>.npy, in any folder of the archive), with the exam's "
            "rows x columns and two values (0 and one other; nonzero is muscle), plus "
            "surfaces.csv or surfaces.xlsx with columns id,surface_mm2 (in mm²; write 12827, "
            "not 12,827 or 12.827, which read two ways and are refused unless your masks' "
            "areas settle them)."),
        "orientation": (
            "DICOM, PNG and .npy masks are rows x columns, as the exam's pixel_array. A NIfTI "
            "mask is placed on the exam by its affine (sform or qform), using the exam's "
            "ImageOrientationPatient, ImagePositionPatient and PixelSpacing: files written with "
            "the exam's geometry (SimpleITK CopyInformation, dcm2niix, nnU-Net, 3D Slicer) read "
            "right. A NIfTI without orientation (identity affine, or ITK's default) is read by "
            "its shape on a non-square exam, and as x = columns, y = rows on a square one, with "
            "the warning orientation_assumed: to be sure, write the exam's geometry into it."),
        "warnings": WARNINGS_TEXT,
    },
    max_upload_mb=512.0,
    load_truth=_load,
    evaluate=_evaluate,
    expected_file="a mask: one 2-D slice of the exam's shape with 0/1 values, e.g. uint8",
    options=frozenset({"hu_window"}),
    plots=_plots,
    resample=_resample,
    cases=_cases,
    case_metrics=("dice", "surface_mse"),
    write_truth=_write_truth,
)
