"""The statistics of the ranking schemes against scipy.stats (the reference implementation):
the one-sided Wilcoxon signed-rank test, Holm's adjustment, Kendall's τ-b."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st

from server.significance import EXACT_UP_TO, holm, kendall_tau, signed_rank_greater


@pytest.mark.parametrize("n", [1, 4, 9, 25, EXACT_UP_TO])
def test_untied_differences_give_scipys_exact_p_value(n: int) -> None:
    rng = np.random.default_rng(n)
    d = rng.normal(0.2, 1.0, size=(6, n))
    ours = signed_rank_greater(d)
    for row, p in zip(d, ours, strict=True):
        reference = st.wilcoxon(row, alternative="greater", method="exact").pvalue
        assert p == pytest.approx(reference, abs=1e-12)


def test_zero_differences_are_dropped_before_the_exact_test() -> None:
    d = np.array([0.0, 1.1, 0.6, -1.0, 1.2, 0.0])
    (p,) = signed_rank_greater(d)
    assert p == pytest.approx(3 / 16)  # W+ = 8 of the ranks 1..4: {4,3,1} {4,3,2} {4,3,2,1}
    assert p == pytest.approx(st.wilcoxon(d[d != 0], alternative="greater",
                                          method="exact").pvalue, abs=1e-12)


@pytest.mark.parametrize("n", [6, 30, EXACT_UP_TO + 20])
def test_ties_or_many_differences_give_scipys_normal_approximation(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    d = np.round(rng.normal(0.1, 1.0, size=(5, n)), 1)   # coarse: ties and zeros
    d[:, 0] = 0.0
    d[:, 1] = d[:, 2] = 0.5                             # a tie, whatever the draw
    ours = signed_rank_greater(d)
    for row, p in zip(d, ours, strict=True):
        reference = st.wilcoxon(row, alternative="greater", method="asymptotic",
                                correction=False, zero_method="wilcox").pvalue
        assert p == pytest.approx(reference, abs=1e-12)


def test_large_untied_samples_use_the_normal_approximation() -> None:
    d = np.random.default_rng(5).normal(0.1, 1, size=EXACT_UP_TO + 1)
    (p,) = signed_rank_greater(d)
    reference = st.wilcoxon(d, alternative="greater", method="asymptotic",
                            correction=False).pvalue
    assert p == pytest.approx(reference, abs=1e-12)


def test_no_difference_at_all_is_never_significant() -> None:
    assert list(signed_rank_greater(np.zeros((2, 5)))) == [1.0, 1.0]
    assert list(signed_rank_greater(np.zeros((3, 0)))) == [1.0, 1.0, 1.0]


def test_holm_by_hand() -> None:
    # Sorted 0.01, 0.02, 0.03, 0.5 times 4, 3, 2, 1: 0.04, 0.06, 0.06 (kept monotone), 0.5.
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert holm([0.4, 0.6]) == pytest.approx([0.8, 0.8])
    assert holm([]) == []


@pytest.mark.parametrize(("x", "y"), [
    ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]),
    ([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]),
    ([1, 2, 2, 4, 5], [2, 1, 4, 4, 3]),        # ties in both
    ([1, 1, 3, 3, 5, 6], [1, 3, 2, 5, 4, 6]),
])
def test_kendall_tau_b_equals_scipy(x: list[int], y: list[int]) -> None:
    assert kendall_tau(x, y) == pytest.approx(st.kendalltau(x, y).statistic, abs=1e-12)


def test_kendall_tau_of_a_constant_ranking_is_undefined() -> None:
    assert kendall_tau([1, 1, 1], [1, 2, 3]) is None
    with pytest.raises(ValueError):
        kendall_tau([1, 2], [1, 2, 3])
