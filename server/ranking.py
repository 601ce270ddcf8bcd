"""Ranking (SPEC §4): one pure function used by the API, the websocket, the pages and the
export.

- segmentation-surface: rank teams on dice (higher is better) and on surface_mse (lower is
  better) with competition ranking (1, 2, 2, 4); score = the sum of the two ranks, lowest wins;
  equal scores are split by the higher dice; teams equal on both share a rank.
- binary-probability: auc, higher wins.
- regression: mse, lower wins.
Teams without a valid submission come last, unranked.

The counted submission of a team is its last valid one (`counts = "last"`) or its best
(`counts = "best"`: highest auc, lowest mse, or for segmentation the highest dice then the
lowest surface_mse, since a rank sum depends on the other teams).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.isotime import iso

# The metric each kind ranks on, and whether higher is better.
PRIMARY: dict[str, tuple[str, bool]] = {
    "segmentation-surface": ("dice", True),
    "binary-probability": ("auc", True),
    "regression": ("mse", False),
}


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


def counted_submission(kind: str, counts: str, scored: Sequence[Scored]) -> Scored | None:
    """The submission that stands for a team: its last valid one, or its best."""
    if not scored:
        return None
    if counts == "last":
        return max(scored, key=lambda s: (s.received_at, s.id))
    if kind == "segmentation-surface":
        return max(scored, key=lambda s: (s.metrics["dice"], -s.metrics["surface_mse"],
                                          s.received_at))
    metric, higher = PRIMARY[kind]
    return max(scored, key=lambda s: ((s.metrics[metric] if higher else -s.metrics[metric]),
                                      s.received_at))


def competition_ranks(values: Sequence[float], *, higher_is_better: bool) -> list[int]:
    """1, 2, 2, 4: a value's rank is one plus the number of strictly better values."""
    def better(a: float, b: float) -> bool:
        return a > b if higher_is_better else a < b
    return [1 + sum(1 for other in values if better(other, v)) for v in values]


def rank(kind: str, entries: Iterable[Entry]) -> list[Row]:
    entries = list(entries)
    valid = [e for e in entries if e.counted is not None]
    invalid = sorted((e for e in entries if e.counted is None), key=lambda e: e.team.lower())
    rows: list[Row] = []
    if kind == "segmentation-surface":
        dice = [e.counted.metrics["dice"] for e in valid if e.counted]
        mse = [e.counted.metrics["surface_mse"] for e in valid if e.counted]
        dice_ranks = competition_ranks(dice, higher_is_better=True)
        mse_ranks = competition_ranks(mse, higher_is_better=False)
        scores = [d + m for d, m in zip(dice_ranks, mse_ranks, strict=True)]
        # Order by score, then higher dice; rank by the same pair so full ties share a rank.
        keys = [(s, -d) for s, d in zip(scores, dice, strict=True)]
        final = [1 + sum(1 for other in keys if other < k) for k in keys]
        for e, r, s, dr, mr in zip(valid, final, scores, dice_ranks, mse_ranks, strict=True):
            assert e.counted is not None
            rows.append(_row(e, r, float(s), {"dice": dr, "surface_mse": mr}))
    else:
        metric, higher = PRIMARY[kind]
        values = [e.counted.metrics[metric] for e in valid if e.counted]
        for e, r, v in zip(valid, competition_ranks(values, higher_is_better=higher), values,
                           strict=True):
            rows.append(_row(e, r, v, {}))
    rows.sort(key=lambda row: (row.rank, row.team.lower()))
    rows += [Row(None, e.team, None, None, None, None, e.submissions) for e in invalid]
    return rows


def _row(entry: Entry, position: int, score: float, ranks: dict[str, int]) -> Row:
    counted = entry.counted
    assert counted is not None
    return Row(position, entry.team, counted.metrics, score, counted.id, counted.received_at,
               entry.submissions, ranks)
