"""The final day's truth written from a set for the kinds whose truth is masks or nodules
(`write_truth` of server/kinds/: segmentation-surface, segmentation-3d, detection, nodule-task):
built from kept exams as the inclusion keeps them (DICOM series written by pydicom, masks by
nibabel), equal to the truth written by hand from the same exams, loaded by the kind's own
reader, a perfect prediction scoring perfectly; an exam without its mask or nodules refuses
the split naming it; a challenge whose truth is not built yet cannot start."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from server import kinds
from server.dataset import final
from server.dataset.cohort import make_split
from server.errors import SplitRefused
from server.evaluators import evaluate, load_truth
from server.evaluators.truth import clear_cache
from server.event import parse_event
from server.store import exams as exam_store
from tests.dataset.test_cohort import _event, _kept_exams
from tests.evaluators.factory import nifti_mask, synthetic_slice, write_exam, write_zip
from tests.evaluators.volumes import SeriesSpec, ct_volume, ellipsoid, nifti_bytes, write_series
from tests.helpers import AppServer, load_event_into, run

SLUG = "q"
COUNT = 5
EVENT = """
[event]
name = "Truth from a set"

[[challenges]]
slug = "q"
title = "A question from the centers' exams"
kind = "{kind}"
duration_minutes = 60
truth = "set:validation"

[challenges.inclusion]
target = 5

[challenges.inclusion.criteria]
modality = "CT"
dimension = "{dimension}"

[challenges.splits]
seed = 7
sets = {{training = 1, validation = 4}}
stratify = ["center"]

[[centers]]
name = "CHU de Lyon"
challenges = ["q"]
"""

SPACING_2D = (0.75, 0.8)
SHAPE_2D = (48, 64)  # rows, columns: not square, so a mask without orientation reads one way
SPEC = SeriesSpec()
VOXEL_MM3 = float(np.prod(SPEC.spacing))
# Three exams with a large nodule (radius 5 voxels, ≈ 410 mm³), two with a small one (≈ 90
# mm³): any four of them hold both classes, as the nodule task's AUC needs.
RADII = (5, 3, 5, 3, 5)


def _slice(n: int) -> tuple[np.ndarray, np.ndarray]:
    return synthetic_slice(SHAPE_2D, seed=n)


def _volume(n: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], float]:
    """The exam's CT, its label mask, its nodule's centre in mm (LPS) and diameter."""
    centre = (9.0 + n % 2, 12.0, 8.0)
    labels = ellipsoid(SPEC.shape, centre, (RADII[n],) * 3).astype(np.uint8)
    world = SPEC.lps_affine() @ np.array([*centre, 1.0])
    return ct_volume(SPEC, seed=n), labels, (float(world[0]), float(world[1]),
                                             float(world[2])), 2.0 * RADII[n] * 0.8


def _surface_exam(n: int, folder: Path) -> dict[str, Any]:
    hu, mask = _slice(n)
    write_exam(folder / "series" / "0" / "0.dcm", hu, SPACING_2D, seed=n)
    (folder / "annotation").mkdir()
    (folder / "annotation" / "muscle.nii.gz").write_bytes(nifti_mask(mask, gz=True))
    return {"series": "series/0", "mask": "annotation/muscle.nii.gz"}


def _volume_exam(n: int, folder: Path) -> dict[str, Any]:
    hu, labels, centre, diameter = _volume(n)
    write_series(folder / "series" / "0", SPEC, hu, seed=n, study=f"exam-{n}")
    (folder / "annotation").mkdir()
    (folder / "annotation" / "nodule.nii.gz").write_bytes(nifti_bytes(labels, SPEC.ras_affine()))
    (folder / "annotation" / "nodules.csv").write_text(
        f"x,y,z,diameter_mm\n{centre[0]},{centre[1]},{centre[2]},{diameter}\n")
    return {"series": "series/0", "mask": "annotation/nodule.nii.gz",
            "nodules": [{"x": centre[0], "y": centre[1], "z": centre[2],
                         "diameter_mm": diameter, "volume_mm3": None, "density": None}]}


async def _exams(url: str, data_dir: Path, make: Callable[[int, Path], dict[str, Any]]
                 ) -> dict[int, int]:
    """COUNT kept exams of the question, each folder made by `make`; exam id -> n."""
    conn = await asyncpg.connect(url)
    try:
        center = await conn.fetchval("SELECT id FROM center WHERE name = 'CHU de Lyon'")
        made = {}
        for n in range(COUNT):
            exam = await exam_store.create(conn, center_id=center, challenge=SLUG,
                                           channel="web", label=f"exam-{n}.zip",
                                           source_key=f"k{n}", message="received")
            folder = data_dir / "exams" / str(exam)
            summary = make(n, folder)
            await exam_store.deidentified(conn, exam, folder=folder, files=2, size=1,
                                          pseudonym=f"P-{n}", study_uid=f"2.25.{n}",
                                          message="de-identified")
            await exam_store.checked(conn, exam, [], summary, "the criteria are met")
            await exam_store.keep(conn, exam, "A", "graded A")
            made[exam] = n
        return made
    finally:
        await conn.close()


def _built(tmp_path: Path, database_url: str, kind: str,
           make: Callable[[int, Path], dict[str, Any]]) -> tuple[Any, Path, dict[int, int]]:
    """The question split, its truth built from the validation set: (challenge, truth,
    the validation exams' id -> n)."""
    dimension = "2d" if kind == "segmentation-surface" else "3d"
    path = _event(tmp_path, EVENT.format(kind=kind, dimension=dimension))
    data = tmp_path / "data"
    challenge = parse_event(path).challenge(SLUG)
    run(load_event_into(database_url, path, data))
    made = run(_exams(database_url, data, make))

    async def split() -> dict[str, Any]:
        conn = await asyncpg.connect(database_url)
        try:
            return await make_split(conn, challenge, data, by="test")
        finally:
            await conn.close()

    report = run(split())
    assert [s["exams"] for s in report["sets"]] == [1, 4]
    truth = final.truth_of(challenge, data)
    members = {int(line.split(",")[0]) for line in
               (data / "splits" / SLUG / "1" / "validation.csv").read_text().splitlines()[1:]}
    clear_cache()
    return challenge, truth, {i: n for i, n in made.items() if i in members}


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _score(kind: str, truth: Path, members: dict[str, bytes], tmp_path: Path,
           challenge: Any) -> dict[str, float]:
    result = evaluate(kind, truth, write_zip(tmp_path / "perfect.zip", members),
                      challenge.scoring_options(), name="perfect.zip")
    assert result.status == "scored", result.errors
    return {k: float(v) for k, v in result.metrics.items()}


def test_a_segmentation_surface_truth_from_the_validation_set(database_url: str,
                                                              tmp_path: Path) -> None:
    challenge, truth, validation = _built(tmp_path, database_url, "segmentation-surface",
                                          _surface_exam)
    assert truth == tmp_path / "data" / "final" / SLUG / "truth" and truth.is_dir()
    by_hand = tmp_path / "by-hand"
    for exam_id, n in validation.items():
        hu, mask = _slice(n)
        # The exam as its center's series holds it (its SOP UID depends on the file's name).
        write_exam(tmp_path / "scratch" / str(exam_id) / "0.dcm", hu, SPACING_2D, seed=n)
        (by_hand / "images").mkdir(parents=True, exist_ok=True)
        (tmp_path / "scratch" / str(exam_id) / "0.dcm").replace(
            by_hand / "images" / f"{exam_id}.dcm")
        (by_hand / "masks").mkdir(exist_ok=True)
        (by_hand / "masks" / f"{exam_id}.nii.gz").write_bytes(nifti_mask(mask, gz=True))
    assert _tree(truth) == _tree(by_hand)

    loaded = kinds.get("segmentation-surface").load_truth(truth)
    assert loaded.ids == tuple(sorted(str(i) for i in validation))
    surfaces = "id,surface_mm2\n" + "".join(
        f"{i},{float(np.count_nonzero(_slice(n)[1])) * SPACING_2D[0] * SPACING_2D[1]!r}\n"
        for i, n in validation.items())
    metrics = _score("segmentation-surface", truth, {
        **{f"masks/{i}.nii.gz": nifti_mask(_slice(n)[1], gz=True) for i, n in validation.items()},
        "surfaces.csv": surfaces.encode()}, tmp_path, challenge)
    assert metrics["dice"] == pytest.approx(1.0) and metrics["surface_mse"] == pytest.approx(0.0)


def test_a_segmentation_3d_truth_from_the_validation_set(database_url: str,
                                                         tmp_path: Path) -> None:
    challenge, truth, validation = _built(tmp_path, database_url, "segmentation-3d",
                                          _volume_exam)
    by_hand = tmp_path / "by-hand"
    for exam_id, n in validation.items():
        hu, labels, _, _ = _volume(n)
        write_series(by_hand / "images" / str(exam_id), SPEC, hu, seed=n, study=f"exam-{n}")
        (by_hand / "masks").mkdir(exist_ok=True)
        (by_hand / "masks" / f"{exam_id}.nii.gz").write_bytes(
            nifti_bytes(labels, SPEC.ras_affine()))
    assert _tree(truth) == _tree(by_hand)

    loaded = kinds.get("segmentation-3d").load_truth(truth)
    assert loaded.ids == tuple(sorted(str(i) for i in validation))
    metrics = _score("segmentation-3d", truth, {
        f"masks/{i}.nii.gz": nifti_bytes(_volume(n)[1], SPEC.ras_affine())
        for i, n in validation.items()}, tmp_path, challenge)
    assert metrics["dice"] == pytest.approx(1.0) and metrics["nsd"] == pytest.approx(1.0)
    assert metrics["hd95_mm"] == pytest.approx(0.0)


def test_a_detection_truth_from_the_validation_set(database_url: str, tmp_path: Path) -> None:
    challenge, truth, validation = _built(tmp_path, database_url, "detection", _volume_exam)
    assert truth == tmp_path / "data" / "final" / SLUG / "truth.csv"
    by_hand = tmp_path / "by-hand.csv"
    by_hand.write_text("id,x,y,z,diameter_mm\n" + "".join(
        f"{i},{_volume(n)[2][0]},{_volume(n)[2][1]},{_volume(n)[2][2]},{_volume(n)[3]}\n"
        for i, n in sorted(validation.items())))
    built, expected = load_truth("detection", truth), load_truth("detection", by_hand)
    assert built.ids == expected.ids == tuple(sorted(str(i) for i in validation))
    for exam_id in built.ids:
        assert np.allclose(built.nodules[exam_id], expected.nodules[exam_id])
    candidates = "id,x,y,z,probability\n" + "".join(
        f"{i},{_volume(n)[2][0]},{_volume(n)[2][1]},{_volume(n)[2][2]},0.9\n"
        for i, n in validation.items())
    result = evaluate("detection", truth, _write(tmp_path / "c.csv", candidates),
                      challenge.scoring_options(), name="candidates.csv")
    assert result.status == "scored", result.errors
    assert result.metrics["froc_cpm"] == pytest.approx(1.0)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_nodule_task_truth_from_the_validation_set(database_url: str,
                                                     tmp_path: Path) -> None:
    challenge, truth, validation = _built(tmp_path, database_url, "nodule-task", _volume_exam)
    by_hand = tmp_path / "by-hand"
    rows = []
    for exam_id, n in sorted(validation.items()):
        hu, labels, centre, diameter = _volume(n)
        write_series(by_hand / "images" / str(exam_id), SPEC, hu, seed=n, study=f"exam-{n}")
        (by_hand / "masks").mkdir(exist_ok=True)
        (by_hand / "masks" / f"{exam_id}.nii.gz").write_bytes(
            nifti_bytes(labels, SPEC.ras_affine()))
        rows.append(f"{exam_id},{centre[0]!r},{centre[1]!r},{centre[2]!r},{diameter!r}\n")
    (by_hand / "nodules.csv").write_text("id,x,y,z,diameter_mm\n" + "".join(rows))
    assert _tree(truth) == _tree(by_hand)

    loaded = kinds.get("nodule-task").load_truth(truth)
    assert loaded.masks.ids == tuple(sorted(str(i) for i in validation))
    assert sorted(loaded.labels.values) == sorted(
        float(RADII[n] == 5) for n in validation.values())
    volumes = {i: int(_volume(n)[1].sum()) * VOXEL_MM3 for i, n in validation.items()}
    metrics = _score("nodule-task", truth, {
        **{f"masks/{i}.nii.gz": nifti_bytes(_volume(n)[1], SPEC.ras_affine())
           for i, n in validation.items()},
        "candidates.csv": ("id,x,y,z,probability\n" + "".join(
            f"{i},{_volume(n)[2][0]},{_volume(n)[2][1]},{_volume(n)[2][2]},0.9\n"
            for i, n in validation.items())).encode(),
        "volumes.csv": ("id,volume_mm3\n" + "".join(
            f"{i},{v!r}\n" for i, v in volumes.items())).encode(),
        "probabilities.csv": ("id,probability\n" + "".join(
            f"{i},{float(RADII[n] == 5)}\n" for i, n in validation.items())).encode(),
    }, tmp_path, challenge)
    assert metrics["froc_cpm"] == pytest.approx(1.0) and metrics["dice"] == pytest.approx(1.0)
    assert metrics["auc"] == pytest.approx(1.0)
    assert metrics["estimated_volume_error_mm3"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("kind", "remove", "key", "missing"), [
    ("segmentation-3d", "annotation/nodule.nii.gz", "mask",
     "has no mask (a NIfTI or DICOM SEG"),
    ("segmentation-surface", "annotation/muscle.nii.gz", "mask",
     "has no mask (a NIfTI or DICOM SEG"),
    ("detection", "annotation/nodules.csv", "nodules",
     "has no nodules (a nodules table in annotation/)"),
    ("detection", None, "nodules", "has no nodules in its summary: the intake reads its "
     "nodules table when the question declares [challenges.inclusion.criteria.nodules]"),
    ("nodule-task", "series/0", "series", "has no series (series/<n>/ of DICOM files"),
])
def test_an_exam_without_what_the_truth_needs_stops_the_split_naming_it(
        database_url: str, tmp_path: Path, kind: str, remove: str | None, key: str,
        missing: str) -> None:
    make = _surface_exam if kind == "segmentation-surface" else _volume_exam
    lacking: list[int] = []

    def without(n: int, folder: Path) -> dict[str, Any]:
        summary = make(n, folder)
        if n == 0 or n == 1:  # two exams lack it: one of them is in the validation set
            lacking.append(int(folder.name))
            summary.pop(key)
            target = folder / remove if remove else None
            if target is not None and target.is_dir():
                shutil.rmtree(target)
            elif target is not None:
                target.unlink()
        return summary

    with pytest.raises(SplitRefused, match=r"exam [0-9]+ of the set has no") as caught:
        _built(tmp_path, database_url, kind, without)
    exam = int(caught.value.message.split()[1])
    assert exam in lacking and f"the truth of {SLUG} cannot be written" in caught.value.message
    assert missing in caught.value.message
    # Nothing was written, nothing recorded: no truth, no split.
    assert not (tmp_path / "data" / "final" / SLUG / "truth").exists()
    assert not list((tmp_path / "data" / "final" / SLUG).glob("*.partial"))


def test_a_challenge_whose_truth_comes_from_a_set_cannot_start_before_the_split(
        database_url: str, tmp_path: Path) -> None:
    event = _event(tmp_path)
    server = AppServer(event, tmp_path / "data", database_url).start()
    try:
        organizer = server.tokens()["organizer"]
        status, body = server.json("POST", "/api/v1/challenges/nodules-3d/start",
                                   token=organizer, body={})
        assert (status, body["error"]["code"]) == (409, "no_truth"), body
        assert "podium split" in body["error"]["message"] and body["error"]["set"] == \
            "validation"
        run(_kept_exams(database_url, tmp_path / "data"))
        status, made = server.json("POST", "/api/v1/challenges/nodules-3d/split",
                                   token=organizer, body={})
        assert status == 201, made
        status, body = server.json("POST", "/api/v1/challenges/nodules-3d/start",
                                   token=organizer, body={})
        assert status == 200 and body["state"] == "running", body
    finally:
        server.stop()


def test_the_writer_is_the_kinds_own() -> None:
    """One home per concept: each kind with a truth from a set declares its writer."""
    for name in ("binary-probability", "regression", "segmentation-surface",
                 "segmentation-3d", "detection", "nodule-task"):
        assert kinds.get(name).write_truth is not None, name
        assert final.truth_from_set(name)
