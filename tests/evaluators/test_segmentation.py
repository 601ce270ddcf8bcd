"""segmentation-surface: Dice and surfaces against direct numpy, on masks from every writer."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from server.evaluators import ScoringOptions, evaluate, load_truth
from server.evaluators.exam import ExamGrid
from server.evaluators.segmentation import exam_dice
from server.evaluators.truth import SegmentationTruth, Target

from .conftest import IDS, SegTruth
from .factory import dicom_mask, nifti_mask, npy_mask, perturb, png_mask, table_csv, write_zip


def numpy_dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def hu_of(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def predictions(seg: SegTruth) -> dict[str, np.ndarray]:
    return {i: perturb(m, seed=n, flips=300) for n, (i, m) in enumerate(seg.masks.items())}


def mixed_members(seg: SegTruth, preds: dict[str, np.ndarray],
                  surfaces: dict[str, float]) -> dict[str, bytes]:
    a, b, c = IDS
    return {
        f"pred/{a}.dcm": dicom_mask(seg.path / "images" / f"{a}.dcm", preds[a], bits=16),
        f"pred/{b}.nii.gz": nifti_mask(preds[b], gz=True),
        f"pred/{c}.npy": npy_mask(preds[c]),
        "pred/surfaces.csv": table_csv(surfaces, header=("id", "surface_mm2"), delimiter=";",
                                       decimal=","),
    }


def reference(seg: SegTruth, preds: dict[str, np.ndarray], surfaces: dict[str, float],
              window: tuple[float, float] | None) -> dict[str, float]:
    dices, errors = [], []
    for exam_id, truth in seg.masks.items():
        pred = preds[exam_id]
        if window is not None:
            hu = hu_of(seg.path / "images" / f"{exam_id}.dcm")
            inside = (hu >= window[0]) & (hu <= window[1])
            truth, pred = truth & inside, pred & inside
        dices.append(numpy_dice(pred, truth))
        errors.append(surfaces[exam_id] - truth.sum() * seg.spacing[0] * seg.spacing[1])
    err = np.array(errors)
    return {"dice": float(np.mean(dices)), "dice_min": min(dices),
            "dice_median": float(np.median(dices)), "surface_mse": float(np.mean(err**2)),
            "surface_rmse_cm2": float(np.sqrt(np.mean(err**2))) / 100,
            "surface_mae_cm2": float(np.mean(np.abs(err))) / 100}


@pytest.mark.parametrize("window", [None, (-29.0, 150.0)])
def test_metrics_match_direct_numpy(seg_truth: SegTruth, tmp_path: Path,
                                    window: tuple[float, float] | None) -> None:
    preds = predictions(seg_truth)
    surfaces = {i: 1000.0 + 37.5 * n for n, i in enumerate(IDS)}
    sub = write_zip(tmp_path / "team.zip", mixed_members(seg_truth, preds, surfaces))
    result = evaluate("segmentation-surface", seg_truth.path, sub,
                      ScoringOptions(hu_window=window))
    assert result.status == "scored", result.errors
    expected = reference(seg_truth, preds, surfaces, window)
    assert result.metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-12, rel=1e-12), key
    if window is not None:
        plain = evaluate("segmentation-surface", seg_truth.path, sub)
        assert plain.metrics["dice"] != result.metrics["dice"]


def test_zip_made_by_the_zip_command(seg_truth: SegTruth, tmp_path: Path) -> None:
    if shutil.which("zip") is None:
        pytest.skip("the `zip` command line tool is not installed (apt-get install zip)")
    preds = predictions(seg_truth)
    folder = tmp_path / "submission"
    (folder / "masks").mkdir(parents=True)
    for exam_id, pred in preds.items():
        (folder / "masks" / f"{exam_id}.png").write_bytes(png_mask(pred))
    surfaces = {i: 900.0 for i in IDS}
    (folder / "surfaces.csv").write_bytes(table_csv(surfaces, header=None))
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    subprocess.run(["zip", "-r", "-q", "../team.zip", "."], cwd=folder, check=True)
    with zipfile.ZipFile(tmp_path / "team.zip") as archive:
        assert any(n.endswith("/") for n in archive.namelist())  # directory entries too
    result = evaluate("segmentation-surface", seg_truth.path, tmp_path / "team.zip")
    assert result.status == "scored", result.errors
    expected = reference(seg_truth, preds, surfaces, None)
    assert result.metrics["dice"] == pytest.approx(expected["dice"], abs=1e-12)
    # zip -y stores the link itself, which must be refused.
    (folder / "masks" / "link.png").symlink_to(folder / "masks" / f"{IDS[0]}.png")
    subprocess.run(["zip", "-r", "-q", "-y", "../linked.zip", "."], cwd=folder, check=True)
    linked = evaluate("segmentation-surface", seg_truth.path, tmp_path / "linked.zip")
    assert [p.code for p in linked.errors] == ["symlink"]


def test_surfaces_xlsx_and_upload_name_with_suffix(seg_truth: SegTruth, tmp_path: Path) -> None:
    import io

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for exam_id in IDS:
        sheet.append([int(exam_id), 1234.5])  # ids stored as numbers: 0042 → 42
    buffer = io.BytesIO()
    book.save(buffer)
    members = {f"{i}.png": png_mask(m) for i, m in seg_truth.masks.items()}
    members["surfaces.xlsx"] = buffer.getvalue()
    sub = write_zip(tmp_path / "3f2a-upload-final_v2.zip", members)
    result = evaluate("segmentation-surface", seg_truth.path, sub)
    assert result.status == "scored", result.errors
    assert result.metrics["dice"] == 1.0 and result.metrics["dice_min"] == 1.0


def test_every_mask_problem_is_listed(seg_truth: SegTruth, tmp_path: Path) -> None:
    members = {f"{i}.png": png_mask(np.zeros((32, 32), bool)) for i in IDS}
    members["9999.png"] = png_mask(np.zeros((64, 64), bool))
    sub = write_zip(tmp_path / "bad.zip", members)
    result = evaluate("segmentation-surface", seg_truth.path, sub)
    codes = sorted(p.code for p in result.errors)
    # One mistake on every exam is one line, listing the exams.
    assert codes == ["missing_surfaces", "unknown_id", "wrong_shape"]
    [shape] = [p for p in result.errors if p.code == "wrong_shape"]
    assert shape.message == f"3 masks are 32×32, the exams are 64×64: {', '.join(IDS)}"


def test_surfaces_from_truth_csv_override_pixels(tmp_path: Path, seg_truth: SegTruth) -> None:
    truth = tmp_path / "truth"
    shutil.copytree(seg_truth.path, truth)
    (truth / "surfaces.csv").write_text("id,surface_mm2\n" + "".join(f"{i},2000\n" for i in IDS))
    members = {f"{i}.png": png_mask(m) for i, m in seg_truth.masks.items()}
    members["surfaces.csv"] = table_csv({i: 2010.0 for i in IDS})
    result = evaluate("segmentation-surface", truth, write_zip(tmp_path / "s.zip", members))
    assert result.metrics["surface_mse"] == pytest.approx(100.0, abs=1e-9)


def test_truth_is_cached_until_it_changes(tmp_path: Path, seg_truth: SegTruth) -> None:
    truth = tmp_path / "truth"
    shutil.copytree(seg_truth.path, truth)
    first = load_truth("segmentation-surface", truth)
    assert load_truth("segmentation-surface", truth) is first
    mask = truth / "masks" / f"{IDS[0]}.png"
    mask.write_bytes(png_mask(np.zeros((64, 64), bool)))
    second = load_truth("segmentation-surface", truth)
    assert second is not first and isinstance(second, SegmentationTruth)
    assert second.targets(None)[IDS[0]].truth_pixels == 0


def _target(mask: np.ndarray) -> Target:
    flat = mask.reshape(-1)
    return Target(ExamGrid(mask.shape), np.packbits(flat), int(flat.sum()), None, 0.0)  # type: ignore[arg-type]


masks_8x8 = arrays(np.bool_, (8, 8))


@settings(max_examples=200, deadline=None)
@given(masks_8x8, masks_8x8, st.one_of(st.none(), masks_8x8))
def test_dice_is_symmetric_bounded_and_matches_numpy(a: np.ndarray, b: np.ndarray,
                                                     window: np.ndarray | None) -> None:
    ab, ba = exam_dice(a, _target(b)), exam_dice(b, _target(a))
    assert ab == ba
    assert 0.0 <= ab <= 1.0
    assert ab == pytest.approx(numpy_dice(a, b), abs=1e-12)
    assert exam_dice(a, _target(a)) == 1.0
    if window is not None:
        flat = window.reshape(-1)
        windowed = Target(ExamGrid((8, 8)), np.packbits(b.reshape(-1) & flat),
                          int((b & window).sum()), np.packbits(flat), 0.0)
        assert exam_dice(a, windowed) == pytest.approx(numpy_dice(a & window, b & window),
                                                       abs=1e-12)
