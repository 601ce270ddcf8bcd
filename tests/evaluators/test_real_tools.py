"""Files written by the tools teams use (tests/evaluators/real_tools.py), scored: the metrics
equal a numpy reference to 1e-9, or the warning or refusal names what happened."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from server.evaluators import ScoringOptions, evaluate
from server.evaluators.exam import read_exam

from . import real_tools as rt
from .factory import write_zip

WINDOW = ScoringOptions(hu_window=rt.HU_WINDOW)


@dataclass(frozen=True)
class Corpus:
    truth: Path
    exams: dict[str, rt.Exam]
    preds: dict[str, rt.BoolArray]
    work: Path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("real-tools")
    exams = rt.write_truth(root / "truth")
    preds = {i: rt.prediction(e, seed=n) for n, (i, e) in enumerate(exams.items())}
    return Corpus(root / "truth", exams, preds, root / "work")


def inside_window(exam: rt.Exam) -> np.ndarray:
    return (exam.hu >= rt.HU_WINDOW[0]) & (exam.hu <= rt.HU_WINDOW[1])


def reference(corpus: Corpus, masks: dict[str, np.ndarray], surfaces: dict[str, float],
              window: bool) -> dict[str, float]:
    """The metrics computed directly with numpy from the arrays the team meant."""
    dices, errors = [], []
    for exam_id, exam in corpus.exams.items():
        truth, pred = exam.muscle, masks[exam_id]
        if window:
            inside = inside_window(exam)
            truth, pred = truth & inside, pred & inside
        total = truth.sum() + pred.sum()
        dices.append(1.0 if total == 0 else 2 * (truth & pred).sum() / total)
        errors.append(surfaces[exam_id] - truth.sum() * np.prod(exam.spec.spacing))
    err = np.array(errors)
    return {"dice": float(np.mean(dices)), "surface_mse": float(np.mean(err**2)),
            "dice_min": float(np.min(dices)), "dice_median": float(np.median(dices)),
            "surface_rmse_cm2": float(np.sqrt(np.mean(err**2))) / 100,
            "surface_mae_cm2": float(np.mean(np.abs(err))) / 100}


def own_surfaces(corpus: Corpus) -> dict[str, float]:
    """Surfaces as a team computes them from its masks, plus a little model error."""
    return {i: float(p.sum() * np.prod(corpus.exams[i].spec.spacing)) * (1.0 + 0.01 * n) + 0.25
            for n, (i, p) in enumerate(corpus.preds.items())}


def assert_metrics(got: dict[str, float], expected: dict[str, float]) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9, rel=1e-9), key


def test_exams_carry_full_geometry(corpus: Corpus) -> None:
    for exam in corpus.exams.values():
        grid = read_exam(exam.path).grid
        assert grid.shape == exam.spec.shape and grid.spacing == exam.spec.spacing
        assert grid.position == exam.spec.position
        assert grid.orientation is not None
        import pydicom

        assert pydicom.dcmread(exam.path).FrameOfReferenceUID


@pytest.mark.parametrize("writer_name", list(rt.MASK_WRITERS))
def test_mask_writer(corpus: Corpus, tmp_path: Path, writer_name: str) -> None:
    writer = rt.MASK_WRITERS[writer_name]
    members = rt.write_masks(writer, corpus.exams, corpus.preds, corpus.work / writer_name)
    surfaces = own_surfaces(corpus)
    name, data = rt.surfaces_pandas_csv(surfaces)
    submission = write_zip(tmp_path / "stored_593b09f3dd27_team.zip", {**members, name: data})
    result = evaluate("segmentation-surface", corpus.truth, submission, WINDOW,
                      name="team.zip")
    if writer.errors:
        assert result.status == "invalid"
        assert {p.code for p in result.errors} == set(writer.errors), result.to_json()
        for problem in result.errors:
            assert "593b09f3dd27" not in problem.message
        return
    assert result.status == "scored", result.to_json()
    codes = {w.code for w in result.warnings}
    assert codes == set(writer.warnings), result.to_json()
    meant = {i: rt.DIHEDRAL[writer.read_as.get(i, "identity")](p)
             for i, p in corpus.preds.items()}
    assert_metrics(result.metrics, reference(corpus, meant, surfaces, window=True))


def test_the_same_files_without_a_window_carry_no_hu_warnings(corpus: Corpus,
                                                              tmp_path: Path) -> None:
    writer = rt.MASK_WRITERS["nibabel_naive"]
    members = rt.write_masks(writer, corpus.exams, corpus.preds, corpus.work / "naive-plain")
    surfaces = own_surfaces(corpus)
    name, data = rt.surfaces_pandas_csv(surfaces)
    result = evaluate("segmentation-surface", corpus.truth,
                      write_zip(tmp_path / "t.zip", {**members, name: data}))
    assert {w.code for w in result.warnings} == rt.NO_ORIENTATION
    meant = {i: p.T if i in rt.SQUARE else p for i, p in corpus.preds.items()}
    assert_metrics(result.metrics, reference(corpus, meant, surfaces, window=False))


def test_transposed_and_flipped_readings_are_named(corpus: Corpus, tmp_path: Path) -> None:
    members = rt.write_masks(rt.MASK_WRITERS["nibabel_naive"], corpus.exams, corpus.preds,
                             corpus.work / "naive")
    name, data = rt.surfaces_pandas_csv(own_surfaces(corpus))
    result = evaluate("segmentation-surface", corpus.truth,
                      write_zip(tmp_path / "t.zip", {**members, name: data}), WINDOW)
    by_code = {w.code: w for w in result.warnings}
    # One line per warning, listing the square exams it concerns.
    assert by_code["looks_transposed"].message.startswith("2 masks look transposed")
    assert "AX-SQ, PRONE" in by_code["looks_transposed"].message
    assert "AX-SQ, PRONE" in by_code["outside_hu_window"].message
    assert "[-29, 150]" in by_code["outside_hu_window"].message
    assert "x = columns, y = rows" in by_code["orientation_assumed"].message
    assert by_code["orientation_from_shape"].id == "AX-WIDE"
    assert "rows × columns" in by_code["orientation_from_shape"].message


def test_dcm2niix_writes_its_own_layout(corpus: Corpus) -> None:
    """dcm2niix reorders rows (its affine says so); the reader follows the affine."""
    for exam in corpus.exams.values():
        conversion = rt.dcm2niix(exam, corpus.work / "layout" / exam.id)
        assert conversion.layout != "transpose"  # not the plain NIfTI convention
        assert int(conversion.header["sform_code"]) > 0


@pytest.mark.parametrize("writer_name", list(rt.SURFACE_WRITERS))
def test_surfaces_writer(corpus: Corpus, tmp_path: Path, writer_name: str) -> None:
    writer = rt.SURFACE_WRITERS[writer_name]
    surfaces = own_surfaces(corpus)
    assert all(v > 1000 for v in surfaces.values())  # written with a thousands separator
    members = rt.write_masks(rt.MASK_WRITERS["png_0_1"], corpus.exams, corpus.preds,
                             corpus.work / "png")
    name, data = writer.write(surfaces)
    result = evaluate("segmentation-surface", corpus.truth,
                      write_zip(tmp_path / "t.zip", {**members, name: data}), WINDOW)
    assert result.status == "scored", result.to_json()
    assert {w.code for w in result.warnings} == set(writer.warnings)
    expected = {i: float(round(v)) if writer.rounded else v for i, v in surfaces.items()}
    assert_metrics(result.metrics, reference(corpus, corpus.preds, expected, window=True))


def test_ambiguous_surfaces_the_masks_cannot_settle_are_refused(corpus: Corpus,
                                                                tmp_path: Path) -> None:
    surfaces = own_surfaces(corpus)
    members = rt.write_masks(rt.MASK_WRITERS["png_0_1"], corpus.exams, corpus.preds,
                             corpus.work / "png")
    empty = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.zeros(corpus.exams["AX-SQ"].spec.shape, np.uint8)).save(empty, "PNG")
    members["masks/AX-SQ.png"] = empty.getvalue()
    name, data = rt.surfaces_excel_csv_grouped(surfaces)
    result = evaluate("segmentation-surface", corpus.truth,
                      write_zip(tmp_path / "t.zip", {**members, name: data}), WINDOW)
    assert [p.code for p in result.errors] == ["ambiguous_number"]
    [problem] = result.errors
    shown = f"{round(surfaces['AX-SQ']):,}"
    assert shown in problem.message and "AX-SQ" in problem.message
    assert "AX-WIDE" not in problem.message  # its mask settles it


def test_surfaces_that_disagree_with_the_masks(corpus: Corpus, tmp_path: Path) -> None:
    members = rt.write_masks(rt.MASK_WRITERS["png_0_1"], corpus.exams, corpus.preds,
                             corpus.work / "png")
    in_cm2 = {i: v / 100 for i, v in own_surfaces(corpus).items()}
    name, data = rt.surfaces_pandas_csv(in_cm2)
    result = evaluate("segmentation-surface", corpus.truth,
                      write_zip(tmp_path / "t.zip", {**members, name: data}), WINDOW)
    [warning] = result.warnings
    assert warning.code == "surface_mismatch"
    assert "cm²" in warning.message and "3 exams" in warning.message
    assert_metrics(result.metrics, reference(corpus, corpus.preds, in_cm2, window=True))


def test_empty_masks_and_constant_surfaces_are_told(corpus: Corpus, tmp_path: Path) -> None:
    empty = {i: np.zeros_like(p) for i, p in corpus.preds.items()}
    members = {f"{i}.npy": _npy(m) for i, m in empty.items()}
    constant = dict.fromkeys(corpus.preds, 15000.0)
    name, data = rt.surfaces_pandas_csv(constant)
    result = evaluate("segmentation-surface", corpus.truth,
                      write_zip(tmp_path / "t.zip", {**members, name: data}), WINDOW)
    assert {w.code for w in result.warnings} == {"empty_mask", "constant_predictions"}
    [told] = [w for w in result.warnings if w.code == "empty_mask"]
    assert "3 masks are empty" in told.message
    assert_metrics(result.metrics, reference(corpus, empty, constant, window=True))


def _npy(mask: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, mask.astype(np.uint8))
    return out.getvalue()


def test_an_aes_zip_gets_one_message(corpus: Corpus, tmp_path: Path) -> None:
    import pyzipper

    path = tmp_path / "aes.zip"
    with pyzipper.AESZipFile(path, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(b"secret")
        archive.writestr("AX-SQ.npy", _npy(corpus.preds["AX-SQ"]))
    with zipfile.ZipFile(path) as plain:
        assert plain.infolist()[0].compress_type == 99  # WinZip AES
    result = evaluate("segmentation-surface", corpus.truth, path, name="our masks.zip")
    assert [(p.code, p.message) for p in result.errors] == [(
        "encrypted", "our masks.zip is password-protected (encrypted); zip the files again "
        "without a password")]
