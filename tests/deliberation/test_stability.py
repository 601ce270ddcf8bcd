"""Rank stability by bootstrap over exams."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from server import kinds
from server.deliberation.stability import rank_stability
from server.evaluators.probability import auc_by_ranks


def _probability(labels: np.ndarray, noise: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    predicted = np.clip(labels * 0.5 + 0.25 + rng.normal(0, noise, len(labels)), 0, 1)
    return {"ids": [f"e{k}" for k in range(len(labels))], "truth": labels.astype(int).tolist(),
            "predicted": np.round(predicted, 2).tolist()}


def _regression(truth: np.ndarray, sd: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {"ids": [f"e{k}" for k in range(len(truth))], "truth": truth.tolist(),
            "predicted": (truth + rng.normal(0, sd, len(truth))).tolist()}


def _segmentation(n: int, dice_mean: float, surface_sd: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    true = rng.uniform(10_000, 20_000, n)
    return {"ids": [f"e{k}" for k in range(n)],
            "dice": np.clip(rng.normal(dice_mean, 0.02, n), 0, 1).tolist(),
            "surface_true": true.tolist(),
            "surface_predicted": (true + rng.normal(0, surface_sd, n)).tolist()}


def test_auc_by_ranks_equals_sklearn() -> None:
    rng = np.random.default_rng(7)
    for size in (5, 17, 60):
        labels = (rng.random((6, size)) < 0.4).astype(np.float64)
        labels[:, 0], labels[:, 1] = 0, 1
        scores = np.round(rng.random((6, size)), 1)  # coarse: many ties
        ours = auc_by_ranks(labels, scores)
        for row in range(6):
            assert ours[row] == pytest.approx(roc_auc_score(labels[row], scores[row]), abs=1e-12)
    assert np.isnan(auc_by_ranks(np.ones((1, 4)), np.arange(4.0)[None, :]))[0]


def test_a_clear_winner_keeps_its_rank() -> None:
    labels = (np.arange(200) % 2).astype(np.float64)
    shares = rank_stability(kinds.get("binary-probability"), {
        "strong": _probability(labels, 0.05, 1),
        "middle": _probability(labels, 0.4, 2),
        "weak": _probability(labels, 1.5, 3),
    }, resamples=300)
    assert shares["strong"] >= 0.99
    assert all(0.0 <= v <= 1.0 for v in shares.values())


def test_close_teams_are_unstable_and_identical_teams_share() -> None:
    truth = np.random.default_rng(5).uniform(0, 8, 120)
    close_a = _regression(truth, 1.00, 11)
    close_b = _regression(truth, 1.01, 12)
    teams = {"a": close_a, "b": close_b, "twin": close_a, "far": _regression(truth, 3.0, 13)}
    shares = rank_stability(kinds.get("regression"), teams, resamples=400)
    assert shares["far"] == 1.0
    # a and its twin are always tied, and the tie shares the rank: each holds it every time
    # exactly when b is never ahead; b is close enough to be ahead sometimes.
    assert shares["a"] == shares["twin"]
    assert 0.05 < shares["b"] < 0.95

    twins = rank_stability(kinds.get("segmentation-surface"), {
        "x": _segmentation(50, 0.9, 300, 1), "y": _segmentation(50, 0.9, 300, 1),
    }, resamples=200)
    assert twins == {"x": 1.0, "y": 1.0}


def test_deterministic_for_a_seed() -> None:
    labels = (np.arange(80) % 3 == 0).astype(np.float64)
    teams = {f"t{k}": _probability(labels, 0.3 + 0.02 * k, k) for k in range(5)}
    auc = kinds.get("binary-probability")
    first = rank_stability(auc, teams, resamples=200, seed=2019)
    assert first == rank_stability(auc, teams, resamples=200, seed=2019)
    assert first != rank_stability(auc, teams, resamples=200, seed=1)


def test_segmentation_ranks_on_the_sum_of_ranks() -> None:
    # "dice" is best on Dice and worst on surfaces, "mse" the reverse, "both" second on both:
    # every sum of ranks is 4, and the tie goes to the higher Dice on every resample.
    shares = rank_stability(kinds.get("segmentation-surface"), {
        "dice": _segmentation(300, 0.96, 900, 1),
        "both": _segmentation(300, 0.93, 400, 2),
        "mse": _segmentation(300, 0.90, 50, 3),
    }, resamples=200)
    assert shares["dice"] >= 0.95 and shares["mse"] >= 0.95 and shares["both"] >= 0.95


def test_refuses_details_of_other_exams() -> None:
    truth = np.arange(10.0)
    other = _regression(truth, 1, 2)
    other["ids"] = other["ids"][::-1]
    with pytest.raises(ValueError, match="same exams"):
        rank_stability(kinds.get("regression"), {"a": _regression(truth, 1, 1), "b": other})
    with pytest.raises(ValueError, match="both classes"):
        rank_stability(kinds.get("binary-probability"),
                       {"a": _probability(np.ones(10), 0.1, 1)})
    assert rank_stability(kinds.get("regression"), {}) == {}


@pytest.mark.parametrize("kind", ["binary-probability", "regression", "segmentation-surface"])
def test_a_full_board_of_eight_teams_and_500_exams(kind: str) -> None:
    n = 500
    labels = (np.arange(n) % 2).astype(np.float64)
    truth = np.random.default_rng(0).uniform(0, 8, n)
    teams: dict[str, dict[str, Any]] = {}
    for k in range(8):
        if kind == "binary-probability":
            teams[f"team {k}"] = _probability(labels, 0.3 + 0.05 * k, k)
        elif kind == "regression":
            teams[f"team {k}"] = _regression(truth, 1 + 0.1 * k, k)
        else:
            teams[f"team {k}"] = _segmentation(n, 0.95 - 0.005 * k, 200 + 50 * k, k)
    shares = rank_stability(kinds.get(kind), teams, resamples=1000)
    assert len(shares) == 8 and all(0.0 <= share <= 1.0 for share in shares.values())


def test_a_declared_ranking_is_bootstrapped_with_the_metrics_it_needs() -> None:
    """EDSS declared as the sum of the ranks on MSE and MAE: the kind's resample gives the MSE,
    the MAE is the mean of the drawn exams' absolute errors; the shares are those of ranking
    each draw's plain means."""
    from datetime import UTC, datetime

    from server.deliberation.stability import RESAMPLES, SEED
    from server.ranking import Entry, Scored

    regression = kinds.get("regression")
    declared = regression.with_ranking(regression.ranking_from(
        {"scheme": "sum-of-ranks", "metrics": ["mse", "mae"], "tie_break": "mae"}))
    truth = np.linspace(0, 9, 20)
    teams = {t: _regression(truth, sd, n) for n, (t, sd) in enumerate(
        (("a", 0.6), ("b", 0.8), ("c", 1.5)))}
    shares = rank_stability(declared, teams, resamples=200)
    errors = {t: np.array(d["predicted"]) - truth for t, d in teams.items()}
    draws = np.random.default_rng(SEED).integers(0, 20, size=(200, 20))
    assert RESAMPLES == 1000

    def board(rows: np.ndarray) -> dict[str, int | None]:
        at = datetime(2019, 10, 13, tzinfo=UTC)
        entries = [Entry(t, Scored(k, t, at, {"mse": float(np.mean(e[rows] ** 2)),
                                              "mae": float(np.mean(np.abs(e[rows])))}))
                   for k, (t, e) in enumerate(errors.items())]
        return {r.team: r.rank for r in declared.rank(entries)}

    reference = board(np.arange(20))
    held = {t: float(np.mean([board(r)[t] == reference[t] for r in draws])) for t in teams}
    assert shares == pytest.approx(held)
