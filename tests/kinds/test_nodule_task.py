"""The seed's nodule task in full (server/kinds/nodule_task.py on server/kinds/combined.py):
one zip of masks, candidates, volumes and probabilities, each part scored by its own kind,
checked against independent computations (numpy Dice and volumes, scikit-learn's AUC on the
labels the demo drew, the detection kind scoring the candidates alone)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from server import kinds
from server.demo_volumes import Prediction, VolumeExam, chest_volume, nifti, predict
from server.evaluators import TruthError, evaluate, load_truth
from server.evaluators.truth import clear_cache

KIND = "nodule-task"


def _csv(header: str, rows: list[tuple[object, ...]]) -> bytes:
    return (header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)).encode()


def _members(exams: list[VolumeExam], guesses: list[Prediction]) -> dict[str, bytes]:
    return {
        **{f"out/masks/{e.id}.nii.gz": nifti(e, g.mask.astype(np.uint8))
           for e, g in zip(exams, guesses, strict=True)},
        "out/candidates.csv": _csv("id,x,y,z,probability", [
            (e.id, *c) for e, g in zip(exams, guesses, strict=True) for c in g.candidates]),
        "volumes.csv": _csv("id,volume_mm3", [(e.id, g.volume_mm3)
                                              for e, g in zip(exams, guesses, strict=True)]),
        "probabilities.csv": _csv("id,probability", [
            (e.id, g.probability) for e, g in zip(exams, guesses, strict=True)]),
    }


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[Path, list[VolumeExam], list[Prediction]]:
    rng = np.random.default_rng(11)
    exams = [chest_volume(f"N{n}", rng) for n in range(6)]
    assert 0 < sum(e.malignant for e in exams) < len(exams)
    truth = tmp_path_factory.mktemp("nodule-task")
    (truth / "images").mkdir()
    (truth / "masks").mkdir()
    for exam in exams:
        (truth / "images" / f"{exam.id}.nii.gz").write_bytes(nifti(exam, exam.hu))
        (truth / "masks" / f"{exam.id}.nii.gz").write_bytes(
            nifti(exam, exam.mask.astype(np.uint8)))
    (truth / "nodules.csv").write_bytes(_csv("id,x,y,z,diameter_mm", [
        (e.id, *n.centre, n.diameter_mm) for e in reversed(exams) for n in e.nodules]))
    guesses = [predict(e, rng, skill=0.7, false_positives=1.5) for e in exams]
    return truth, exams, guesses


def test_each_part_is_scored_as_its_kind_scores_it(
        task: tuple[Path, list[VolumeExam], list[Prediction]], tmp_path: Path) -> None:
    truth, exams, guesses = task
    members = _members(exams, guesses)
    result = evaluate(KIND, truth, _zip(tmp_path / "team.zip", members))
    assert result.status == "scored", result.to_json()
    m = result.metrics
    # Masks: Dice per exam by numpy on the very arrays the team wrote.
    dice = [2 * np.count_nonzero(e.mask & g.mask) / (np.count_nonzero(e.mask)
                                                      + np.count_nonzero(g.mask))
            for e, g in zip(exams, guesses, strict=True)]
    assert m["dice"] == pytest.approx(np.mean(dice), abs=1e-9)
    # Candidates: the detection kind alone, on the same table and the nodules' file.
    (tmp_path / "candidates.csv").write_bytes(members["out/candidates.csv"])
    alone = evaluate("detection", truth / "nodules.csv", tmp_path / "candidates.csv")
    assert alone.status == "scored"
    for key in ("froc_cpm", "sens_fp_1", "sensitivity_max"):
        assert m[key] == pytest.approx(alone.metrics[key], abs=1e-12)
    # Volumes: against the truth masks' voxels.
    true_mm3 = [np.count_nonzero(e.mask) * e.voxel_mm3 for e in exams]
    assert m["estimated_volume_error_mm3"] == pytest.approx(
        np.mean([abs(g.volume_mm3 - t) for g, t in zip(guesses, true_mm3, strict=True)]))
    # Probabilities: AUC against the labels the demo drew (largest nodule >= 100 mm³).
    labels = [int(e.malignant) for e in exams]
    assert m["auc"] == pytest.approx(roc_auc_score(labels, [g.probability for g in guesses]))
    assert m["brier"] == pytest.approx(np.mean((np.array([g.probability for g in guesses])
                                                - labels) ** 2))
    assert result.details is not None and result.details["ids"] == [e.id for e in exams]


def test_the_jury_sees_each_parts_plots_values_and_bootstrap(
        task: tuple[Path, list[VolumeExam], list[Prediction]], tmp_path: Path) -> None:
    truth, exams, guesses = task
    result = evaluate(KIND, truth, _zip(tmp_path / "team.zip", _members(exams, guesses)))
    assert result.details is not None
    kind = kinds.get(KIND)
    assert kind.cases is not None and kind.resample is not None and kind.plots is not None
    cases = kind.cases(result.details)
    assert set(cases) == set(kind.case_metrics)
    for key in ("dice", "nsd", "hd95_mm", "estimated_volume_error_mm3"):
        assert np.mean([v for v in cases[key] if v is not None]) == pytest.approx(
            result.metrics[key]), key
    full = kind.resample({"T": result.details}, ["T"], np.arange(len(exams))[np.newaxis, :])
    for key in ("froc_cpm", "dice", "auc", "estimated_volume_error_mm3"):
        assert full[key][0, 0] == pytest.approx(result.metrics[key]), key
    plots = kind.plots({"T": result.details}, {"T": "#123456"})
    assert {"candidates:froc", "masks:dice", "probabilities:roc", "volumes"} <= set(plots)
    assert set(kind.board) | set(kind.ranking.metrics()) <= set(result.metrics)


def test_every_part_must_be_there_and_right(
        task: tuple[Path, list[VolumeExam], list[Prediction]], tmp_path: Path) -> None:
    truth, exams, guesses = task
    members = _members(exams, guesses)
    del members["probabilities.csv"]
    members["notes.txt"] = b"our model"
    members["volumes.csv"] = members["volumes.csv"].replace(
        f"{exams[0].id},".encode(), f"{exams[0].id},-".encode())
    del members[f"out/masks/{exams[1].id}.nii.gz"]
    result = evaluate(KIND, truth, _zip(tmp_path / "bad.zip", members), name="bad.zip")
    assert result.status == "invalid"
    codes = {p.code: p.message for p in result.errors}
    assert set(codes) == {"unexpected_file", "missing_part", "out_of_range", "missing_id"}
    assert "probabilities.csv (id,probability" in codes["missing_part"]
    assert "notes.txt" in codes["unexpected_file"] and exams[1].id in codes["missing_id"]
    assert evaluate(KIND, truth, _zip(tmp_path / "x.csv", members), name="x.csv"
                    ).errors[0].code == "unsupported_format"


def test_the_truth_must_hold_the_nodules_and_both_classes(
        task: tuple[Path, list[VolumeExam], list[Prediction]], tmp_path: Path) -> None:
    source, exams, _ = task
    truth = tmp_path / "truth"
    shutil.copytree(source, truth)
    (truth / "nodules.csv").unlink()
    clear_cache()
    with pytest.raises(TruthError, match="nodules' table"):
        load_truth(KIND, truth)
    (truth / "nodules.csv").write_bytes(_csv("id,x,y,z,diameter_mm", [
        (e.id, *n.centre, n.diameter_mm) for e in exams[1:] for n in e.nodules]))
    with pytest.raises(TruthError, match=f"nodules.csv does not list: {exams[0].id}"):
        load_truth(KIND, truth)
    benign = [e for e in exams if not e.malignant]
    for e in exams:
        if e.malignant:
            for folder in ("images", "masks"):
                (truth / folder / f"{e.id}.nii.gz").unlink()
    (truth / "nodules.csv").write_bytes(_csv("id,x,y,z,diameter_mm", [
        (e.id, *n.centre, n.diameter_mm) for e in benign for n in e.nodules]))
    with pytest.raises(TruthError, match="every exam is probably benign"):
        load_truth(KIND, truth)


def test_a_table_part_is_found_by_its_name_in_any_folder() -> None:
    from server.kinds.combined import stem_is
    takes = stem_is("candidates")
    assert takes("candidates.csv") and takes("a/b/Candidates.xlsx") and takes("candidates.txt")
    assert not takes("candidates.png") and not takes("my-candidates.csv")


def test_the_event_files_tolerance_reaches_the_scorer(
        task: tuple[Path, list[VolumeExam], list[Prediction]], tmp_path: Path) -> None:
    """`tolerance_mm` (segmentation-3d's option, taken by the nodule task for its masks) goes
    from the event file to the scorer: a wider tolerance counts more surface as agreeing."""
    from server.errors import EventFileError
    from server.event import parse_event
    truth, exams, guesses = task
    submission = _zip(tmp_path / "team.zip", _members(exams, guesses))

    def nsd(tolerance: str) -> float:
        event = tmp_path / f"event-{tolerance}.toml"
        event.write_text(f'[event]\nname = "E"\n\n[[challenges]]\nslug = "nodules-3d"\n'
                         f'title = "Nodules"\nkind = "{KIND}"\nduration_minutes = 120\n'
                         f'truth = "{truth}"\ntolerance_mm = {tolerance}\n', encoding="utf-8")
        challenge = parse_event(event).challenge("nodules-3d")
        result = evaluate(KIND, truth, submission, challenge.scoring_options())
        assert result.status == "scored", result.to_json()
        return result.metrics["nsd"]

    assert nsd("0.25") < nsd("1.0") < nsd("4.0")
    with pytest.raises(EventFileError, match="tolerance_mm"):
        nsd("-1")


def test_two_tables_for_one_part_are_refused(
        task: tuple[Path, list[VolumeExam], list[Prediction]], tmp_path: Path) -> None:
    truth, exams, guesses = task
    members = _members(exams, guesses)
    members["old/candidates.xlsx"] = members["out/candidates.csv"]
    members["old/volumes.csv"] = members["volumes.csv"]
    result = evaluate(KIND, truth, _zip(tmp_path / "two.zip", members), name="two.zip")
    messages = [p.message for p in result.errors if p.code == "duplicate_path"]
    assert len(messages) == 2 and all("keep one" in m for m in messages)
    assert any("2 candidates tables" in m for m in messages)
