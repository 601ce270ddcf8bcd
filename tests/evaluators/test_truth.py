"""A bad truth is refused at load time, with the file and row named."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from server.evaluators import Result, TruthError, evaluate, load_truth
from server.evaluators.result import Problem, cap

from .conftest import IDS, SegTruth
from .factory import png_mask


@pytest.mark.parametrize(
    ("kind", "text", "fragment"),
    [("binary-probability", "id,label\na,1\nb,0\na,1\n", "row 4: id a already in row 2"),
     ("binary-probability", "id,label\na,1\nb,2\n", "row 3: label '2' of id b is not 0 or 1"),
     ("binary-probability", "id,label\na,1\nb,1\n", "every label is 1"),
     ("regression", "id,edss\na,10.5\nb,3\n", "row 2: EDSS 10.5 of id a is outside 0–10"),
     ("regression", "id,edss\na,\nb,3\n", "row 2: value '' of id a is not a number"),
     ("regression", "", "is empty")],
)
def test_bad_value_truths(tmp_path: Path, kind: str, text: str, fragment: str) -> None:
    path = tmp_path / "truth.csv"
    path.write_text(text)
    with pytest.raises(TruthError) as info:
        load_truth(kind, path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_missing_truth_file(tmp_path: Path) -> None:
    with pytest.raises(TruthError, match="not found"):
        load_truth("regression", tmp_path / "nope.csv")


def _copy(seg: SegTruth, tmp_path: Path) -> Path:
    truth = tmp_path / "truth"
    shutil.copytree(seg.path, truth)
    return truth


def test_mask_without_image_and_image_without_mask(seg_truth: SegTruth, tmp_path: Path) -> None:
    truth = _copy(seg_truth, tmp_path)
    (truth / "images" / f"{IDS[0]}.dcm").unlink()
    (truth / "masks" / f"{IDS[1]}.png").unlink()
    with pytest.raises(TruthError) as info:
        load_truth("segmentation-surface", truth)
    message = str(info.value)
    assert f"no mask for 1 image(s): {IDS[1]}" in message
    assert f"no image for 1 mask(s): {IDS[0]}" in message


def test_bad_truth_mask_and_duplicate_id(seg_truth: SegTruth, tmp_path: Path) -> None:
    truth = _copy(seg_truth, tmp_path)
    (truth / "masks" / f"{IDS[0]}.png").write_bytes(png_mask(np.zeros((10, 10), bool)))
    (truth / "masks" / f"{IDS[1]}.npy").write_bytes(b"\x93NUMPY")
    with pytest.raises(TruthError) as info:
        load_truth("segmentation-surface", truth)
    assert "is 10×10, the exam is 64×64" in str(info.value)
    assert f"id {IDS[1]} already given by {IDS[1]}.npy" in str(info.value) or \
        f"id {IDS[1]} already given by {IDS[1]}.png" in str(info.value)


def test_evaluate_raises_only_for_truth(tmp_path: Path) -> None:
    sub = tmp_path / "s.csv"
    sub.write_text("a,1\n")
    with pytest.raises(TruthError):
        evaluate("regression", tmp_path / "missing.csv", sub)
    truth = tmp_path / "t.csv"
    truth.write_text("a,1\n")
    result = evaluate("regression", truth, tmp_path / "not-uploaded.csv")
    assert result.to_json() == {"status": "invalid", "errors": [
        {"code": "unreadable", "message": "not-uploaded.csv: no such file"}], "warnings": []}


def test_cap_and_json_shapes() -> None:
    problems = [Problem("x", f"p{i}", id=str(i)) for i in range(5)]
    assert cap(problems, 5) == tuple(problems)
    capped = cap(problems, 3)
    assert [p.message for p in capped] == ["p0", "p1", "p2", "… and 2 more problems"]
    result = Result.scored({"mse": np.float64(1.5)})  # type: ignore[dict-item]
    assert type(result.metrics["mse"]) is float
    assert result.to_json() == {"status": "scored", "metrics": {"mse": 1.5}, "warnings": []}


def test_one_problem_on_many_exams_is_one_line() -> None:
    from server.evaluators.result import grouped

    same = [Problem("wrong_shape", f"mask {i}.png is 2×2, the exam is 4×4", i,
                    group="masks are 2×2, the exams are 4×4") for i in ("a", "b", "c")]
    other = Problem("missing_id", "1 mask missing: d")
    alone = Problem("not_binary", "mask e.png has values 1, 2 but no 0", "e",
                    group="masks have values 1, 2 but no 0")
    assert grouped([same[0], other, *same[1:], alone]) == [
        Problem("wrong_shape", "3 masks are 2×2, the exams are 4×4: a, b, c"), other, alone]
    result = Result.invalid([*same, other], max_errors=20)
    assert [p.message for p in result.errors] == [
        "3 masks are 2×2, the exams are 4×4: a, b, c", "1 mask missing: d"]


def test_messages_name_the_file_as_the_team_uploaded_it(tmp_path: Path) -> None:
    truth = tmp_path / "t.csv"
    truth.write_text("a,1\nb,2\n")
    stored = tmp_path / "593b09f3dd27_edss final.csv"
    stored.write_text("a,11\nc,2\n")
    result = evaluate("regression", truth, stored, name="edss final.csv")
    assert result.errors and all("593b09f3dd27" not in p.message for p in result.errors)
    assert all(p.message.startswith("edss final.csv") for p in result.errors)
    zipped = tmp_path / "593b09f3dd27_masks.zip"
    zipped.write_bytes(b"not a zip")
    seg = evaluate("segmentation-surface",
                   Path(__file__).resolve().parents[1] / "corpus" / "truth" / "sarcopenia",
                   zipped, name="masks.zip")
    assert [p.message for p in seg.errors] == [
        "masks.zip is not a zip archive; send a .zip of the masks"]
