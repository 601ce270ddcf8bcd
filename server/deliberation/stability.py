"""Rank stability: how often each team keeps its rank when the test exams are resampled.

A bootstrap over exams: draw the exam indices with replacement, recompute every team's metric
on the same draw from its per-exam details (see `server.evaluators.Result.details`), re-rank
with the challenge kind's ranking, and count how often each team holds the rank it has on the full
data. A share near 1 means the rank is solid; two teams near 0.5 are too close to call.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from server import kinds
from server.kinds import Kind
from server.ranking import Entry, Row, Scored
from server.results import EventResults

Details = Mapping[str, Any]
Floats = npt.NDArray[np.float64]

RESAMPLES = 1000
SEED = 2019
_EPOCH = datetime(2019, 10, 13, tzinfo=UTC)


def rank_stability(kind: Kind, counts_details: Mapping[str, Details], *,
                   resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, float]:
    """Per team, the share of bootstrap resamples in which it holds its full-data rank.

    `counts_details[team]` is the details of the team's counted submission; every team's
    details must list the same exam ids in the same order (the truth's). For AUC, a resample
    with a single class has no AUC and is skipped.
    """
    teams = list(counts_details)
    if not teams:
        return {}
    ids = list(counts_details[teams[0]]["ids"])
    for team in teams[1:]:
        if list(counts_details[team]["ids"]) != ids:
            raise ValueError(f"details of {team!r} do not list the same exams as {teams[0]!r}")
    n = len(ids)
    if n == 0:
        raise ValueError("details list no exams")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))

    if kind.resample is None:
        raise ValueError(f"kind {kind.name} offers no bootstrap")
    full = kind.resample(counts_details, teams, np.arange(n)[np.newaxis, :])
    if not all(np.isfinite(v).all() for v in full.values()):
        raise ValueError("the full data gives no metric (an AUC needs both classes)")
    reference = _ranks(kind, teams, full)[0]
    if reference is None:  # pragma: no cover - full metrics were checked finite above
        raise ValueError("the full data gives no ranking")
    sampled = kind.resample(counts_details, teams, draws)
    kept = np.zeros(len(teams), dtype=np.int64)
    usable = 0
    for ranks in _ranks(kind, teams, sampled):
        if ranks is None:
            continue
        usable += 1
        kept += np.array([ranks[t] == reference[t] for t in teams], dtype=np.int64)
    if usable == 0:
        raise ValueError("no resample had both classes; too few exams for a bootstrap")
    return {team: float(kept[k]) / usable for k, team in enumerate(teams)}


def _ranks(kind: Kind, teams: list[str],
           metrics: dict[str, Floats]) -> list[dict[str, int | None] | None]:
    """The rank of each team on each draw, by the one ranking function; None for a draw
    without a metric (an AUC on a single class)."""
    draws = next(iter(metrics.values())).shape[0]
    out: list[dict[str, int | None] | None] = []
    for r in range(draws):
        values = {name: array[r] for name, array in metrics.items()}
        if not all(np.isfinite(v).all() for v in values.values()):
            out.append(None)
            continue
        entries = [Entry(team, Scored(k, team, _EPOCH,
                                      {name: float(v[k]) for name, v in values.items()}))
                   for k, team in enumerate(teams)]
        out.append({row.team: row.rank for row in kind.rank(entries)})
    return out


def stability_by_challenge(results: EventResults, boards: Mapping[str, list[Row]], *,
                           resamples: int = RESAMPLES,
                           seed: int = SEED) -> dict[str, dict[str, float]]:
    """`rank_stability` of every challenge whose counted submissions all carry details."""
    out: dict[str, dict[str, float]] = {}
    for challenge in results.challenges:
        rows = boards.get(challenge.slug, [])
        details = challenge.counted_details(rows)
        ranked = [r for r in rows if r.valid]
        if not ranked or len(details) != len(ranked):
            continue  # a counted submission scored before details were kept: no bootstrap
        try:
            out[challenge.slug] = rank_stability(kinds.get(challenge.kind), details,
                                                 resamples=resamples, seed=seed)
        except ValueError:
            continue
    return out
