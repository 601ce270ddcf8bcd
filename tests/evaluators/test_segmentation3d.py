"""segmentation-3d: the truth folder, the masks zip, per-label metrics, empty rules, refusals."""

from __future__ import annotations

import gzip
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from medpy.metric.binary import dc, hd95

from server.evaluators import ScoringOptions, TruthError, evaluate
from server.evaluators.archive import open_archive
from server.evaluators.segmentation3d import (
    VolumeTruth,
    score_segmentation_3d,
    score_volume_masks,
    volume_truth,
)

from .volumes import (
    SeriesSpec,
    ct_volume,
    highdicom_seg,
    labels_phantom,
    nifti_bytes,
    perturbed,
    write_series,
)

KIND = "segmentation-3d"
SPECS = {
    "0007": SeriesSpec(),
    "0012": SeriesSpec(pixel_spacing=(0.8, 0.8), step=2.0, position=(-60.0, -70.0, -120.0)),
    "0031": SeriesSpec(orientation=(-1, 0, 0, 0, -1, 0), position=(70.0, 80.0, -200.0),
                       pixel_spacing=(0.75, 0.75), step=1.5),
}


@dataclass(frozen=True)
class Truth:
    path: Path
    labels: dict[str, np.ndarray]
    series: dict[str, list[Path]]
    predictions: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> Truth:
    """0007: NIfTI image and mask (nibabel); 0012: a DICOM series and a DICOM SEG mask
    (highdicom); 0031: a prone DICOM series and a series of mask slices (pydicom)."""
    root = tmp_path_factory.mktemp("truth3d")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    labels = {i: labels_phantom(n) for n, i in enumerate(SPECS)}
    labels["0031"][labels["0031"] == 2] = 0  # no nodule in this exam
    spec = SPECS["0007"]
    (root / "images" / "0007.nii.gz").write_bytes(nifti_bytes(ct_volume(spec, 0),
                                                              spec.ras_affine()))
    (root / "masks" / "0007.nii.gz").write_bytes(nifti_bytes(labels["0007"], spec.ras_affine()))
    series = {exam_id: write_series(root / "images" / exam_id, SPECS[exam_id],
                                    ct_volume(SPECS[exam_id], n), seed=n, study=exam_id)
              for n, exam_id in enumerate(("0012", "0031"), start=1)}
    (root / "masks" / "0012.dcm").write_bytes(highdicom_seg(series["0012"], labels["0012"]))
    write_series(root / "masks" / "0031", SPECS["0031"], labels["0031"], seed=21, study="0031",
                 mask=True)
    (root / "labels.csv").write_text("label,name\n1,lobe\n2,nodule\n")
    predictions = {i: perturbed(v, seed=40 + n) for n, (i, v) in enumerate(labels.items())}
    return Truth(root, labels, series, predictions)


def zipped(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def nifti_members(truth: Truth, predictions: dict[str, np.ndarray] | None = None,
                  folder: str = "preds/") -> dict[str, bytes]:
    predictions = predictions if predictions is not None else truth.predictions
    return {f"{folder}{i}.nii.gz": nifti_bytes(v, SPECS[i].ras_affine())
            for i, v in predictions.items()}


def reference(truth: Truth, tolerance: float) -> dict[str, float]:
    """The metrics, from MedPy and surface-distance on the full volumes, per label, mean over
    labels, then over exams; the empty rules applied by hand."""
    import surface_distance

    per_exam: dict[str, list[list[float]]] = {"dice": [], "nsd": [], "hd95_mm": []}
    for exam_id, labels in truth.labels.items():
        spacing = SPECS[exam_id].spacing
        diagonal = float(np.sqrt(sum((n * s) ** 2 for n, s in zip(labels.shape, spacing,
                                                                  strict=True))))
        rows: dict[str, list[float]] = {"dice": [], "nsd": [], "hd95_mm": []}
        for label in (1, 2):
            t, p = labels == label, truth.predictions[exam_id] == label
            if not t.any() and not p.any():
                rows["dice"].append(1.0)
                rows["nsd"].append(1.0)
                rows["hd95_mm"].append(0.0)
            elif not t.any() or not p.any():
                rows["dice"].append(0.0)
                rows["nsd"].append(0.0)
                rows["hd95_mm"].append(diagonal)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    d = surface_distance.compute_surface_distances(t, p, spacing)
                    rows["nsd"].append(surface_distance.compute_surface_dice_at_tolerance(
                        d, tolerance))
                rows["dice"].append(dc(p, t))
                rows["hd95_mm"].append(hd95(p, t, spacing))
        for key, values in rows.items():
            per_exam[key].append(values)
    return {key: float(np.mean([np.mean(v) for v in values]))
            for key, values in per_exam.items()}


def test_the_truth_reads_nifti_seg_and_series_masks_with_named_labels(truth: Truth) -> None:
    loaded = volume_truth(truth.path)
    assert isinstance(loaded, VolumeTruth) and volume_truth(truth.path) is loaded  # cached
    assert loaded.ids == ("0007", "0012", "0031")
    assert loaded.labels == (1, 2) and loaded.names == {1: "lobe", 2: "nodule"}
    for exam_id, labels in truth.labels.items():
        exam = loaded.exams[exam_id]
        assert exam.grid.spacing == pytest.approx(SPECS[exam_id].spacing, rel=1e-6)
        for label, structure in exam.structures.items():
            full = np.zeros(labels.shape, dtype=bool)
            low, high = structure.box
            full[low[0]:high[0], low[1]:high[1], low[2]:high[2]] = structure.mask()
            assert np.array_equal(full, labels == label)
    assert set(loaded.exams["0031"].structures) == {1}


def test_metrics_are_means_over_exams_of_means_over_labels(truth: Truth, tmp_path: Path
                                                           ) -> None:
    for tolerance in (1.0, 2.5):
        result = evaluate(KIND, truth.path, zipped(tmp_path / "sub.zip", nifti_members(truth)),
                          ScoringOptions(tolerance_mm=tolerance))
        assert result.status == "scored", result.errors
        expected = reference(truth, tolerance)
        for key, value in expected.items():
            assert result.metrics[key] == pytest.approx(value, abs=1e-6), key
    assert result.warnings == ()
    details = result.details
    assert details is not None and details["ids"] == ["0007", "0012", "0031"]
    assert details["labels"] == [1, 2] and details["label_names"] == ["lobe", "nodule"]
    assert result.metrics["dice"] == pytest.approx(np.mean(details["dice"]), abs=1e-12)
    assert details["dice"][2] == pytest.approx(np.mean(details["dice_by_label"][2]))
    voxel = {i: float(np.prod(s.spacing)) for i, s in SPECS.items()}
    for n, exam_id in enumerate(details["ids"]):
        predicted = truth.predictions[exam_id]
        assert details["volume_mm3_by_label"][n] == pytest.approx(
            [np.count_nonzero(predicted == v) * voxel[exam_id] for v in (1, 2)], rel=1e-6)
    errors = [np.mean([abs(p - t) for p, t in zip(ps, ts, strict=True)])
              for ps, ts in zip(details["volume_mm3_by_label"],
                                details["volume_true_mm3_by_label"], strict=True)]
    assert result.metrics["volume_error_mm3"] == pytest.approx(np.mean(errors))


def test_every_mask_format_scores_the_same(truth: Truth, tmp_path: Path) -> None:
    """0007 as a nibabel NIfTI, 0012 as a highdicom SEG on the exam's series, 0031 as a
    folder of DICOM slices written by pydicom, in any order."""
    baseline = evaluate(KIND, truth.path, zipped(tmp_path / "a.zip", nifti_members(truth)))
    members = {"out/0007.nii": nifti_bytes(truth.predictions["0007"],
                                           SPECS["0007"].ras_affine(), gz=False),
               "out/0012.dcm": highdicom_seg(truth.series["0012"], truth.predictions["0012"])}
    for path in write_series(tmp_path / "0031", SPECS["0031"], truth.predictions["0031"],
                             seed=5, study="0031", mask=True):
        members[f"out/0031/{path.name}"] = path.read_bytes()
    mixed = evaluate(KIND, truth.path, zipped(tmp_path / "b.zip", members))
    assert mixed.status == "scored", mixed.errors
    assert mixed.metrics == pytest.approx(baseline.metrics, abs=1e-12)


def test_an_empty_prediction_gets_the_declared_worst_values_and_a_warning(
        truth: Truth, tmp_path: Path) -> None:
    predictions = dict(truth.predictions)
    predictions["0012"] = np.zeros_like(predictions["0012"])
    result = evaluate(KIND, truth.path, zipped(tmp_path / "e.zip",
                                               nifti_members(truth, predictions)))
    assert result.status == "scored" and result.details is not None
    assert [w.code for w in result.warnings] == ["empty_mask"]
    assert result.warnings[0].id == "0012"
    n = result.details["ids"].index("0012")
    diagonal = float(np.sqrt(sum((a * s) ** 2 for a, s in zip(
        truth.labels["0012"].shape, SPECS["0012"].spacing, strict=True))))
    assert result.details["dice_by_label"][n] == [0.0, 0.0]
    assert result.details["nsd_by_label"][n] == [0.0, 0.0]
    assert result.details["hd95_mm_by_label"][n] == pytest.approx([diagonal, diagonal])
    assert not any(np.isnan(v) for v in result.metrics.values())
    # 0031 has no nodule in the truth; the prediction has none either: perfect on label 2.
    m = result.details["ids"].index("0031")
    assert result.details["dice_by_label"][m][1] == 1.0
    assert result.details["hd95_mm_by_label"][m][1] == 0.0


def test_missing_extra_and_duplicate_ids_are_all_listed(truth: Truth, tmp_path: Path) -> None:
    members = nifti_members(truth)
    members.pop("preds/0031.nii.gz")
    members["preds/0099.nii.gz"] = members["preds/0007.nii.gz"]
    members["other/0007.nii.gz"] = members["preds/0007.nii.gz"]
    members["notes.txt"] = b"hello"
    result = evaluate(KIND, truth.path, zipped(tmp_path / "ids.zip", members))
    assert result.status == "invalid"
    codes = {p.code: p.message for p in result.errors}
    assert set(codes) == {"unexpected_file", "duplicate_id", "missing_id", "unknown_id"}
    assert "0031" in codes["missing_id"] and "0099" in codes["unknown_id"]


def test_values_that_are_not_labels_are_refused(truth: Truth, tmp_path: Path) -> None:
    predictions = dict(truth.predictions)
    soft = predictions["0007"].astype(np.float32)
    soft[soft == 1] = 0.5
    predictions["0007"] = soft
    three = predictions["0012"].copy()
    three[three == 2] = 3
    predictions["0012"] = three
    result = evaluate(KIND, truth.path, zipped(tmp_path / "v.zip",
                                               nifti_members(truth, predictions)))
    assert result.status == "invalid"
    by_id = {p.id: p for p in result.errors}
    assert by_id["0007"].code == "not_integer" and "0.5" in by_id["0007"].message
    assert by_id["0012"].code == "unknown_label"
    assert "(3); the labels are 1, 2" in by_id["0012"].message


def test_wrong_geometry_names_the_file_and_both_grids(truth: Truth, tmp_path: Path) -> None:
    members = nifti_members(truth)
    members["preds/0007.nii.gz"] = nifti_bytes(truth.predictions["0007"][:, :, :12],
                                               SPECS["0007"].ras_affine())
    result = evaluate(KIND, truth.path, zipped(tmp_path / "g.zip", members), name="team.zip")
    assert result.status == "invalid"
    assert [p.code for p in result.errors] == ["wrong_shape"]
    assert result.errors[0].message.startswith(
        "mask preds/0007.nii.gz is 20×24×12 at 0.70×0.90×1.25 mm")
    assert result.errors[0].message.endswith("the exam is 20×24×16 at 0.70×0.90×1.25 mm")


def test_not_a_zip_and_an_empty_zip(truth: Truth, tmp_path: Path) -> None:
    single = tmp_path / "0007.nii.gz"
    single.write_bytes(gzip.compress(b"x"))
    result = evaluate(KIND, truth.path, single)
    assert result.status == "invalid" and result.errors[0].code == "unsupported_format"
    assert "put the masks of every exam in one .zip" in result.errors[0].message
    result = evaluate(KIND, truth.path, zipped(tmp_path / "empty.zip", {}))
    assert [p.code for p in result.errors][:1] == ["empty"]


def test_the_masks_part_of_a_larger_archive_is_scored_from_its_members(
        truth: Truth, tmp_path: Path) -> None:
    """What a combined kind does: one zip, a masks/ folder and a candidates table."""
    members = nifti_members(truth, folder="masks/")
    members["candidates.csv"] = b"id,x,y,z,probability\n0007,1,2,3,0.9\n"
    path = zipped(tmp_path / "combined.zip", members)
    loaded = volume_truth(truth.path)
    options = ScoringOptions()
    with open_archive(path, max_members=100, max_expanded_bytes=10**9) as archive:
        masks = [m for m in archive.members if m[0].startswith("masks/")]
        scoring = score_volume_masks(archive, masks, loaded, options)
    assert scoring.problems == [] and scoring.details is not None
    whole = score_segmentation_3d(loaded, zipped(tmp_path / "m.zip", nifti_members(truth)),
                                  options, "m.zip")
    assert scoring.metrics == whole.metrics


def test_a_bad_truth_is_refused_with_the_file(truth: Truth, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "masks").mkdir()
    (bad / "images" / "0007.nii.gz").write_bytes(
        (truth.path / "images" / "0007.nii.gz").read_bytes())
    (bad / "images" / "0008.nii.gz").write_bytes(
        (truth.path / "images" / "0007.nii.gz").read_bytes())
    soft = truth.labels["0007"].astype(np.float32) * 0.5
    (bad / "masks" / "0007.nii.gz").write_bytes(nifti_bytes(soft, SPECS["0007"].ras_affine()))
    with pytest.raises(TruthError) as refused:
        volume_truth(bad)
    message = str(refused.value)
    assert "no mask for 1 exam(s): 0008" in message
    assert "0007.nii.gz: values [0.5] are not labels" in message
    (bad / "images" / "0008.nii.gz").unlink()
    (bad / "masks" / "0007.nii.gz").write_bytes(
        nifti_bytes(truth.labels["0007"], SPECS["0007"].ras_affine()))
    (bad / "labels.csv").write_text("1,lobe\n")
    with pytest.raises(TruthError, match=r"hold labels 2, not declared here"):
        volume_truth(bad)


def test_a_member_past_its_exams_cap_is_too_large(truth: Truth, tmp_path: Path) -> None:
    members = nifti_members(truth)
    members["preds/0007.nii.gz"] = np.random.default_rng(0).bytes(20 * 24 * 16 * 8 + 2 * 1024**2)
    result = evaluate(KIND, truth.path, zipped(tmp_path / "big.zip", members))
    assert [p.code for p in result.errors] == ["too_large"]
    assert "a label mask of 20×24×16 at 0.70×0.90×1.25 mm takes at most" in \
        result.errors[0].message
