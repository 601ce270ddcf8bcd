"""The ranking rules (docs/kinds.md) on hand-made boards, ties at every position."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server import kinds
from server.ranking import Entry, Scored, competition_ranks

T0 = datetime(2019, 10, 13, 9, 0, tzinfo=UTC)


def entry(team: str, n: int = 1, **metrics: float) -> Entry:
    return Entry(team, Scored(hash(team) % 1000, team, T0, metrics) if metrics else None, n)


def board(kind: str, *entries: Entry) -> list[tuple[int | None, str, float | None]]:
    return [(r.rank, r.team, r.score) for r in kinds.get(kind).rank(entries)]


def test_competition_ranking() -> None:
    assert competition_ranks([0.9, 0.8, 0.8, 0.7], higher_is_better=True) == [1, 2, 2, 4]
    assert competition_ranks([3.0, 1.0, 1.0, 1.0], higher_is_better=False) == [4, 1, 1, 1]
    assert competition_ranks([], higher_is_better=True) == []


def test_auc_higher_wins_with_ties_and_teams_without_a_valid_submission_last() -> None:
    assert board("binary-probability",
                 entry("A", auc=0.80), entry("B", auc=0.90), entry("C", auc=0.80),
                 entry("nobody"), entry("D", auc=0.70), entry("Also nobody")) == [
        (1, "B", 0.90), (2, "A", 0.80), (2, "C", 0.80), (4, "D", 0.70),
        (None, "Also nobody", None), (None, "nobody", None)]


def test_mse_lower_wins() -> None:
    assert board("regression", entry("A", mse=3.8), entry("B", mse=3.04),
                 entry("C", mse=5.47), entry("D", mse=3.04)) == [
        (1, "B", 3.04), (1, "D", 3.04), (3, "A", 3.8), (4, "C", 5.47)]


def test_sarcopenia_sum_of_ranks_with_the_dice_tie_break() -> None:
    rows = kinds.get("segmentation-surface").rank([
        entry("A", dice=0.95, surface_mse=400.0),   # dice 1, mse 3 -> 4
        entry("B", dice=0.93, surface_mse=100.0),   # dice 3, mse 1 -> 4, loses the tie on dice
        entry("C", dice=0.94, surface_mse=300.0),   # dice 2, mse 2 -> 4... then by dice
        entry("D", dice=0.90, surface_mse=900.0),   # dice 4, mse 4 -> 8
        entry("E"),
    ])
    assert [(r.rank, r.team, r.score, r.ranks) for r in rows] == [
        (1, "A", 4.0, {"dice": 1, "surface_mse": 3}),
        (2, "C", 4.0, {"dice": 2, "surface_mse": 2}),
        (3, "B", 4.0, {"dice": 3, "surface_mse": 1}),
        (4, "D", 8.0, {"dice": 4, "surface_mse": 4}),
        (None, "E", None, {}),
    ]


def test_sarcopenia_full_tie_shares_the_rank_and_rank_ties_feed_the_sum() -> None:
    rows = kinds.get("segmentation-surface").rank([
        entry("A", dice=0.95, surface_mse=100.0),
        entry("B", dice=0.95, surface_mse=100.0),
        entry("C", dice=0.90, surface_mse=100.0),
    ])
    # dice ranks 1, 1, 3; mse ranks 1, 1, 1 -> scores 2, 2, 4.
    assert [(r.rank, r.team, r.score) for r in rows] == [(1, "A", 2.0), (1, "B", 2.0),
                                                         (3, "C", 4.0)]


def test_rows_serialise_with_the_counted_submission() -> None:
    row = kinds.get("regression").rank([entry("A", 3, mse=1.5)])[0]
    body = row.to_json()
    assert body["rank"] == 1 and body["score"] == 1.5 and body["submissions"] == 3
    assert body["received_at"] == "2019-10-13T09:00:00.000Z" and body["valid"] is True


@pytest.mark.parametrize(("kind", "counts", "expected"), [
    ("binary-probability", "last", 3), ("binary-probability", "best", 2),
    ("regression", "best", 1), ("segmentation-surface", "best", 2),
])
def test_counted_submission(kind: str, counts: str, expected: int) -> None:
    metrics = [
        {"auc": 0.7, "mse": 1.0, "dice": 0.90, "surface_mse": 10.0},
        {"auc": 0.9, "mse": 2.0, "dice": 0.95, "surface_mse": 50.0},
        {"auc": 0.8, "mse": 3.0, "dice": 0.95, "surface_mse": 90.0},
    ]
    scored = [Scored(i + 1, "A", T0 + timedelta(minutes=i), m) for i, m in enumerate(metrics)]
    counted = kinds.get(kind).counted(counts, scored)
    assert counted is not None and counted.id == expected
    assert kinds.get(kind).counted(counts, []) is None
