"""Ranking: pure functions and rules, one of them per challenge (its kind's, see
server/kinds/, or the one its event file declares: `from_declaration`), used by the live board,
the workbook, rescoring and the bootstrap alike. docs/ranking.md says each scheme in the jury's
words.

- `SumOfRanks` (`sum-of-ranks`): rank teams on each metric with competition ranking (1, 2, 2,
  4); the score is the sum of the ranks, lowest wins; equal scores are split by the tie-break
  metric; teams equal on both share a rank (the seed's sarcopenia rule, over Dice and surface
  MSE).
- `ByMetric` (`aggregate-then-rank`): the score is one metric (a mean, or a whole-set figure
  such as the AUC); the better value wins; equal values are split by the further metrics in
  order, if any; teams equal on all share a rank.
- `RankThenAggregate` (`rank-then-aggregate`): teams ranked on each exam (competition ranking
  of the per-exam values); the score is the mean of a team's per-exam ranks (averaged over the
  metrics when there are several), lowest wins; equal scores go to the better tie-break metric.
- `TestThenRank` (`test-then-rank`): each pair of teams compared with a one-sided Wilcoxon
  signed-rank test on the per-exam values (server/significance.py); the score is the number of
  teams a team is significantly better than at `alpha`, highest wins; equal scores share a rank
  (or go to the better tie-break metric, if one is declared).
Teams without a valid submission come last, unranked. The per-case schemes read
`Scored.cases`; an exam without a value (None), or a team whose counted submission has no
per-exam values, gets the declared `missing` value, by default the worst value any team has on
that metric.

A team's counted submission is its last valid one (`counts = "last"`) or its best
(`counts = "best"`): the better value of an aggregate rule's metric; for the other schemes,
which depend on the other teams, the better primary metric, then the others in order.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from server.isotime import iso

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from server.kinds.base import Metric

    Floats = npt.NDArray[np.float64]

SCHEMES = ("sum-of-ranks", "aggregate-then-rank", "rank-then-aggregate", "test-then-rank")
PER_CASE_SCHEMES = ("rank-then-aggregate", "test-then-rank")
ALPHA = 0.05
ADJUSTMENTS = ("none", "holm")
DECLARATION_KEYS = ("scheme", "metrics", "tie_break", "alpha", "adjust", "missing")

# Per-exam values of a submission: metric -> one value per exam (in the truth's order), None
# where an exam has no value.
Cases = Mapping[str, Sequence[float | None]]


@dataclass(frozen=True)
class Scored:
    """One valid (scored) submission."""

    id: int
    team: str
    received_at: datetime
    metrics: dict[str, float]
    # Per-exam values (the kind's `cases` of the stored details), loaded only for a rule that
    # ranks on them (`needs_cases`); None when not loaded or not stored.
    cases: Cases | None = None


@dataclass(frozen=True)
class Entry:
    """A team on the board: its counted submission (None if it has no valid one)."""

    team: str
    counted: Scored | None
    submissions: int = 0


@dataclass(frozen=True)
class Row:
    rank: int | None
    team: str
    metrics: dict[str, float] | None
    score: float | None
    submission_id: int | None
    received_at: datetime | None
    submissions: int
    ranks: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.rank is not None

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "team": self.team, "metrics": self.metrics,
                "score": self.score, "submission_id": self.submission_id,
                "received_at": iso(self.received_at), "submissions": self.submissions,
                "valid": self.valid, **({"ranks": self.ranks} if self.ranks else {})}


class RankingRule(Protocol):
    """How a challenge orders its teams. `primary` is the metric a team's progress is
    followed on; `case_metrics` those ranked exam by exam (what `Scored.cases` must hold);
    `declaration` the rule as an event file declares it (`from_declaration` gives it back)."""

    @property
    def scheme(self) -> str: ...
    @property
    def primary(self) -> str: ...
    def metrics(self) -> tuple[str, ...]: ...
    def case_metrics(self) -> tuple[str, ...]: ...
    def declaration(self) -> dict[str, Any]: ...
    def rank(self, entries: Iterable[Entry]) -> list[Row]: ...
    def best(self, scored: Sequence[Scored]) -> Scored: ...
    def rank_columns(self) -> tuple[str, ...]: ...
    def score_is_own_column(self) -> bool: ...
    def score_label(self, metrics: Mapping[str, Metric]) -> str: ...
    def score_format(self, metrics: Mapping[str, Metric]) -> str: ...
    def score_digits(self, metrics: Mapping[str, Metric]) -> int: ...
    def tie_rule(self, metrics: Mapping[str, Metric]) -> str | None: ...
    def describe(self, metrics: Mapping[str, Metric]) -> str: ...
    def best_words(self, metrics: Mapping[str, Metric]) -> str: ...


def competition_ranks(values: Sequence[float], *, higher_is_better: bool) -> list[int]:
    """1, 2, 2, 4: a value's rank is one plus the number of strictly better values."""
    def better(a: float, b: float) -> bool:
        return a > b if higher_is_better else a < b
    return [1 + sum(1 for other in values if better(other, v)) for v in values]


def _signed(value: float, higher_is_better: bool) -> float:
    return value if higher_is_better else -value


def _wins(higher_is_better: bool) -> str:
    return "higher" if higher_is_better else "lower"


def _better_first(keys: Sequence[tuple[float, ...]]) -> list[int]:
    """Competition ranks of sort keys, smaller key better: one plus the strictly better."""
    return [1 + sum(1 for other in keys if other < key) for key in keys]


def _words(on: Sequence[tuple[str, bool]], metrics: Mapping[str, Metric]) -> str:
    return ", then ".join(f"the {_wins(h)} {metrics[k].label}" for k, h in on)


@dataclass(frozen=True)
class ByMetric:
    """aggregate-then-rank: the score is `metric` (its stored value: a mean over exams, or a
    whole-set figure such as the AUC); the better value wins; equal values go to the better
    of `then` in order; teams equal on all share a rank."""

    metric: str
    higher_is_better: bool
    then: tuple[tuple[str, bool], ...] = ()

    @property
    def scheme(self) -> str:
        return "aggregate-then-rank"

    @property
    def primary(self) -> str:
        return self.metric

    def metrics(self) -> tuple[str, ...]:
        return (self.metric, *(key for key, _ in self.then))

    def case_metrics(self) -> tuple[str, ...]:
        return ()

    def _order(self) -> tuple[tuple[str, bool], ...]:
        return ((self.metric, self.higher_is_better), *self.then)

    def declaration(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "metrics": list(self.metrics())}

    def rank(self, entries: Iterable[Entry]) -> list[Row]:
        valid, invalid = _split(entries)
        keys = [tuple(-_signed(_counted(e).metrics[k], h) for k, h in self._order())
                for e in valid]
        ranks = _better_first(keys)
        rows = [_row(e, r, _counted(e).metrics[self.metric], {})
                for e, r in zip(valid, ranks, strict=True)]
        return _ordered(rows, invalid)

    def best(self, scored: Sequence[Scored]) -> Scored:
        return _best(scored, self._order())

    def rank_columns(self) -> tuple[str, ...]:
        return ()

    def score_is_own_column(self) -> bool:
        return False

    def score_label(self, metrics: Mapping[str, Metric]) -> str:
        return metrics[self.metric].short

    def score_format(self, metrics: Mapping[str, Metric]) -> str:
        return metrics[self.metric].number_format

    def score_digits(self, metrics: Mapping[str, Metric]) -> int:
        return metrics[self.metric].digits

    def tie_rule(self, metrics: Mapping[str, Metric]) -> str | None:
        return _words(self.then, metrics) if self.then else None

    def describe(self, metrics: Mapping[str, Metric]) -> str:
        text = f"{metrics[self.metric].label}, {_wins(self.higher_is_better)} wins"
        if self.then:
            text += "; tie -> " + ", then ".join(f"{_wins(h)} {k}" for k, h in self.then)
        return text

    def best_words(self, metrics: Mapping[str, Metric]) -> str:
        return f"{'highest' if self.higher_is_better else 'lowest'} {metrics[self.metric].label}"


AggregateThenRank = ByMetric


@dataclass(frozen=True)
class SumOfRanks:
    """sum-of-ranks: the score is the sum of the team's ranks on `on` (metric, higher is
    better); lowest wins; equal sums go to the better `tie_break` (one of `on`)."""

    on: tuple[tuple[str, bool], ...]
    tie_break: str

    def __post_init__(self) -> None:
        if self.tie_break not in dict(self.on):
            raise ValueError(f"tie_break {self.tie_break!r} is not one of the ranked metrics")

    @property
    def scheme(self) -> str:
        return "sum-of-ranks"

    @property
    def primary(self) -> str:
        return self.tie_break

    def metrics(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.on)

    def case_metrics(self) -> tuple[str, ...]:
        return ()

    def declaration(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "metrics": list(self.metrics()),
                "tie_break": self.tie_break}

    def _tie_higher(self) -> bool:
        return dict(self.on)[self.tie_break]

    def rank(self, entries: Iterable[Entry]) -> list[Row]:
        valid, invalid = _split(entries)
        per_metric = {key: competition_ranks([_counted(e).metrics[key] for e in valid],
                                             higher_is_better=higher)
                      for key, higher in self.on}
        scores = [sum(ranks[k] for ranks in per_metric.values()) for k in range(len(valid))]
        # Order by score, then the tie-break; rank by the same pair so full ties share a rank.
        keys = [(s, -_signed(_counted(e).metrics[self.tie_break], self._tie_higher()))
                for s, e in zip(scores, valid, strict=True)]
        final = _better_first(keys)
        rows = [_row(e, r, float(s), {key: per_metric[key][k] for key, _ in self.on})
                for k, (e, r, s) in enumerate(zip(valid, final, scores, strict=True))]
        return _ordered(rows, invalid)

    def best(self, scored: Sequence[Scored]) -> Scored:
        return _best(scored, _primary_first(self.on, self.tie_break))

    def rank_columns(self) -> tuple[str, ...]:
        return self.metrics()

    def score_is_own_column(self) -> bool:
        return True

    def score_label(self, metrics: Mapping[str, Metric]) -> str:
        return "sum of ranks"

    def score_format(self, metrics: Mapping[str, Metric]) -> str:
        return "0"

    def score_digits(self, metrics: Mapping[str, Metric]) -> int:
        return 0

    def tie_rule(self, metrics: Mapping[str, Metric]) -> str | None:
        return f"the {_wins(self._tie_higher())} {metrics[self.tie_break].label}"

    def describe(self, metrics: Mapping[str, Metric]) -> str:
        ranks = " + ".join(f"rank({key})" for key, _ in self.on)
        return f"{ranks}, lowest wins; tie -> {_wins(self._tie_higher())} {self.tie_break}"

    def best_words(self, metrics: Mapping[str, Metric]) -> str:
        names = [metrics[key].short for key, _ in self.on]
        on = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"lowest sum of ranks of {on}, ties to {self.tie_rule(metrics)}"


@dataclass(frozen=True)
class _PerCase:
    """What the per-case schemes share: the metrics ranked exam by exam, the optional
    tie-break and the value an exam without one gets (`missing`, per metric)."""

    on: tuple[tuple[str, bool], ...]
    tie_break: str | None = None
    missing: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not self.on:
            raise ValueError("a per-case scheme ranks on at least one metric")
        if self.tie_break is not None and self.tie_break not in dict(self.on):
            raise ValueError(f"tie_break {self.tie_break!r} is not one of the ranked metrics")

    @property
    def primary(self) -> str:
        return self.tie_break or self.on[0][0]

    def metrics(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.on)

    def case_metrics(self) -> tuple[str, ...]:
        return self.metrics()

    def _declaration(self, scheme: str) -> dict[str, Any]:
        out: dict[str, Any] = {"scheme": scheme, "metrics": list(self.metrics())}
        if self.tie_break is not None:
            out["tie_break"] = self.tie_break
        if self.missing:
            out["missing"] = dict(self.missing)
        return out

    def matrix(self, valid: Sequence[Entry], key: str, higher: bool) -> Floats:
        """The per-exam values of `key`, teams × exams, each missing value replaced."""
        return case_matrix([_counted(e).cases for e in valid], key, higher,
                           dict(self.missing).get(key))

    def _keys(self, valid: Sequence[Entry], scores: Sequence[float], sign: float
              ) -> list[tuple[float, ...]]:
        """Sort keys, smaller better: the score (`sign` -1: higher wins), then the tie-break;
        scores are rounded so that equal means of ranks compare equal."""
        tie = self.tie_break
        higher = dict(self.on)[tie] if tie is not None else True
        return [(sign * round(s, 9),
                 *((-_signed(_counted(e).metrics[tie], higher),) if tie is not None else ()))
                for e, s in zip(valid, scores, strict=True)]

    def best(self, scored: Sequence[Scored]) -> Scored:
        return _best(scored, _primary_first(self.on, self.primary))

    def rank_columns(self) -> tuple[str, ...]:
        return ()

    def score_is_own_column(self) -> bool:
        return True

    def tie_rule(self, metrics: Mapping[str, Metric]) -> str | None:
        if self.tie_break is None:
            return None
        return f"the {_wins(dict(self.on)[self.tie_break])} {metrics[self.tie_break].label}"

    def _tie_words(self) -> str:
        if self.tie_break is None:
            return ""
        return f"; tie -> {_wins(dict(self.on)[self.tie_break])} {self.tie_break}"


@dataclass(frozen=True)
class RankThenAggregate(_PerCase):
    """rank-then-aggregate (challengeR's rankThenMean): on each exam the teams are ranked on
    each metric of `on` (competition ranking); a team's score is the mean of its per-exam
    ranks, averaged over the metrics; lowest wins."""

    @property
    def scheme(self) -> str:
        return "rank-then-aggregate"

    def declaration(self) -> dict[str, Any]:
        return self._declaration(self.scheme)

    def mean_ranks(self, valid: Sequence[Entry]) -> dict[str, list[float]]:
        """Per metric, each team's mean per-exam rank."""
        out: dict[str, list[float]] = {}
        for key, higher in self.on:
            values = self.matrix(valid, key, higher)
            out[key] = [float(v) for v in per_case_ranks(values, higher).mean(axis=1)] \
                if values.shape[1] else [1.0] * len(valid)
        return out

    def rank(self, entries: Iterable[Entry]) -> list[Row]:
        valid, invalid = _split(entries)
        means = self.mean_ranks(valid)
        scores = [sum(m[k] for m in means.values()) / len(self.on) for k in range(len(valid))]
        final = _better_first(self._keys(valid, scores, 1.0))
        rows = [_row(e, r, s, {}) for e, r, s in zip(valid, final, scores, strict=True)]
        return _ordered(rows, invalid)

    def score_label(self, metrics: Mapping[str, Metric]) -> str:
        return "mean rank"

    def score_format(self, metrics: Mapping[str, Metric]) -> str:
        return "0.00"

    def score_digits(self, metrics: Mapping[str, Metric]) -> int:
        return 2

    def describe(self, metrics: Mapping[str, Metric]) -> str:
        on = " and ".join(metrics[k].label for k, _ in self.on)
        return f"mean over exams of the rank on {on}, lowest wins{self._tie_words()}"

    def best_words(self, metrics: Mapping[str, Metric]) -> str:
        on = " and ".join(metrics[k].short for k, _ in self.on)
        return f"lowest mean per-exam rank on {on}"


@dataclass(frozen=True)
class TestThenRank(_PerCase):
    """test-then-rank (challengeR's testThenRank): every ordered pair of teams compared with a
    one-sided Wilcoxon signed-rank test on the per-exam values of the one metric of `on`; a
    team's score is the number of teams it is significantly better than (p < `alpha`, after
    Holm's adjustment over all pairs when `adjust` is "holm"); highest wins."""

    alpha: float = ALPHA
    adjust: str = "none"

    __test__ = False  # not a pytest class, whatever its name says

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.on) != 1:
            raise ValueError("test-then-rank tests one metric")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.adjust not in ADJUSTMENTS:
            raise ValueError(f"adjust must be one of {', '.join(ADJUSTMENTS)}")

    @property
    def scheme(self) -> str:
        return "test-then-rank"

    def declaration(self) -> dict[str, Any]:
        out = self._declaration(self.scheme)
        out["alpha"] = self.alpha
        out["adjust"] = self.adjust
        return out

    def p_values(self, valid: Sequence[Entry]) -> Floats:
        """p[i, j]: the p-value of "team i is better than team j" (NaN on the diagonal)."""
        key, higher = self.on[0]
        return pairwise_p_values(self.matrix(valid, key, higher), higher, self.adjust)

    def rank(self, entries: Iterable[Entry]) -> list[Row]:
        valid, invalid = _split(entries)
        p = self.p_values(valid)
        wins = [float(sum(1 for j in range(len(valid)) if j != i and p[i, j] < self.alpha))
                for i in range(len(valid))]
        final = _better_first(self._keys(valid, wins, -1.0))
        rows = [_row(e, r, s, {}) for e, r, s in zip(valid, final, wins, strict=True)]
        return _ordered(rows, invalid)

    def score_label(self, metrics: Mapping[str, Metric]) -> str:
        return "significant wins"

    def score_format(self, metrics: Mapping[str, Metric]) -> str:
        return "0"

    def score_digits(self, metrics: Mapping[str, Metric]) -> int:
        return 0

    def _test_words(self) -> str:
        adjusted = ", Holm-adjusted" if self.adjust == "holm" else ""
        return f"one-sided Wilcoxon signed-rank over exams, p < {self.alpha:g}{adjusted}"

    def describe(self, metrics: Mapping[str, Metric]) -> str:
        label = metrics[self.on[0][0]].label
        return (f"number of teams significantly beaten on {label} ({self._test_words()}), "
                f"highest wins{self._tie_words()}")

    def best_words(self, metrics: Mapping[str, Metric]) -> str:
        return f"most teams significantly beaten on {metrics[self.on[0][0]].short}"


def case_matrix(cases: Sequence[Cases | None], key: str, higher_is_better: bool,
                missing: float | None = None) -> Floats:
    """Teams × exams: each team's per-exam values of `key`; an exam without a value, or a team
    without per-exam values, gets `missing` (default: the worst value observed)."""
    import numpy as np
    # None (an exam without a value) reads as NaN.
    rows = [np.asarray(c.get(key, ()) if c is not None else (), dtype=np.float64)
            for c in cases]
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), np.nan, dtype=np.float64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    bad = ~np.isfinite(out)
    if bad.any():
        seen = out[~bad]
        fill = missing if missing is not None else (
            0.0 if seen.size == 0 else float(seen.min() if higher_is_better else seen.max()))
        out[bad] = fill
    return out


def per_case_ranks(values: Floats, higher_is_better: bool
                   ) -> Floats:
    """Teams × exams: each team's competition rank among the teams on each exam."""
    import numpy as np
    # better[i, j, c]: team j is strictly better than team i on exam c.
    if higher_is_better:
        better = values[np.newaxis, :, :] > values[:, np.newaxis, :]
    else:
        better = values[np.newaxis, :, :] < values[:, np.newaxis, :]
    return (1 + better.sum(axis=1)).astype(np.float64)


def pairwise_p_values(values: Floats, higher_is_better: bool,
                      adjust: str = "none") -> Floats:
    """p[i, j] of the one-sided signed-rank test "team i is better than team j" on the
    per-exam values (teams × exams); NaN on the diagonal; Holm over all ordered pairs."""
    import numpy as np

    from server.significance import holm, signed_rank_greater
    teams = values.shape[0]
    out = np.full((teams, teams), np.nan)
    pairs = [(i, j) for i in range(teams) for j in range(teams) if i != j]
    if not pairs:
        return out
    sign = 1.0 if higher_is_better else -1.0
    differences = np.array([sign * (values[i] - values[j]) for i, j in pairs])
    p = [float(v) for v in signed_rank_greater(differences)] if values.shape[1] \
        else [1.0] * len(pairs)
    if adjust == "holm":
        p = holm(p)
    for (i, j), value in zip(pairs, p, strict=True):
        out[i, j] = value
    return out


class RankingDeclarationError(ValueError):
    """A `ranking` declaration that cannot be used: `key` names the part at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def from_declaration(declaration: Mapping[str, Any], metrics: Mapping[str, Metric],
                     case_metrics: Collection[str], default: RankingRule) -> RankingRule:
    """The rule an event file declares (`ranking = {scheme = ..., ...}`), checked against the
    kind's metrics (`case_metrics`: those with per-exam values). `default` (the kind's rule)
    gives the metrics when none are named. Raises RankingDeclarationError."""
    def fail(key: str, message: str) -> RankingDeclarationError:
        return RankingDeclarationError(key, message)

    for key in declaration:
        if key not in DECLARATION_KEYS:
            raise fail(key, f"unknown key {key!r}; allowed: {', '.join(DECLARATION_KEYS)}")
    scheme = declaration.get("scheme")
    if scheme not in SCHEMES:
        raise fail("scheme", f"scheme must be one of {', '.join(map(repr, SCHEMES))}, "
                             f"got {scheme!r}")
    per_case = scheme in PER_CASE_SCHEMES
    known = ", ".join(metrics)
    names = declaration.get("metrics")
    if names is None:
        names = [default.primary] if scheme == "test-then-rank" else list(default.metrics())
    if (not isinstance(names, list) or not names
            or not all(isinstance(n, str) and n for n in names)):
        raise fail("metrics", f"metrics must be a non-empty list of metric names, got {names!r}")
    if len(set(names)) != len(names):
        raise fail("metrics", f"a metric is named twice in {names!r}")
    for name in names:
        if name not in metrics:
            raise fail("metrics", f"unknown metric {name!r} for this kind; known: {known}")
        if per_case and name not in case_metrics:
            has = (f"per-exam metrics of this kind: {', '.join(case_metrics)}" if case_metrics
                   else "this kind has none: use sum-of-ranks or aggregate-then-rank")
            raise fail("metrics", f"{name!r} is computed over the whole set of exams, not per "
                                  f"exam, so {scheme} cannot rank on it ({has})")
    if scheme == "test-then-rank" and len(names) != 1:
        raise fail("metrics", f"test-then-rank tests one metric, got {len(names)}")
    tie_break = declaration.get("tie_break")
    if tie_break is not None:
        if not isinstance(tie_break, str) or tie_break not in names:
            raise fail("tie_break", f"tie_break must be one of the ranked metrics "
                                    f"({', '.join(names)}), got {tie_break!r}")
        if scheme == "aggregate-then-rank" and tie_break == names[0]:
            raise fail("tie_break", f"tie_break {tie_break!r} is the score itself; name "
                                    "another of the metrics")
    for key, schemes in (("alpha", ("test-then-rank",)), ("adjust", ("test-then-rank",)),
                         ("missing", PER_CASE_SCHEMES)):
        if key in declaration and scheme not in schemes:
            raise fail(key, f"{key} applies to {' and '.join(schemes)} only")
    alpha = declaration.get("alpha", ALPHA)
    if (isinstance(alpha, bool) or not isinstance(alpha, int | float)
            or not math.isfinite(alpha) or not 0 < alpha < 1):
        raise fail("alpha", f"alpha must be a number in (0, 1), got {alpha!r}")
    adjust = declaration.get("adjust", "none")
    if adjust not in ADJUSTMENTS:
        raise fail("adjust", f"adjust must be one of {', '.join(map(repr, ADJUSTMENTS))}, "
                             f"got {adjust!r}")
    missing = _missing(declaration.get("missing"), names, fail)
    on = tuple((n, metrics[n].higher_is_better) for n in names)
    if scheme == "sum-of-ranks":
        return SumOfRanks(on=on, tie_break=tie_break or names[0])
    if scheme == "aggregate-then-rank":
        then = list(on[1:])
        if tie_break is not None:
            then.sort(key=lambda item: item[0] != tie_break)
        return ByMetric(on[0][0], on[0][1], tuple(then))
    if scheme == "rank-then-aggregate":
        return RankThenAggregate(on=on, tie_break=tie_break, missing=missing)
    return TestThenRank(on=on, tie_break=tie_break, missing=missing, alpha=float(alpha),
                        adjust=str(adjust))


def _missing(value: Any, names: Sequence[str], fail: Any) -> tuple[tuple[str, float], ...]:
    def number(v: Any) -> bool:
        return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
    if value is None:
        return ()
    if number(value):
        return tuple((n, float(value)) for n in names)
    if isinstance(value, dict):
        for key, v in value.items():
            if key not in names:
                raise fail("missing", f"missing names {key!r}, which is not a ranked metric "
                                      f"({', '.join(names)})")
            if not number(v):
                raise fail("missing", f"missing value of {key} must be a number, got {v!r}")
        return tuple((n, float(value[n])) for n in names if n in value)
    raise fail("missing", "missing must be a number, or a table of a number per metric, "
                          f"got {value!r}")


def _primary_first(on: Sequence[tuple[str, bool]], primary: str
                   ) -> tuple[tuple[str, bool], ...]:
    return (*((k, h) for k, h in on if k == primary), *((k, h) for k, h in on if k != primary))


def _best(scored: Sequence[Scored], order: Sequence[tuple[str, bool]]) -> Scored:
    return max(scored, key=lambda s: (*(_signed(s.metrics[k], h) for k, h in order),
                                      s.received_at))

def _split(entries: Iterable[Entry]) -> tuple[list[Entry], list[Entry]]:
    entries = list(entries)
    valid = [e for e in entries if e.counted is not None]
    invalid = sorted((e for e in entries if e.counted is None), key=lambda e: e.team.lower())
    return valid, invalid


def _counted(entry: Entry) -> Scored:
    assert entry.counted is not None
    return entry.counted


def _ordered(rows: list[Row], invalid: list[Entry]) -> list[Row]:
    rows.sort(key=lambda row: (row.rank, row.team.lower()))
    return rows + [Row(None, e.team, None, None, None, None, e.submissions) for e in invalid]


def _row(entry: Entry, position: int, score: float, ranks: dict[str, int]) -> Row:
    counted = _counted(entry)
    return Row(position, entry.team, counted.metrics, score, counted.id, counted.received_at,
               entry.submissions, ranks)
