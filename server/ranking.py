"""Ranking: pure functions and rules, one of them per challenge (its kind's, see
server/kinds/), used by the live board, the workbook, rescoring and the bootstrap alike.

- `SumOfRanks`: rank teams on each metric with competition ranking (1, 2, 2, 4); the score is
  the sum of the ranks, lowest wins; equal scores are split by the tie-break metric; teams
  equal on both share a rank (the seed's sarcopenia rule, over Dice and surface MSE).
- `ByMetric`: the score is one metric; the better value wins; equal values share a rank.
Teams without a valid submission come last, unranked.

A team's counted submission is its last valid one (`counts = "last"`) or its best
(`counts = "best"`): the better value of a `ByMetric` rule's metric; for a sum of ranks, which
depends on the other teams, the better tie-break metric, then the others in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from server.isotime import iso

if TYPE_CHECKING:
    from server.kinds.base import Metric


@dataclass(frozen=True)
class Scored:
    """One valid (scored) submission."""

    id: int
    team: str
    received_at: datetime
    metrics: dict[str, float]


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
    followed on."""

    @property
    def primary(self) -> str: ...
    def metrics(self) -> tuple[str, ...]: ...
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


@dataclass(frozen=True)
class ByMetric:
    """The score is `metric`; the better value wins."""

    metric: str
    higher_is_better: bool

    @property
    def primary(self) -> str:
        return self.metric

    def metrics(self) -> tuple[str, ...]:
        return (self.metric,)

    def rank(self, entries: Iterable[Entry]) -> list[Row]:
        valid, invalid = _split(entries)
        values = [_counted(e).metrics[self.metric] for e in valid]
        ranks = competition_ranks(values, higher_is_better=self.higher_is_better)
        rows = [_row(e, r, v, {}) for e, r, v in zip(valid, ranks, values, strict=True)]
        return _ordered(rows, invalid)

    def best(self, scored: Sequence[Scored]) -> Scored:
        return max(scored, key=lambda s: (_signed(s.metrics[self.metric],
                                                  self.higher_is_better), s.received_at))

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
        return None

    def describe(self, metrics: Mapping[str, Metric]) -> str:
        return f"{metrics[self.metric].label}, {_wins(self.higher_is_better)} wins"

    def best_words(self, metrics: Mapping[str, Metric]) -> str:
        return f"{'highest' if self.higher_is_better else 'lowest'} {metrics[self.metric].label}"


@dataclass(frozen=True)
class SumOfRanks:
    """The score is the sum of the team's ranks on `on` (metric, higher is better); lowest
    wins; equal sums go to the better `tie_break` (one of `on`)."""

    on: tuple[tuple[str, bool], ...]
    tie_break: str

    def __post_init__(self) -> None:
        if self.tie_break not in dict(self.on):
            raise ValueError(f"tie_break {self.tie_break!r} is not one of the ranked metrics")

    @property
    def primary(self) -> str:
        return self.tie_break

    def metrics(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.on)

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
        final = [1 + sum(1 for other in keys if other < k) for k in keys]
        rows = [_row(e, r, float(s), {key: per_metric[key][k] for key, _ in self.on})
                for k, (e, r, s) in enumerate(zip(valid, final, scores, strict=True))]
        return _ordered(rows, invalid)

    def best(self, scored: Sequence[Scored]) -> Scored:
        order = [(self.tie_break, self._tie_higher())]
        order += [(key, higher) for key, higher in self.on if key != self.tie_break]
        return max(scored, key=lambda s: (*(_signed(s.metrics[k], h) for k, h in order),
                                          s.received_at))

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
        on = ", ".join(names[:-1]) + " and " + names[-1]
        return f"lowest sum of ranks of {on}, ties to {self.tie_rule(metrics)}"


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
