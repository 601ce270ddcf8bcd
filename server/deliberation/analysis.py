"""The jury's ranking analysis of one challenge, as challengeR draws it (Wiesenfarth et al.,
Sci Rep 2021): is the ranking robust, or are the teams too close to call? docs/ranking.md.

- **Rank distributions**: the challenge's ranking on 1,000 seeded bootstrap draws of the exams
  (the draws of server/deliberation/stability.py): per team the median rank and the 95 %
  interval (2.5th and 97.5th percentiles), drawn as a blob plot.
- **Significance map**: every pair of teams compared with a one-sided Wilcoxon signed-rank
  test on the per-exam values of the ranking's primary metric (only for metrics with per-exam
  values), at the ranking's `alpha` (0.05 unless a test-then-rank declares another, with its
  `adjust`).
- **Schemes side by side**: the ranking under every applicable scheme (sum of ranks over the
  board metrics, aggregate-then-rank on each board metric, rank-then-aggregate and
  test-then-rank where per-exam values exist, and the challenge's own), with Kendall's τ-b
  between each pair of schemes over the ranked teams.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from server import kinds
from server.deliberation.stability import RESAMPLES, SEED, challenge_bootstrap
from server.kinds import Kind
from server.ranking import (
    ALPHA,
    Entry,
    RankingRule,
    Row,
    Scored,
    case_matrix,
    pairwise_p_values,
)
from server.results import ChallengeResults
from server.significance import kendall_tau


@dataclass(frozen=True)
class RankDistribution:
    """A team's ranks over the bootstrap: `shares[rank]` is the share of draws with it."""

    team: str
    rank: int
    median: float
    low: float
    high: float
    shares: dict[int, float]


@dataclass(frozen=True)
class SignificanceMap:
    """p[i][j]: the p-value of "team i is better than team j" (None on the diagonal); the
    teams in board order."""

    metric: str
    label: str
    alpha: float
    adjust: str
    teams: tuple[str, ...]
    p: tuple[tuple[float | None, ...], ...]

    def significant(self, i: int, j: int) -> bool:
        value = self.p[i][j]
        return value is not None and value < self.alpha


@dataclass(frozen=True)
class SchemeRanking:
    """The board under one scheme: each ranked team's rank and score."""

    name: str                     # "rank-then-aggregate (Dice, MSE)"
    scheme: str
    declaration: dict[str, Any]
    current: bool                 # the challenge's own ranking
    describe: str
    ranks: dict[str, int]
    scores: dict[str, float]


@dataclass(frozen=True)
class RankingAnalysis:
    slug: str
    teams: tuple[str, ...]        # the ranked teams, in board order
    ranking: str                  # the challenge's rule, in words
    distributions: tuple[RankDistribution, ...]
    draws: int
    significance: SignificanceMap | None
    schemes: tuple[SchemeRanking, ...]
    taus: tuple[tuple[str, str, float | None], ...]

    def only(self, teams: Collection[str], *, taus: bool) -> RankingAnalysis:
        """The analysis of `teams` only (the reveal shows the places revealed so far), Kendall's
        τ (which speaks of every team) only with `taus`."""
        keep = [t for t in self.teams if t in teams]
        significance = self.significance
        if significance is not None:
            index = [significance.teams.index(t) for t in keep]
            significance = SignificanceMap(
                significance.metric, significance.label, significance.alpha,
                significance.adjust, tuple(keep),
                tuple(tuple(significance.p[i][j] for j in index) for i in index))
        return RankingAnalysis(
            self.slug, tuple(keep), self.ranking,
            tuple(d for d in self.distributions if d.team in teams), self.draws,
            significance if keep else None,
            tuple(SchemeRanking(s.name, s.scheme, s.declaration, s.current, s.describe,
                                {t: r for t, r in s.ranks.items() if t in teams},
                                {t: v for t, v in s.scores.items() if t in teams})
                  for s in self.schemes),
            self.taus if taus else ())

    def to_json(self) -> dict[str, Any]:
        return {
            "teams": list(self.teams), "ranking": self.ranking, "draws": self.draws,
            "distributions": [{"team": d.team, "rank": d.rank, "median": d.median,
                               "low": d.low, "high": d.high,
                               "shares": {str(k): v for k, v in d.shares.items()}}
                              for d in self.distributions],
            "significance": None if self.significance is None else {
                "metric": self.significance.metric, "label": self.significance.label,
                "alpha": self.significance.alpha, "adjust": self.significance.adjust,
                "teams": list(self.significance.teams),
                "p": [list(row) for row in self.significance.p]},
            "schemes": [{"name": s.name, "scheme": s.scheme, "current": s.current,
                         "describe": s.describe, "ranks": s.ranks, "scores": s.scores}
                        for s in self.schemes],
            "taus": [{"a": a, "b": b, "tau": tau} for a, b, tau in self.taus],
        }


def ranking_analysis(challenge: ChallengeResults, rows: Sequence[Row], *,
                     resamples: int = RESAMPLES, seed: int = SEED) -> RankingAnalysis | None:
    """The analysis of a challenge's final board (`rows`, as final_boards gives them); None
    when no team is ranked. Parts without the data they need (details, per-exam values, a
    kind's bootstrap) are left out."""
    ranked = [r for r in rows if r.valid]
    if not ranked:
        return None
    kind = kinds.of(challenge)
    details = challenge.counted_details(rows)
    teams = tuple(r.team for r in ranked)
    boot = challenge_bootstrap(kind, challenge.slug, list(rows), details,
                               resamples=resamples, seed=seed)
    distributions: list[RankDistribution] = []
    if boot is not None:
        for k, team in enumerate(boot.teams):
            drawn = boot.ranks[:, k]
            values, counts = np.unique(drawn, return_counts=True)
            distributions.append(RankDistribution(
                team, boot.reference[team], float(np.median(drawn)),
                float(np.percentile(drawn, 2.5)), float(np.percentile(drawn, 97.5)),
                {int(v): float(c) / len(drawn) for v, c in zip(values, counts, strict=True)}))
        order = {team: n for n, team in enumerate(teams)}
        distributions.sort(key=lambda d: order.get(d.team, len(order)))
    entries = _entries(kind, ranked, details)
    schemes = _schemes(kind, entries)
    taus = tuple((a.name, b.name, kendall_tau([a.ranks[t] for t in teams],
                                              [b.ranks[t] for t in teams]))
                 for n, a in enumerate(schemes) for b in schemes[n + 1:])
    return RankingAnalysis(
        challenge.slug, teams, kind.ranking.describe(_metrics(kind)), tuple(distributions),
        boot.usable if boot is not None else 0, significance_map(kind, entries), schemes, taus)


def significance_map(kind: Kind, entries: Sequence[Entry]) -> SignificanceMap | None:
    """The pairwise tests on the ranking's primary metric, if it has per-exam values and
    every team's counted submission has them."""
    metric = kind.primary
    if metric.key not in kind.case_metrics or len(entries) < 2:
        return None
    cases = [e.counted.cases if e.counted is not None else None for e in entries]
    if any(c is None for c in cases):
        return None
    declared = kind.ranking.declaration()
    alpha = float(declared.get("alpha", ALPHA))
    adjust = str(declared.get("adjust", "none"))
    missing = declared.get("missing", {}).get(metric.key)
    values = case_matrix(cases, metric.key, metric.higher_is_better, missing)
    p = pairwise_p_values(values, metric.higher_is_better, adjust)
    return SignificanceMap(
        metric.key, metric.label, alpha, adjust, tuple(e.team for e in entries),
        tuple(tuple(None if i == j else float(p[i, j]) for j in range(len(entries)))
              for i in range(len(entries))))


def _metrics(kind: Kind) -> dict[str, Any]:
    return {m.key: m for m in kind.metrics}


def _entries(kind: Kind, ranked: Sequence[Row], details: Mapping[str, Any]) -> list[Entry]:
    """The ranked teams' counted submissions, with their per-exam values when stored."""
    out = []
    for row in ranked:
        assert row.submission_id is not None and row.received_at is not None
        out.append(Entry(row.team, Scored(row.submission_id, row.team, row.received_at,
                                          dict(row.metrics or {}),
                                          kind.case_values(details.get(row.team))),
                         row.submissions))
    return out


def candidate_rules(kind: Kind, per_case: bool) -> list[RankingRule]:
    """The schemes the jury compares: the challenge's own first, then the sum of ranks over
    the board metrics, aggregate-then-rank on each, and (with per-exam values) rank-then-
    aggregate over the board's per-exam metrics and test-then-rank on each of them."""
    board = list(kind.board)
    on_cases = [m for m in board if m in kind.case_metrics] if per_case else []
    primary = kind.primary.key
    alpha = kind.ranking.declaration().get("alpha", ALPHA)
    declarations: list[dict[str, Any]] = []
    if len(board) > 1:
        declarations.append({"scheme": "sum-of-ranks", "metrics": board,
                             "tie_break": primary if primary in board else board[0]})
    declarations += [{"scheme": "aggregate-then-rank", "metrics": [m]} for m in board]
    if on_cases:
        declarations.append({"scheme": "rank-then-aggregate", "metrics": on_cases})
        declarations += [{"scheme": "test-then-rank", "metrics": [m], "alpha": alpha}
                         for m in on_cases]
    rules = [kind.ranking]
    for declaration in declarations:
        rule = kind.ranking_from(declaration)
        if rule.declaration() != kind.ranking.declaration():
            rules.append(rule)
    return rules


def _schemes(kind: Kind, entries: Sequence[Entry]) -> tuple[SchemeRanking, ...]:
    per_case = all(e.counted is not None and e.counted.cases is not None for e in entries)
    metrics = _metrics(kind)
    out = []
    for rule in candidate_rules(kind, per_case):
        if rule.case_metrics() and not per_case:
            continue  # the challenge's own per-case rule, without per-exam values stored
        rows = rule.rank(entries)
        names = ", ".join(metrics[m].short for m in rule.metrics())
        out.append(SchemeRanking(
            f"{rule.scheme} ({names})", rule.scheme, rule.declaration(),
            rule is kind.ranking, rule.describe(metrics),
            {r.team: r.rank for r in rows if r.rank is not None},
            {r.team: float(r.score) for r in rows if r.score is not None}))
    return tuple(out)


def analysis_plots(analysis: RankingAnalysis | None, colours: Mapping[str, str]
                   ) -> dict[str, str]:
    """The blob plot and the significance map of an analysis, by name (what it has)."""
    from server.deliberation.plots import rank_distribution_svg, significance_svg
    if analysis is None:
        return {}
    plots = {}
    if analysis.distributions:
        plots["rank-distribution"] = rank_distribution_svg(
            analysis.distributions, analysis.draws, colours, analysis.ranking)
    if analysis.significance is not None and len(analysis.significance.teams) > 1:
        s = analysis.significance
        plots["significance"] = significance_svg(s.teams, s.p, s.alpha, s.label, s.adjust,
                                                 colours)
    return plots
