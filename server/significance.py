"""The statistics the ranking schemes and the jury's analysis rest on, pure numpy (imported
only by the code that needs it, so that importing a kind stays cheap).

- `signed_rank_greater(d)`: the one-sided Wilcoxon signed-rank test of "the differences `d`
  are shifted above zero", row by row of a 2-D array. Zero differences are dropped
  (Wilcoxon's own rule, scipy's `zero_method="wilcox"` and R's `wilcox.test`); absolute
  differences that tie get their mean rank. Without ties among what is left, and at most
  `EXACT_UP_TO` of them, the p-value is exact (the null distribution of W+ counted over every
  sign pattern); otherwise it is the normal approximation with the tie correction of the
  variance and no continuity correction. A row with no non-zero difference has p = 1. These
  are scipy.stats.wilcoxon(d, alternative="greater") with method="exact" and
  method="asymptotic" (correction=False) respectively.
- `holm(p)`: Holm's step-down adjustment of a family of p-values.
- `kendall_tau(x, y)`: Kendall's τ-b (ties in either ranking accounted for, as
  scipy.stats.kendalltau's default); None when one ranking is constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

EXACT_UP_TO = 50


@lru_cache(maxsize=64)
def _upper_tail(n: int) -> tuple[float, ...]:
    """P(W+ >= w) for w = 0 .. n(n+1)/2 under the null, n untied non-zero differences: the
    number of subsets of the ranks 1..n with each sum, over 2**n."""
    top = n * (n + 1) // 2
    counts = np.zeros(top + 1, dtype=np.float64)
    counts[0] = 1.0
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    tail = np.cumsum(counts[::-1])[::-1] / 2.0 ** n
    return tuple(float(v) for v in tail)


def signed_rank_greater(differences: npt.ArrayLike) -> Floats:
    """The one-sided p-value of each row of `differences` (1-D: one test)."""
    d = np.asarray(differences, dtype=np.float64)
    single = d.ndim == 1
    d = np.atleast_2d(d)
    rows, n = d.shape
    if n == 0:
        return np.ones(1 if single else rows)
    zero = d == 0
    magnitude = np.where(zero, np.inf, np.abs(d))     # zeros sort last and are left out
    order = np.argsort(magnitude, axis=1, kind="stable")
    ordered = np.take_along_axis(magnitude, order, axis=1)
    starts = np.ones_like(ordered, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = np.cumsum(starts, axis=1) - 1 + (np.arange(rows) * n)[:, np.newaxis]
    position = np.broadcast_to(np.arange(1, n + 1, dtype=np.float64), (rows, n))
    sizes = np.bincount(group.ravel(), minlength=rows * n).astype(np.float64)
    sums = np.bincount(group.ravel(), weights=position.ravel(), minlength=rows * n)
    mean_rank = np.divide(sums, sizes, out=np.zeros_like(sums), where=sizes > 0)
    ranks = np.empty_like(ordered)
    np.put_along_axis(ranks, order, mean_rank[group], axis=1)
    kept = ~zero
    count = kept.sum(axis=1)
    w_plus = np.where(kept & (d > 0), ranks, 0.0).sum(axis=1)
    # Ties among the kept differences: a group's size t adds t**3 - t (zeros are one group of
    # their own, at the end of each row, and are left out).
    finite_group = np.isfinite(ordered)
    group_sizes = np.where(starts & finite_group, sizes[group], 0.0)
    ties = (group_sizes ** 3 - group_sizes).sum(axis=1)
    mean = count * (count + 1) / 4.0
    variance = count * (count + 1) * (2 * count + 1) / 24.0 - ties / 48.0
    out = np.ones(rows)
    for r in range(rows):
        m = int(count[r])
        if m == 0 or variance[r] <= 0:
            continue
        if ties[r] == 0 and m <= EXACT_UP_TO:
            out[r] = _upper_tail(m)[int(round(w_plus[r]))]
        else:
            z = (w_plus[r] - mean[r]) / math.sqrt(variance[r])
            out[r] = 0.5 * math.erfc(z / math.sqrt(2.0))
    return out[:1] if single else out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's adjusted p-values, in the order given: the k-th smallest of m is multiplied by
    m - k + 1, kept monotone, capped at 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p_values[i]))
        adjusted[i] = running
    return adjusted


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's τ-b of two rankings of the same items (ranks or scores: only the order of
    each counts); None when either has no two distinct values."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("both rankings must rank the same items")
    upper = np.triu_indices(len(a), k=1)
    da = np.sign(a[:, None] - a[None, :])[upper]
    db = np.sign(b[:, None] - b[None, :])[upper]
    untied_a = float(np.count_nonzero(da))
    untied_b = float(np.count_nonzero(db))
    if untied_a == 0 or untied_b == 0:
        return None
    return float((da * db).sum() / math.sqrt(untied_a * untied_b))
