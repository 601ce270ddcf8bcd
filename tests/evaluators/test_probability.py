"""Midranks (server/evaluators/probability.py) against scipy's rankdata, which the scorers no
longer import (it cost each scoring process most of a second at its start)."""

from __future__ import annotations

import numpy as np
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
