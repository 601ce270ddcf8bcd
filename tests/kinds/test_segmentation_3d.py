"""The segmentation-3d kind end to end: an event file, `podium score`, evaluate(), and what
the kind gives the boards, the bootstrap, the per-case schemes and the plots."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from server import kinds
from server.cli import main
from server.deliberation.stability import rank_stability
from server.evaluators import ScoringOptions, evaluate
from tests.evaluators.volumes import SeriesSpec, ct_volume, labels_phantom, nifti_bytes, perturbed

SPEC = SeriesSpec()
IDS = ("L001", "L002", "L003")


@pytest.fixture(scope="module")
def event(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("event3d")
    for folder in ("images", "masks"):
        (root / "truth" / folder).mkdir(parents=True)
    for n, exam_id in enumerate(IDS):
        (root / "truth" / "images" / f"{exam_id}.nii.gz").write_bytes(
            nifti_bytes(ct_volume(SPEC, n), SPEC.ras_affine()))
        labels = labels_phantom(n)
        (root / "truth" / "masks" / f"{exam_id}.nii.gz").write_bytes(
            nifti_bytes(labels, SPEC.ras_affine()))
        for team, shift in (("good", 0), ("worse", 2)):
            with zipfile.ZipFile(root / f"{team}.zip", "a") as z:
                z.writestr(f"{exam_id}.nii.gz", nifti_bytes(perturbed(labels, n, shift),
                                                            SPEC.ras_affine()))
    (root / "event.toml").write_text(
        '[event]\nname = "Nodules 3-D"\n\n[[challenges]]\nslug = "lungs3d"\n'
        'title = "Pulmonary nodules on 3-D CT"\nkind = "segmentation-3d"\n'
        'duration_minutes = 120\ntruth = "truth"\n\n'
        '[[teams]]\nname = "Good"\nchallenges = ["lungs3d"]\n')
    return root


def test_podium_score_prints_the_metrics_of_a_masks_zip(event: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    code = main(["score", "--event", str(event / "event.toml"), "--challenge", "lungs3d",
                 str(event / "good.zip")])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "scored"
    assert set(out["metrics"]) == {m.key for m in kinds.get("segmentation-3d").metrics}
    direct = evaluate("segmentation-3d", event / "truth", event / "good.zip")
    assert out["metrics"] == pytest.approx(direct.metrics)


def test_what_the_kind_gives_the_rest_of_podium(event: Path) -> None:
    kind = kinds.get("segmentation-3d")
    assert kind.options == frozenset({"tolerance_mm"})
    assert [c["key"] for c in kind.columns()] == ["dice", "nsd", "hd95_mm", "volume_error_mm3",
                                                  "score"]
    details = {}
    for team in ("good", "worse"):
        result = evaluate("segmentation-3d", event / "truth", event / f"{team}.zip",
                          ScoringOptions(tolerance_mm=1.5))
        assert result.status == "scored" and result.details is not None
        details[team] = result.details
        assert kind.cases is not None
        cases = kind.cases(result.details)
        for key, values in cases.items():
            assert len(values) == len(IDS)
            assert np.mean([v for v in values if v is not None]) == pytest.approx(
                result.metrics[key], rel=1e-12)
    assert details["good"]["dice"] > details["worse"]["dice"]
    assert kind.resample is not None and kind.plots is not None
    draws = np.array([[0, 1, 2], [2, 2, 0]])
    sampled = kind.resample(details, ["good", "worse"], draws)
    assert sampled["dice"].shape == (2, 2)
    assert sampled["dice"][1, 0] == pytest.approx(np.mean(np.array(details["good"]["dice"])
                                                          [[2, 2, 0]]))
    plots = kind.plots(details, {"good": "#0072b2", "worse": "#d55e00"})
    assert set(plots) == {"dice", "volume"} and all(p.startswith("<svg") for p in plots.values())
    shares = rank_stability(kind, details, resamples=50)
    assert set(shares) == {"good", "worse"}
