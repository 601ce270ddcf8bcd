"""nodule-task (the seed's pulmonary-nodule question in full): "to recognize pulmonary nodule
on 3D CT chest scanners, to segment them, to estimate their volume and to classify them into
probable benign (volume < 100 mm³) or probably malignant nodules (volume ≥ 100 mm³)".

One zip of four parts, each scored by its own kind's scorer (server/kinds/combined.py):
`masks/` (segmentation-3d: Dice, NSD, HD95), `candidates.csv` (detection: FROC CPM),
`volumes.csv` (the nodules' total volume per exam, against the truth masks' volume) and
`probabilities.csv` (binary-probability: AUC with Brier and ECE, against labels derived from
the truth masks: an exam is probably malignant when its largest nodule, a connected component
of its mask, holds 100 mm³ or more). Ranked by the sum of the ranks on CPM, Dice, NSD, the
volume estimate's error and AUC; equal sums to the higher AUC, the seed's only score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from server.kinds import binary_probability, detection, segmentation_3d
from server.kinds.base import WARNINGS_TEXT, Details, Kind, Metric, SetExam
from server.kinds.combined import Part, PartDetails, Scored, part_details, stem_is
from server.ranking import SumOfRanks

if TYPE_CHECKING:
    from server.evaluators.archive import Archive
    from server.evaluators.options import ScoringOptions
    from server.evaluators.result import Result
    from server.event import ChallengeSpec
    from server.kinds.base import Floats, Ints
    from server.kinds.combined import Member

MALIGNANT_MM3 = 100.0
VOLUME_ERROR = "estimated_volume_error_mm3"
VOLUME_RELATIVE = "estimated_volume_relative_error"
KINDS = {k.name: k for k in (segmentation_3d.KIND, detection.KIND, binary_probability.KIND)}


@dataclass(frozen=True)
class NoduleTaskTruth:
    """The folder's truths, one per part: the masks (segmentation-3d), the nodules' centres
    and diameters (detection), and what the masks give per exam: the nodules' volume and the
    probably-malignant label."""

    masks: Any        # server.evaluators.segmentation3d.VolumeTruth
    nodules: Any      # server.evaluators.detection.DetectionTruth
    volumes: Any      # server.evaluators.truth.ValueTruth: mm³ per exam
    labels: Any       # server.evaluators.truth.ValueTruth: 1 = probably malignant
    extents: dict[str, tuple[Floats, Floats]]  # per exam, its voxel centres' lowest and
    #                                            highest x, y, z (mm, LPS)

    def parts(self) -> dict[str, Any]:
        return {"masks": self.masks, "candidates": self, "volumes": self.volumes,
                "probabilities": self.labels}


def _load(path: Path) -> NoduleTaskTruth:
    from server.evaluators.truth import cached
    truth = cached(path, "folder", cast(Any, _load_folder))
    assert isinstance(truth, NoduleTaskTruth)
    return truth


def _load_folder(path: Path) -> NoduleTaskTruth:
    import numpy as np
    from scipy import ndimage

    from server.evaluators.detection import detection_truth, on_exams
    from server.evaluators.matching import IdIndex
    from server.evaluators.segmentation3d import volume_truth
    from server.evaluators.truth import TruthError, ValueTruth

    masks = volume_truth(path)
    nodules_file = path / "nodules.csv"
    if not nodules_file.is_file():
        raise TruthError(f"{nodules_file}: the nodules' table (id,x,y,z,diameter_mm) is missing")
    # One exam order for every part, the masks'; an exam nodules.csv leaves out has none.
    nodules = on_exams(detection_truth(nodules_file), masks.ids)
    unlisted = [i for i in masks.ids if masks.exams[i].structures
                and any(s.voxels for s in masks.exams[i].structures.values())
                and not len(nodules.nodules[i])]
    if unlisted:
        raise TruthError(f"{path}: masks/ shows nodules on exams nodules.csv does not list: "
                         f"{', '.join(unlisted[:10])}")
    volumes, labels = [], []
    extents: dict[str, tuple[Floats, Floats]] = {}
    for exam_id in masks.ids:
        exam = masks.exams[exam_id]
        voxel = exam.grid.voxel_mm3
        largest = 0
        total = 0
        for structure in exam.structures.values():
            components, count = ndimage.label(structure.mask(), structure=np.ones((3, 3, 3)))
            if count:
                largest = max(largest, int(np.bincount(components.ravel())[1:].max()))
            total += structure.voxels
        volumes.append(total * voxel)
        labels.append(1.0 if largest * voxel >= MALIGNANT_MM3 else 0.0)
        corners = np.array([[i, j, k] for i in (0, exam.grid.shape[0] - 1)
                            for j in (0, exam.grid.shape[1] - 1)
                            for k in (0, exam.grid.shape[2] - 1)], dtype=np.float64)
        world = corners @ (exam.grid.axes * np.asarray(exam.grid.spacing)).T \
            + np.asarray(exam.grid.origin)
        extents[exam_id] = (world.min(axis=0), world.max(axis=0))
    if len(set(labels)) < 2:
        which = "probably malignant" if labels[0] else "probably benign"
        raise TruthError(f"{path}: every exam is {which} (largest nodule "
                         f"{'≥' if labels[0] else '<'} {MALIGNANT_MM3:g} mm³ in masks/): an "
                         "AUC needs both classes")
    index = IdIndex.of(masks.ids)
    return NoduleTaskTruth(
        masks, nodules,
        ValueTruth(path / "masks", masks.ids, np.array(volumes), index),
        ValueTruth(path / "masks", masks.ids, np.array(labels), index),
        extents)


def _write_truth(challenge: ChallengeSpec, exams: Sequence[SetExam], target: Path) -> None:
    """The masks as segmentation-3d writes them, and nodules.csv as detection does."""
    from server.kinds.from_set import nodules_csv, write_volumes
    text = nodules_csv(exams)  # refuses an exam without its nodules before copying a series
    write_volumes(exams, target)
    (target / "nodules.csv").write_text(text, encoding="utf-8")


# The parts' scorers.

def _score_masks(truth: Any, archive: Archive, members: Sequence[Member],
                 options: ScoringOptions) -> Scored:
    from server.evaluators.segmentation3d import score_volume_masks
    out = score_volume_masks(archive, members, truth, options)
    return Scored(out.problems, out.metrics if not out.problems else None, out.details,
                  out.warnings)


def _score_candidates(truth: NoduleTaskTruth, archive: Archive, members: Sequence[Member],
                      options: ScoringOptions) -> Scored:
    from server.evaluators.detection import MAX_CANDIDATES, read_candidates, score_candidates
    from server.evaluators.result import Invalid
    from server.kinds.combined import one_table
    limit = 4 * 1024**2 + len(truth.nodules.ids) * MAX_CANDIDATES * 128
    try:
        path, info = one_table(archive, members, "candidates")
        data = archive.read(path, info, limit=limit, what="a table of candidates")
        candidates = read_candidates(data, path, truth.nodules)
    except Invalid as exc:
        return Scored(problems=exc.problems)
    scored = score_candidates(truth.nodules, candidates, truth.extents)
    return Scored(metrics=scored.metrics, details=scored.details, warnings=scored.warnings)


def _volume_metrics(truth: Any, values: dict[str, float]) -> tuple[dict[str, float],
                                                                     PartDetails]:
    import numpy as np
    true = [float(v) for v in truth.values]
    given = [float(values[i]) for i in truth.ids]
    errors = [abs(g - t) for g, t in zip(given, true, strict=True)]
    relative = [abs(g - t) / t if t > 0 else None for g, t in zip(given, true, strict=True)]
    shares = [r for r in relative if r is not None]
    return ({VOLUME_ERROR: float(np.mean(errors)),
             VOLUME_RELATIVE: float(np.mean(shares)) if shares else 0.0},
            {"ids": list(truth.ids), "truth": true, "predicted": given, "error": errors,
             "relative": relative})


def _probability_metrics(truth: Any, values: dict[str, float]) -> tuple[dict[str, float],
                                                                          PartDetails]:
    import numpy as np

    from server.evaluators.probability import probability_metrics
    scores = np.array([values[i] for i in truth.ids], dtype=np.float64)
    return (probability_metrics(truth.values, scores),
            {"ids": list(truth.ids), "truth": [int(v) for v in truth.values],
             "predicted": [float(v) for v in scores]})


def _table_part(index_label: str, check: Any, metrics: Any) -> Any:
    from server.kinds.combined import table_part_scorer
    return table_part_scorer(lambda truth: truth.index, label=index_label, check=check,
                             metrics=metrics)


def _score_volumes(truth: Any, archive: Archive, members: Sequence[Member],
                   options: ScoringOptions) -> Scored:
    from server.evaluators.matching import at_least
    return _table_part("volume_mm3", at_least(0.0), _volume_metrics)(
        truth, archive, members, options)


def _score_probabilities(truth: Any, archive: Archive, members: Sequence[Member],
                         options: ScoringOptions) -> Scored:
    from server.evaluators.matching import within
    return _table_part("probability", within(0.0, 1.0), _probability_metrics)(
        truth, archive, members, options)


def _in_masks_folder(path: str) -> bool:
    return "masks" in path.lower().split("/")[:-1]


PARTS = (
    Part("masks", "a masks/ folder with a label mask per exam (<id>.nii.gz, <id>.nii, "
         "<id>.dcm DICOM SEG, or <id>/ DICOM slices)", _in_masks_folder, _score_masks,
         "segmentation-3d"),
    Part("candidates", "candidates.csv (id,x,y,z,probability: centres in mm, LPS)",
         stem_is("candidates"), _score_candidates, "detection"),
    Part("volumes", "volumes.csv (id,volume_mm3: the exam's nodules' total volume)",
         stem_is("volumes"), _score_volumes),
    Part("probabilities", "probabilities.csv (id,probability of a probably malignant nodule, "
         "100 mm³ or more)", stem_is("probabilities"), _score_probabilities,
         "binary-probability"),
)


def _evaluate(truth: NoduleTaskTruth, submission: Path, options: ScoringOptions,
              name: str) -> Result:
    from server.kinds.combined import evaluate
    return evaluate(PARTS, truth.parts(), submission, options, name)


# The jury's plots, per-exam values and bootstrap: each part's kind's, and the volumes'.

def _plots(details: Any, colours: Any) -> dict[str, str]:
    from server.deliberation.plots import scatter_svg
    from server.kinds.combined import plots
    out = plots(PARTS, KINDS.__getitem__)(details, colours)
    volumes = {t: (part_details(d, "volumes")["truth"], part_details(d, "volumes")["predicted"])
               for t, d in details.items()}
    values = [v for true, given in volumes.values() for v in (*true, *given)]
    if values:
        out["volumes"] = scatter_svg(volumes, low=0.0, high=max(values) * 1.05 or 1.0,
                                     label="volume (mm³)", colours=colours,
                                     title="Volumes estimated (volumes.csv) vs true")
    return out


def _cases(details: Details) -> dict[str, list[float | None]]:
    from server.kinds.combined import cases
    out = cases(PARTS, KINDS.__getitem__)(details)
    volumes = part_details(details, "volumes")
    out[VOLUME_ERROR] = [float(v) for v in volumes["error"]]
    out[VOLUME_RELATIVE] = [None if v is None else float(v) for v in volumes["relative"]]
    return out


def _resample(details: Any, teams: Sequence[str], draws: Ints) -> dict[str, Floats]:
    import numpy as np

    from server.kinds.combined import resample
    out = resample(PARTS, KINDS.__getitem__)(details, teams, draws)
    errors = np.array([part_details(details[t], "volumes")["error"] for t in teams],
                      dtype=np.float64)
    out[VOLUME_ERROR] = errors[:, draws].mean(axis=2).T
    return out


def _metrics() -> tuple[Metric, ...]:
    seg, det, prob = (KINDS[k] for k in ("segmentation-3d", "detection", "binary-probability"))
    return (*det.metrics, *seg.metrics,
            Metric(VOLUME_ERROR, "Volume estimate error, mean absolute (mm³)", "Vol. err",
                   False, 0, "mm³", grouped=True),
            Metric(VOLUME_RELATIVE, "Volume estimate error, relative to the true volume",
                   "Vol. rel.", False, 3),
            *prob.metrics)


KIND = Kind(
    name="nodule-task",
    summary="the nodule task in full: masks, candidates, volumes and malignancy per exam",
    truth_shape="folder",
    truth_text="a folder with images/ and masks/ (as segmentation-3d) and nodules.csv "
               "(id,x,y,z,diameter_mm, as detection)",
    metrics=_metrics(),
    board=("froc_cpm", "dice", "nsd", VOLUME_ERROR, "auc"),
    ranking=SumOfRanks(on=(("froc_cpm", True), ("dice", True), ("nsd", True),
                           (VOLUME_ERROR, False), ("auc", True)), tie_break="auc"),
    format={
        "files": [".zip"],
        "description": (
            "One .zip with four parts: " + "; ".join(p.what for p in PARTS) + ". Every exam "
            "in each part. Masks as for segmentation-3d (the exam's shape and spacing, 0 the "
            "background), candidates as for detection (any number per exam), volumes in mm³ "
            "(0 when you find no nodule), probabilities in [0, 1]."),
        "orientation": segmentation_3d.KIND.format["orientation"],
        "warnings": WARNINGS_TEXT,
    },
    max_upload_mb=segmentation_3d.KIND.max_upload_mb,
    load_truth=_load,
    evaluate=_evaluate,
    expected_file=segmentation_3d.KIND.expected_file,
    options=segmentation_3d.KIND.options,
    plots=_plots,
    resample=_resample,
    cases=_cases,
    case_metrics=(*segmentation_3d.KIND.case_metrics, VOLUME_ERROR, VOLUME_RELATIVE,
                  *binary_probability.KIND.case_metrics),
    write_truth=_write_truth,
)
