"""The ranking rules (docs/kinds.md) on hand-made boards, ties at every position."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import scipy.stats

from server import kinds
from server.kinds import Kind
from server.ranking import (
    Entry,
    RankingDeclarationError,
    Row,
    Scored,
    TestThenRank,
    competition_ranks,
)

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


# -- The schemes a challenge may declare (docs/ranking.md) -----------------------------------

SARCOPENIA = kinds.get("segmentation-surface")


def rule(**declaration: Any) -> Kind:
    """The sarcopenia kind ranking as `declaration` says (what the event file's key gives)."""
    return SARCOPENIA.with_ranking(SARCOPENIA.ranking_from(declaration))


def cased(team: str, exams: list[float | None] | None, **metrics: float) -> Entry:
    """A team whose counted submission has per-exam Dice values `exams` (None: no value; no
    list at all: no per-exam values stored) and these aggregate metrics."""
    if "dice" not in metrics:
        metrics["dice"] = float(np.mean([v for v in exams or [] if v is not None] or [0.0]))
    cases = None if exams is None else {"dice": exams}
    return Entry(team, Scored(hash(team) % 1000, team, T0, metrics, cases), 1)


def ranks(rows: list[Row]) -> list[tuple[str, int | None]]:
    return [(r.team, r.rank) for r in rows]


def test_table_6_sarcopenia_sums_of_ranks_and_final_order() -> None:
    """The seed paper's Table 6 prints each sarcopenia team's sum of ranks (Owkin 4, Milvue 6,
    GAMC 7, LyPhTe 7, LEVIATAN 10, Autonomous Radiology 11, Tripode-rouen 11, Axone 16) but
    not its Dice and surface errors: these are made up to give exactly those per-metric ranks
    (Dice ranks, MSE ranks below). The two ties go to the higher Dice."""
    seed = [  # team, Dice (its rank), surface MSE (its rank)
        ("Owkin", 0.931, 110_000.0),          # 2 + 2 = 4
        ("Milvue", 0.936, 158_000.0),         # 1 + 5 = 6
        ("GAMC", 0.925, 126_000.0),           # 4 + 3 = 7, Dice 4th: before LyPhTe
        ("LyPhTe", 0.918, 95_000.0),          # 6 + 1 = 7
        ("LEVIATAN", 0.927, 210_000.0),       # 3 + 7 = 10
        ("Autonomous Radiology", 0.914, 140_000.0),  # 7 + 4 = 11, Dice 7th: after Tripode
        ("Tripode-rouen", 0.921, 170_000.0),  # 5 + 6 = 11
        ("Axone", 0.902, 390_000.0),          # 8 + 8 = 16
    ]
    left = ["biSEPs", "Dapsi-AI", "EASYPICKY", "ILLUIN TECHNOLOGY"]  # N.S. in the table
    entries = [entry(t, dice=d, surface_mse=m) for t, d, m in seed] + [entry(t) for t in left]
    expected = [(1, "Owkin", 4.0), (2, "Milvue", 6.0), (3, "GAMC", 7.0), (4, "LyPhTe", 7.0),
                (5, "LEVIATAN", 10.0), (6, "Tripode-rouen", 11.0),
                (7, "Autonomous Radiology", 11.0), (8, "Axone", 16.0)]
    expected += [(None, t, None) for t in left]
    assert board("segmentation-surface", *entries) == expected
    # The seed's rule declared in an event file ranks the same.
    declared = rule(scheme="sum-of-ranks", metrics=["dice", "surface_mse"], tie_break="dice")
    assert [(r.rank, r.team, r.score) for r in declared.rank(entries)] == expected
    assert declared.ranking == SARCOPENIA.ranking


def test_the_kinds_default_rules_are_unchanged() -> None:
    assert SARCOPENIA.ranking.declaration() == {
        "scheme": "sum-of-ranks", "metrics": ["dice", "surface_mse"], "tie_break": "dice"}
    assert kinds.get("binary-probability").ranking.declaration() == {
        "scheme": "aggregate-then-rank", "metrics": ["auc"]}
    assert kinds.get("regression").ranking.declaration() == {
        "scheme": "aggregate-then-rank", "metrics": ["mse"]}
    for kind in kinds.all_kinds().values():
        again = kind.ranking_from(kind.ranking.declaration())
        assert again == kind.ranking, kind.name


def test_sum_of_ranks_on_any_metrics_with_any_tie_break() -> None:
    kind = rule(scheme="sum-of-ranks", metrics=["dice", "surface_mse", "surface_mae_cm2"],
                tie_break="surface_mse")
    rows = kind.rank([
        entry("A", dice=0.95, surface_mse=300.0, surface_mae_cm2=2.0),  # 1 + 3 + 2 = 6
        entry("B", dice=0.94, surface_mse=100.0, surface_mae_cm2=3.0),  # 2 + 1 + 3 = 6, mse
        entry("C", dice=0.90, surface_mse=200.0, surface_mae_cm2=1.0),  # 3 + 2 + 1 = 6
    ])
    assert [(r.rank, r.team, r.score) for r in rows] == [(1, "B", 6.0), (2, "C", 6.0),
                                                         (3, "A", 6.0)]
    assert kind.tie_rule == "the lower Surface MSE (mm²)²"
    assert kind.primary.key == "surface_mse"


def test_aggregate_then_rank_splits_equal_values_by_the_next_metrics() -> None:
    only = rule(scheme="aggregate-then-rank", metrics=["dice"])
    then = rule(scheme="aggregate-then-rank", metrics=["dice", "surface_mse", "dice_min"])
    moved = rule(scheme="aggregate-then-rank", metrics=["dice", "surface_mse", "dice_min"],
                 tie_break="dice_min")
    entries = [entry("A", dice=0.9, surface_mse=300.0, dice_min=0.5),
               entry("B", dice=0.9, surface_mse=100.0, dice_min=0.4),
               entry("C", dice=0.9, surface_mse=100.0, dice_min=0.6),
               entry("D", dice=0.95, surface_mse=900.0, dice_min=0.1)]
    assert ranks(only.rank(entries)) == [("D", 1), ("A", 2), ("B", 2), ("C", 2)]
    assert ranks(then.rank(entries)) == [("D", 1), ("C", 2), ("B", 3), ("A", 4)]
    assert ranks(moved.rank(entries)) == [("D", 1), ("C", 2), ("A", 3), ("B", 4)]
    assert [r.score for r in then.rank(entries)] == [0.95, 0.9, 0.9, 0.9]
    assert then.tie_rule == "the lower Surface MSE (mm²)², then the higher Dice (worst exam)"


# Per-exam Dice of four teams on three exams, ranked per exam by hand:
#   exam 1: A .9 D .9 B .8 C .7 -> A 1, D 1, B 3, C 4
#   exam 2: C .9 A .8 B .8 D .6 -> C 1, A 2, B 2, D 4
#   exam 3: B .9 A .7 C .6 D .6 -> B 1, A 2, C 3, D 3
# mean ranks A 5/3, B 6/3, C 8/3, D 8/3; mean Dice A .8, B .833, C .733, D .7.
EXAMS = {"A": [0.9, 0.8, 0.7], "B": [0.8, 0.8, 0.9], "C": [0.7, 0.9, 0.6],
         "D": [0.9, 0.6, 0.6]}


def test_rank_then_aggregate_by_hand() -> None:
    entries = [cased(t, d) for t, d in EXAMS.items()]
    plain = rule(scheme="rank-then-aggregate", metrics=["dice"])
    rows = plain.rank(entries)
    assert [(r.rank, r.team) for r in rows] == [(1, "A"), (2, "B"), (3, "C"), (3, "D")]
    assert [r.score for r in rows] == pytest.approx([5 / 3, 2, 8 / 3, 8 / 3])
    tied = rule(scheme="rank-then-aggregate", metrics=["dice"], tie_break="dice")
    assert ranks(tied.rank(entries)) == [("A", 1), ("B", 2), ("C", 3), ("D", 4)]
    # Aggregating first ranks B (mean Dice .833) before A (.8).
    assert ranks(rule(scheme="aggregate-then-rank", metrics=["dice"]).rank(entries))[:2] == [
        ("B", 1), ("A", 2)]
    assert plain.score_label == "mean rank" and plain.columns()[-1]["digits"] == 2


def test_rank_then_aggregate_averages_the_metrics() -> None:
    # surface_mse per exam, lower better: A 4, 4; B 1, 9 -> exam 1: B 1, A 2; exam 2: A 1, B 2.
    # Dice: A .9, .9; B .8, .8 -> A 1, 1; B 2, 2. Mean of metrics: A (1 + 1.5) / 2, B (2 + 1.5) / 2.
    kind = rule(scheme="rank-then-aggregate", metrics=["dice", "surface_mse"])
    rows = kind.rank([
        Entry("A", Scored(1, "A", T0, {"dice": 0.9, "surface_mse": 4.0},
                          {"dice": [0.9, 0.9], "surface_mse": [4.0, 4.0]})),
        Entry("B", Scored(2, "B", T0, {"dice": 0.8, "surface_mse": 5.0},
                          {"dice": [0.8, 0.8], "surface_mse": [1.0, 9.0]}))])
    assert [(r.team, r.rank, r.score) for r in rows] == [("A", 1, 1.25), ("B", 2, 1.75)]


def test_missing_cases_get_the_worst_value_observed_or_the_declared_one() -> None:
    # E has Dice on exam 2 only (.95); F stored no per-exam values. By default a missing
    # value is the worst Dice any team has (.6): E .6 .95 .6, F .6 .6 .6. Per exam:
    #   1: A .9 D .9 B .8 C .7 E .6 F .6 -> A 1 D 1 B 3 C 4 E 5 F 5
    #   2: E .95 C .9 A .8 B .8 D .6 F .6 -> E 1 C 2 A 3 B 3 D 5 F 5
    #   3: B .9 A .7 C .6 D .6 E .6 F .6 -> B 1 A 2 C 3 D 3 E 3 F 3
    # sums A 6, B 7, C 9, D 9, E 9, F 13.
    entries = [cased(t, d) for t, d in EXAMS.items()]
    entries += [cased("E", [None, 0.95, None]), cased("F", None, dice=0.7)]
    rows = rule(scheme="rank-then-aggregate", metrics=["dice"]).rank(entries)
    assert [(r.team, r.rank, round(r.score * 3)) for r in rows] == [
        ("A", 1, 6), ("B", 2, 7), ("C", 3, 9), ("D", 3, 9), ("E", 3, 9), ("F", 6, 13)]
    # Declared: a missing Dice counts as 1.0 (a perfect exam): E 1 .95 1, F 1 1 1.
    #   1: E 1 F 1 A .9 D .9 B .8 C .7 -> E 1 F 1 A 3 D 3 B 5 C 6
    #   2: F 1 E .95 C .9 A .8 B .8 D .6 -> F 1 E 2 C 3 A 4 B 4 D 6
    #   3: E 1 F 1 B .9 A .7 C .6 D .6 -> E 1 F 1 B 3 A 4 C 5 D 5
    # sums E 4, F 3, A 11, B 12, C 14, D 14.
    generous = rule(scheme="rank-then-aggregate", metrics=["dice"], missing=1.0)
    assert ranks(generous.rank(entries)) == [("F", 1), ("E", 2), ("A", 3), ("B", 4),
                                             ("C", 5), ("D", 5)]
    per_metric = rule(scheme="rank-then-aggregate", metrics=["dice"], missing={"dice": 1.0})
    assert ranks(per_metric.rank(entries)) == ranks(generous.rank(entries))


# Test-then-rank: A beats B and C on every one of six exams (W+ = 21 of 21: exact p = 1/64);
# B and C split the exams (p of "C better than B" ≈ 0.17 by the normal approximation, ties).
BEATEN = {"A": [10.0, 12.0, 15.0, 19.0, 24.0, 30.0], "B": [5.0, 6.0, 1.0, 8.0, 2.0, 3.0],
          "C": [4.0, 5.0, 7.0, 7.0, 6.0, 9.0]}


def test_test_then_rank_counts_significant_wins() -> None:
    entries = [cased(t, d) for t, d in BEATEN.items()]
    kind = rule(scheme="test-then-rank", metrics=["dice"])
    rows = kind.rank(entries)
    assert [(r.rank, r.team, r.score) for r in rows] == [(1, "A", 2.0), (2, "B", 0.0),
                                                         (2, "C", 0.0)]
    assert kind.score_label == "significant wins" and kind.tie_rule is None
    # At 0.01 nothing is significant, and Holm over the six ordered pairs makes 1/64 too
    # large: every team shares rank 1.
    for strict in (rule(scheme="test-then-rank", metrics=["dice"], alpha=0.01),
                   rule(scheme="test-then-rank", metrics=["dice"], adjust="holm")):
        assert [(r.rank, r.score) for r in strict.rank(entries)] == [(1, 0.0)] * 3
    # A tie-break splits the equal counts: C's mean Dice 6.33 before B's 4.17.
    broken = rule(scheme="test-then-rank", metrics=["dice"], tie_break="dice")
    assert ranks(broken.rank(entries)) == [("A", 1), ("C", 2), ("B", 3)]


def test_test_then_rank_p_values_are_scipys_wilcoxon() -> None:
    entries = [cased(t, d) for t, d in BEATEN.items()]
    kind = rule(scheme="test-then-rank", metrics=["dice"])
    assert isinstance(kind.ranking, TestThenRank)
    p = kind.ranking.p_values(entries)
    teams = list(BEATEN)
    for i, a in enumerate(teams):
        for j, b in enumerate(teams):
            if i == j:
                assert np.isnan(p[i, j])
                continue
            d = np.array(BEATEN[a]) - np.array(BEATEN[b])
            untied = len(set(np.abs(d[d != 0]))) == len(d[d != 0])
            reference = scipy.stats.wilcoxon(
                d, alternative="greater", method="exact" if untied else "asymptotic",
                correction=False).pvalue
            assert p[i, j] == pytest.approx(reference, abs=1e-12), (a, b)
    assert p[0, 1] == pytest.approx(1 / 64)
    # Lower is better: the differences are turned round (surface errors per exam).
    errors = rule(scheme="test-then-rank", metrics=["surface_mse"])
    rows = errors.rank([
        Entry(t, Scored(k, t, T0, {"dice": 0.9, "surface_mse": float(np.mean(v))},
                        {"surface_mse": v})) for k, (t, v) in enumerate(BEATEN.items())])
    assert ranks(rows) == [("B", 1), ("C", 1), ("A", 3)]


@pytest.mark.parametrize(("declaration", "key", "message"), [
    ({"scheme": "borda"}, "scheme", "scheme must be one of"),
    ({}, "scheme", "scheme must be one of"),
    ({"scheme": "sum-of-ranks", "metrics": ["dice", "hausdorff"]}, "metrics",
     "unknown metric 'hausdorff'"),
    ({"scheme": "sum-of-ranks", "metrics": []}, "metrics", "non-empty list"),
    ({"scheme": "sum-of-ranks", "metrics": ["dice", "dice"]}, "metrics", "named twice"),
    ({"scheme": "sum-of-ranks", "metrics": ["dice"], "tie_break": "surface_mse"}, "tie_break",
     "must be one of the ranked metrics"),
    ({"scheme": "aggregate-then-rank", "metrics": ["dice", "surface_mse"],
      "tie_break": "dice"}, "tie_break", "is the score itself"),
    ({"scheme": "rank-then-aggregate", "metrics": ["dice_min"]}, "metrics",
     "computed over the whole set of exams"),
    ({"scheme": "test-then-rank", "metrics": ["dice", "surface_mse"]}, "metrics",
     "tests one metric"),
    ({"scheme": "test-then-rank", "alpha": 1.5}, "alpha", "in (0, 1)"),
    ({"scheme": "test-then-rank", "alpha": 0}, "alpha", "in (0, 1)"),
    ({"scheme": "test-then-rank", "adjust": "bonferroni"}, "adjust", "must be one of"),
    ({"scheme": "sum-of-ranks", "alpha": 0.05}, "alpha", "test-then-rank only"),
    ({"scheme": "aggregate-then-rank", "missing": 0}, "missing", "applies to"),
    ({"scheme": "rank-then-aggregate", "missing": "worst"}, "missing", "must be a number"),
    ({"scheme": "rank-then-aggregate", "metrics": ["dice"], "missing": {"mse": 1}}, "missing",
     "not a ranked metric"),
    ({"scheme": "sum-of-ranks", "order": "asc"}, "order", "unknown key"),
])
def test_declarations_refused(declaration: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(RankingDeclarationError) as info:
        SARCOPENIA.ranking_from(declaration)
    assert info.value.key == key and message in str(info.value)


def test_a_whole_set_metric_cannot_be_ranked_per_case() -> None:
    with pytest.raises(RankingDeclarationError, match="this kind has none"):
        kinds.get("detection").ranking_from({"scheme": "rank-then-aggregate",
                                             "metrics": ["froc_cpm"]})
    auc = kinds.get("binary-probability")
    with pytest.raises(RankingDeclarationError,
                       match=r"'auc' is computed over the whole set .*this kind: brier\)"):
        auc.ranking_from({"scheme": "rank-then-aggregate", "metrics": ["auc"]})
    with pytest.raises(ValueError, match="no per-exam values"):
        auc.with_ranking(TestThenRank(on=(("auc", True),)))
