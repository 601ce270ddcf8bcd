"""Midranks (server/evaluators/probability.py) against scipy's rankdata, which the scorers no
longer import (it cost each scoring process most of a second at its start)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import rankdata

from server.evaluators.probability import midranks

# Few distinct values, so that ties are common.
VALUES = st.sampled_from([0.0, 0.25, 0.5, 1.0, -3.0, 7.5])


@given(arrays(np.float64, st.integers(0, 40), elements=VALUES))
def test_midranks_equal_rankdata_average(values: np.ndarray) -> None:
    np.testing.assert_array_equal(midranks(values), rankdata(values, method="average"))


@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 12)), elements=VALUES))
def test_midranks_along_an_axis(values: np.ndarray) -> None:
    for axis in (0, 1):
        np.testing.assert_array_equal(midranks(values, axis=axis),
                                      rankdata(values, method="average", axis=axis))


def test_a_scorer_does_not_import_scipy_stats() -> None:
    import subprocess
    import sys

    probe = ("import sys; from server.evaluators import evaluate; "
             "print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_brier_and_ece_match_scikit_learn() -> None:
    """Brier against brier_score_loss; ECE from calibration_curve's own bins (uniform, ten),
    each weighted by its count: the counts come from the bin edges calibration_curve uses."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    from server.evaluators.probability import probability_metrics

    rng = np.random.default_rng(2019)
    for trial in range(20):
        n = int(rng.integers(20, 400))
        labels = (rng.random(n) < 0.4).astype(float)
        labels[:2] = [0, 1]
        scores = np.clip(labels * 0.3 + rng.random(n) * 0.7, 0, 1)
        if trial % 4 == 0:  # values on the bin edges, and 0 and 1 themselves
            scores = np.round(scores, 1)
        metrics = probability_metrics(labels, scores)
        assert metrics["brier"] == pytest.approx(brier_score_loss(labels, scores), abs=1e-6)
        observed, predicted = calibration_curve(labels, scores, n_bins=10, strategy="uniform")
        which = np.searchsorted(np.linspace(0, 1, 11)[1:-1], scores)
        counts = np.bincount(which, minlength=10)
        counts = counts[counts > 0]
        assert len(counts) == len(observed)
        ece = float(np.sum(counts * np.abs(predicted - observed)) / n)
        assert metrics["ece"] == pytest.approx(ece, abs=1e-6)


def test_calibration_of_perfect_and_of_confidently_wrong_probabilities() -> None:
    from server.evaluators.probability import (
        brier_score,
        calibration_bins,
        expected_calibration_error,
    )

    labels = np.array([0.0, 0, 1, 1])
    assert brier_score(labels, labels) == 0.0
    assert expected_calibration_error(labels, labels) == 0.0
    wrong = 1 - labels
    assert brier_score(labels, wrong) == 1.0 and expected_calibration_error(labels, wrong) == 1.0
    # 0.1 is the upper edge of the first bin, (0.1, 0.2] the second's: as scikit-learn bins.
    counts, predicted, observed = calibration_bins(labels, np.array([0.0, 0.1, 0.15, 1.0]))
    assert counts.tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert predicted[0] == pytest.approx(0.05) and observed[1] == 1.0 and np.isnan(observed[2])
