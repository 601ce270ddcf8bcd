"""Per-exam details kept by the evaluators agree with the metrics they stand behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from server.evaluators import ScoringOptions, evaluate
from tests.evaluators.factory import (
    make_segmentation_truth,
    perturb,
    png_mask,
    table_csv,
    write_zip,
)


def test_probability_details_give_the_auc(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ids = [f"N{n:03d}" for n in range(30)]
    labels = [n % 3 == 0 for n in range(30)]
    (tmp_path / "truth.csv").write_bytes(
        table_csv([(i, str(int(lab))) for i, lab in zip(ids, labels, strict=True)],
                  header=("id", "label")))
    probs = {i: round(float(rng.uniform()), 2) for i in ids}  # rounded: ties happen
    shuffled = dict(reversed(list(probs.items())))
    (tmp_path / "sub.csv").write_bytes(table_csv(shuffled))
    result = evaluate("binary-probability", tmp_path / "truth.csv", tmp_path / "sub.csv")
    assert result.status == "scored" and result.details is not None
    details = result.details
    assert details["ids"] == ids  # truth order, whatever the submission's order
    assert details["truth"] == [int(lab) for lab in labels]
    assert details["predicted"] == [probs[i] for i in ids]
    assert roc_auc_score(details["truth"], details["predicted"]) == pytest.approx(
        result.metrics["auc"], abs=1e-12)


def test_regression_details_give_the_mse(tmp_path: Path) -> None:
    ids = [f"MS{n}" for n in range(1, 21)]
    truth = {i: float(n % 7) for n, i in enumerate(ids)}
    guess = {i: min(10.0, max(0.0, v + 0.3 * ((n % 5) - 2)))
             for n, (i, v) in enumerate(truth.items())}
    (tmp_path / "truth.csv").write_bytes(table_csv(truth))
    (tmp_path / "sub.csv").write_bytes(table_csv(guess, delimiter=";", decimal=","))
    result = evaluate("regression", tmp_path / "truth.csv", tmp_path / "sub.csv")
    assert result.status == "scored" and result.details is not None
    d = result.details
    assert d["ids"] == ids and d["truth"] == [truth[i] for i in ids]
    mse = float(np.mean((np.array(d["predicted"]) - np.array(d["truth"])) ** 2))
    assert mse == pytest.approx(result.metrics["mse"], rel=1e-12)


@pytest.mark.parametrize("window", [None, (-29.0, 150.0)])
def test_segmentation_details_give_dice_and_surface_mse(
    tmp_path: Path, window: tuple[float, float] | None
) -> None:
    ids = ["S3", "S1", "S2", "S4"]
    masks = make_segmentation_truth(tmp_path / "truth", ids, shape=(48, 48))
    surfaces = {i: 900.0 + 40 * n for n, i in enumerate(ids)}
    members = {f"{i}.png": png_mask(perturb(m, seed=n, flips=60 * n))
               for n, (i, m) in enumerate(masks.items())}
    members["surfaces.csv"] = table_csv(surfaces, header=("id", "surface_mm2"))
    sub = write_zip(tmp_path / "sub.zip", members)
    result = evaluate("segmentation-surface", tmp_path / "truth", sub,
                      ScoringOptions(hu_window=window))
    assert result.status == "scored" and result.details is not None
    d = result.details
    assert d["ids"] == sorted(ids)
    assert set(d) == {"ids", "dice", "surface_true", "surface_predicted"}
    assert float(np.mean(d["dice"])) == pytest.approx(result.metrics["dice"], rel=1e-12)
    assert d["dice"][0] < 1.0 and len(set(d["dice"])) > 1
    assert d["surface_predicted"] == [surfaces[i] for i in sorted(ids)]
    error = np.array(d["surface_predicted"]) - np.array(d["surface_true"])
    assert float(np.mean(error**2)) == pytest.approx(result.metrics["surface_mse"], rel=1e-12)


def test_details_stay_out_of_the_plain_json(tmp_path: Path) -> None:
    (tmp_path / "truth.csv").write_bytes(table_csv({"a": 1.0, "b": 2.0}))
    (tmp_path / "sub.csv").write_bytes(table_csv({"a": 1.5, "b": 2.0}))
    (tmp_path / "bad.csv").write_bytes(table_csv({"a": 1.5}))
    result = evaluate("regression", tmp_path / "truth.csv", tmp_path / "sub.csv")
    assert result.to_json() == {"status": "scored", "metrics": result.metrics, "warnings": []}
    full = result.to_json(details=True)
    assert json.loads(json.dumps(full))["details"] == {
        "ids": ["a", "b"], "truth": [1.0, 2.0], "predicted": [1.5, 2.0]}
    assert result.details_json() == full["details"]
    bad = evaluate("regression", tmp_path / "truth.csv", tmp_path / "bad.csv")
    assert bad.status == "invalid" and bad.details is None
    assert "details" not in bad.to_json(details=True)
