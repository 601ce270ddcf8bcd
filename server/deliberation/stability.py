"""Rank stability: how often each team keeps its rank when the test exams are resampled.

A bootstrap over exams: draw the exam indices with replacement, recompute every team's metric
on the same draw from its per-exam details (see `server.evaluators.Result.details`), re-rank
with the challenge's ranking (its kind's, or the one its event file declares; a per-case
scheme ranks the same draw of per-exam values), and count how often each team holds the rank
it has on the full data. A share near 1 means the rank is solid; two teams near 0.5 are too
close to call. `bootstrap_ranks` keeps every draw's ranks: the jury's rank distributions
(server/deliberation/analysis.py) are drawn from the same resamples.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Bootstrap:
    """Every team's rank on the full data and on each usable resample (draws × teams)."""

    teams: tuple[str, ...]
    reference: dict[str, int]
    ranks: npt.NDArray[np.int64]

    @property
    def usable(self) -> int:
        return int(self.ranks.shape[0])


def bootstrap_ranks(kind: Kind, counts_details: Mapping[str, Details], *,
                    resamples: int = RESAMPLES, seed: int = SEED) -> Bootstrap:
    """The ranks of each team on the full data and on `resamples` bootstrap draws of the
    exams (seeded), by `kind`'s ranking.

    `counts_details[team]` is the details of the team's counted submission; every team's
    details must list the same exam ids in the same order (the truth's). For AUC, a resample
    with a single class has no AUC and is skipped.
    """
    teams = list(counts_details)
    if not teams:
        raise ValueError("no team to rank")
    ids = list(counts_details[teams[0]]["ids"])
    for team in teams[1:]:
        if list(counts_details[team]["ids"]) != ids:
            raise ValueError(f"details of {team!r} do not list the same exams as {teams[0]!r}")
    n = len(ids)
    if n == 0:
        raise ValueError("details list no exams")
    if kind.resample is None:
        raise ValueError(f"kind {kind.name} offers no bootstrap")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))

    # A metric the ranking needs that the kind's resample does not give (an MAE beside the
    # MSE) is the mean of its per-exam values on the draw; one without them has no bootstrap.
    needed = set(kind.ranking.metrics())
    cases = _cases(kind, counts_details, teams, needed)
    identity = np.arange(n)[np.newaxis, :]

    def metrics_on(rows: npt.NDArray[np.int64]) -> dict[str, Floats]:
        assert kind.resample is not None
        out = kind.resample(counts_details, teams, rows)
        for key in sorted(needed - set(out)):
            if cases is None or key not in cases:
                raise ValueError(f"kind {kind.name} cannot resample {key}")
            with np.errstate(all="ignore"):
                out[key] = np.nanmean(cases[key][:, rows], axis=2).T
        return out

    full = metrics_on(identity)
    if not all(np.isfinite(v).all() for v in full.values()):
        raise ValueError("the full data gives no metric (an AUC needs both classes)")
    ranking_cases = None if cases is None else {
        k: v for k, v in cases.items() if k in kind.ranking.case_metrics()} or None
    reference = _ranks(kind, teams, full, ranking_cases, identity)[0]
    if reference is None:  # pragma: no cover - full metrics were checked finite above
        raise ValueError("the full data gives no ranking")
    sampled = metrics_on(draws)
    kept = [r for r in _ranks(kind, teams, sampled, ranking_cases, draws) if r is not None]
    if not kept:
        raise ValueError("no resample had both classes; too few exams for a bootstrap")
    ranks = np.array([[r[t] for t in teams] for r in kept], dtype=np.int64)
    return Bootstrap(tuple(teams), reference, ranks)


def rank_stability(kind: Kind, counts_details: Mapping[str, Details], *,
                   resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, float]:
    """Per team, the share of bootstrap resamples in which it holds its full-data rank."""
    if not counts_details:
        return {}
    boot = bootstrap_ranks(kind, counts_details, resamples=resamples, seed=seed)
    return {team: float(np.mean(boot.ranks[:, k] == boot.reference[team]))
            for k, team in enumerate(boot.teams)}


def _cases(kind: Kind, details: Mapping[str, Details], teams: list[str], needed: set[str]
           ) -> dict[str, Floats] | None:
    """Per metric the ranking ranks per exam, or needs and has per-exam values of, teams ×
    exams (NaN where an exam has no value, which the ranking replaces by its declared worst
    value)."""
    keys = sorted(set(kind.ranking.case_metrics()) | (needed & set(kind.case_metrics)))
    if not keys:
        return None
    values = [kind.case_values(details[t]) or {} for t in teams]
    return {key: np.array([[np.nan if v is None else float(v) for v in c.get(key, ())]
                           for c in values], dtype=np.float64) for key in keys}


def _ranks(kind: Kind, teams: list[str], metrics: dict[str, Floats],
           cases: dict[str, Floats] | None, draws: npt.NDArray[np.int64]
           ) -> list[dict[str, int] | None]:
    """The rank of each team on each draw, by the one ranking function; None for a draw
    without a metric (an AUC on a single class)."""
    count = next(iter(metrics.values())).shape[0]
    out: list[dict[str, int] | None] = []
    for r in range(count):
        values = {name: array[r] for name, array in metrics.items()}
        if not all(np.isfinite(v).all() for v in values.values()):
            out.append(None)
            continue
        drawn = None if cases is None else {key: m[:, draws[r]] for key, m in cases.items()}
        entries = [Entry(team, Scored(k, team, _EPOCH,
                                      {name: float(v[k]) for name, v in values.items()},
                                      None if drawn is None
                                      else {key: m[k] for key, m in drawn.items()}))
                   for k, team in enumerate(teams)]
        out.append({row.team: row.rank or 0 for row in kind.rank(entries)})
    return out


# The last bootstraps computed, by challenge, ranking and counted submissions: the jury's
# page asks again after every change of the board, the workbook right after the page.
_CACHE: OrderedDict[tuple[Any, ...], Bootstrap | None] = OrderedDict()
_CACHE_SIZE = 16
_CACHE_LOCK = threading.Lock()   # the analysis runs in threads (asyncio.to_thread)


def challenge_bootstrap(kind: Kind, slug: str, rows: list[Row],
                        details: Mapping[str, Details], *, resamples: int = RESAMPLES,
                        seed: int = SEED) -> Bootstrap | None:
    """The bootstrap of one challenge's final board, None when it has none (no details, no
    bootstrap for its kind, too few exams). Cached by its counted submissions."""
    ranked = [r for r in rows if r.valid]
    if not ranked or len(details) != len(ranked):
        return None  # a counted submission scored before details were kept: no bootstrap
    fingerprint = hashlib.sha256(json.dumps(details, sort_keys=True, default=str).encode())
    key = (slug, kind.name, repr(kind.ranking), resamples, seed, fingerprint.hexdigest(),
           tuple((r.team, r.submission_id) for r in ranked))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    try:
        boot: Bootstrap | None = bootstrap_ranks(kind, details, resamples=resamples, seed=seed)
    except ValueError:
        boot = None
    with _CACHE_LOCK:
        _CACHE[key] = boot
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return boot


def stability_by_challenge(results: EventResults, boards: Mapping[str, list[Row]], *,
                           resamples: int = RESAMPLES,
                           seed: int = SEED) -> dict[str, dict[str, float]]:
    """`rank_stability` of every challenge whose counted submissions all carry details."""
    out: dict[str, dict[str, float]] = {}
    for challenge in results.challenges:
        rows = boards.get(challenge.slug, [])
        boot = challenge_bootstrap(kinds.of(challenge), challenge.slug, rows,
                                   challenge.counted_details(rows), resamples=resamples,
                                   seed=seed)
        if boot is not None:
            out[challenge.slug] = {
                team: float(np.mean(boot.ranks[:, k] == boot.reference[team]))
                for k, team in enumerate(boot.teams)}
    return out
