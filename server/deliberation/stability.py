"""Rank stability: how often each team keeps its rank when the test exams are resampled.

A bootstrap over exams: draw the exam indices with replacement, recompute every team's metric
on the same draw from its per-exam details (see `server.evaluators.Result.details`), re-rank
with `server.ranking.rank`, and count how often each team holds the rank it has on the full
data. A share near 1 means the rank is solid; two teams near 0.5 are too close to call.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from server.evaluators.probability import midranks
from server.ranking import Entry, Row, Scored, rank
from server.results import ChallengeResults, EventResults

Details = Mapping[str, Any]
Floats = npt.NDArray[np.float64]

RESAMPLES = 1000
SEED = 2019
_EPOCH = datetime(2019, 10, 13, tzinfo=UTC)


def rank_stability(kind: str, counts_details: Mapping[str, Details], *,
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

    full = _metrics(kind, counts_details, teams, np.arange(n)[np.newaxis, :])
    if not all(np.isfinite(v).all() for v in full.values()):
        raise ValueError("the full data gives no metric (an AUC needs both classes)")
    reference = _ranks(kind, teams, full)[0]
    if reference is None:  # pragma: no cover - full metrics were checked finite above
        raise ValueError("the full data gives no ranking")
    sampled = _metrics(kind, counts_details, teams, draws)
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


def _metrics(kind: str, details: Mapping[str, Details], teams: list[str],
             draws: npt.NDArray[np.int64]) -> dict[str, Floats]:
    """Per metric name, a (resamples × teams) array of the metric on each draw."""
    if kind == "segmentation-surface":
        dice = np.array([details[t]["dice"] for t in teams], dtype=np.float64)
        squared = np.array([(np.asarray(details[t]["surface_predicted"], dtype=np.float64)
                             - np.asarray(details[t]["surface_true"], dtype=np.float64)) ** 2
                            for t in teams])
        return {"dice": dice[:, draws].mean(axis=2).T,
                "surface_mse": squared[:, draws].mean(axis=2).T}
    if kind == "regression":
        squared = np.array([(np.asarray(details[t]["predicted"], dtype=np.float64)
                             - np.asarray(details[t]["truth"], dtype=np.float64)) ** 2
                            for t in teams])
        return {"mse": squared[:, draws].mean(axis=2).T}
    if kind == "binary-probability":
        labels = np.asarray(details[teams[0]]["truth"], dtype=np.float64)
        scores = np.array([details[t]["predicted"] for t in teams], dtype=np.float64)
        return {"auc": np.stack([auc_by_ranks(labels[draws], scores[k][draws])
                                 for k in range(len(teams))], axis=1)}
    raise ValueError(f"unknown challenge kind {kind!r}")


def auc_by_ranks(labels: Floats, scores: Floats) -> Floats:
    """ROC AUC of each row (Mann–Whitney with midranks, as roc_auc_score); NaN for a row
    with a single class."""
    labels = np.atleast_2d(labels)
    scores = np.atleast_2d(scores)
    ranks = midranks(scores, axis=1)
    positive = labels == 1
    n_pos = positive.sum(axis=1).astype(np.float64)
    n_neg = labels.shape[1] - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return np.asarray(auc, dtype=np.float64)


def _ranks(kind: str, teams: list[str],
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
        out.append({row.team: row.rank for row in rank(kind, entries)})
    return out


def counted_details(challenge: ChallengeResults, rows: list[Row]) -> dict[str, Details]:
    """The details of each ranked team's counted submission, in board order."""
    by_id = {s.id: s for s in challenge.submissions}
    out: dict[str, Details] = {}
    for row in rows:
        record = by_id.get(row.submission_id) if row.submission_id is not None else None
        if row.valid and record is not None and record.details is not None:
            out[row.team] = record.details
    return out


def stability_by_challenge(results: EventResults, boards: Mapping[str, list[Row]], *,
                           resamples: int = RESAMPLES,
                           seed: int = SEED) -> dict[str, dict[str, float]]:
    """`rank_stability` of every challenge whose counted submissions all carry details."""
    out: dict[str, dict[str, float]] = {}
    for challenge in results.challenges:
        rows = boards.get(challenge.slug, [])
        details = counted_details(challenge, rows)
        ranked = [r for r in rows if r.valid]
        if not ranked or len(details) != len(ranked):
            continue  # a counted submission scored before details were kept: no bootstrap
        try:
            out[challenge.slug] = rank_stability(challenge.kind, details,
                                                 resamples=resamples, seed=seed)
        except ValueError:
            continue
    return out
