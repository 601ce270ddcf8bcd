"""The jury's ranking analysis: bootstrap rank distributions, the significance map, the
schemes side by side with Kendall's τ (scipy.stats as the reference), the reveal's view of
it, its plots, its workbook sheet."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import scipy.stats as st
from openpyxl import load_workbook

from server import kinds
from server.deliberation.analysis import analysis_plots, ranking_analysis
from server.deliberation.plots import team_colours
from server.deliberation.stability import bootstrap_ranks
from server.deliberation.workbook import results_workbook
from server.leaderboard import final_boards
from server.results import ChallengeResults, EventResults, SubmissionRecord
from tests.deliberation.test_plots import NASTY, SVG, assert_in_frame, parse, series

T0 = datetime(2019, 10, 14, 8, tzinfo=UTC)
TEAMS = ("Owkin", "Milvue", NASTY, "LyPhTe")
EXAMS = 15


def segmentation(n: int, dice_mean: float, surface_sd: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    true = rng.uniform(10_000, 20_000, n)
    return {"ids": [f"L3-{k:03d}" for k in range(n)],
            "dice": np.round(np.clip(rng.normal(dice_mean, 0.02, n), 0, 1), 4).tolist(),
            "surface_true": true.tolist(),
            "surface_predicted": (true + rng.normal(0, surface_sd, n)).tolist()}


def record(n: int, team: str, details: dict[str, Any]) -> SubmissionRecord:
    squared = (np.array(details["surface_predicted"]) - np.array(details["surface_true"])) ** 2
    metrics = {"dice": float(np.mean(details["dice"])), "surface_mse": float(squared.mean())}
    return SubmissionRecord(n, team, T0 + timedelta(minutes=n), f"{n:064x}", 100, "m.zip",
                            "scored", metrics, (), details)


@pytest.fixture(scope="module")
def results() -> EventResults:
    details = {team: segmentation(EXAMS, 0.93 - 0.006 * k, 300 + 250 * k, k)
               for k, team in enumerate(TEAMS)}
    sarcopenia = ChallengeResults(
        "sarcopenia", "Sarcopenia", "segmentation-surface", "last", (*TEAMS, "Late"),
        tuple(record(k + 1, team, details[team]) for k, team in enumerate(TEAMS)))
    return EventResults("E", "Europe/Paris", (sarcopenia,), (*TEAMS, "Late"))


@pytest.fixture(scope="module")
def analysis(results: EventResults) -> Any:
    (challenge,) = results.challenges
    found = ranking_analysis(challenge, final_boards(results)["sarcopenia"])
    assert found is not None
    return found


def details_of(results: EventResults) -> dict[str, dict[str, Any]]:
    return {s.team: s.details for s in results.challenges[0].submissions if s.details}


def test_rank_distributions_are_the_bootstraps(results: EventResults, analysis: Any) -> None:
    board = final_boards(results)["sarcopenia"]
    assert analysis.teams == tuple(r.team for r in board if r.valid)   # "Late" is not ranked
    assert [d.team for d in analysis.distributions] == list(analysis.teams)
    assert analysis.draws == 1000
    boot = bootstrap_ranks(kinds.get("segmentation-surface"), details_of(results))
    for d in analysis.distributions:
        drawn = boot.ranks[:, boot.teams.index(d.team)]
        assert d.rank == next(r.rank for r in board if r.team == d.team)
        assert d.median == np.median(drawn)
        assert (d.low, d.high) == (np.percentile(drawn, 2.5), np.percentile(drawn, 97.5))
        assert sum(d.shares.values()) == pytest.approx(1.0)
        assert d.shares == {int(r): float(np.mean(drawn == r)) for r in set(drawn.tolist())}


def test_significance_map_is_scipys_wilcoxon_on_the_primary_metric(
        results: EventResults, analysis: Any) -> None:
    significance = analysis.significance
    assert significance.metric == "dice" and significance.alpha == 0.05
    assert significance.teams == analysis.teams
    dice = {t: np.array(d["dice"]) for t, d in details_of(results).items()}
    for i, a in enumerate(significance.teams):
        for j, b in enumerate(significance.teams):
            if i == j:
                assert significance.p[i][j] is None
                continue
            d = dice[a] - dice[b]
            kept = np.abs(d[d != 0])
            method = "exact" if len(set(kept.tolist())) == len(kept) else "asymptotic"
            reference = st.wilcoxon(d, alternative="greater", method=method,
                                    correction=False).pvalue
            assert significance.p[i][j] == pytest.approx(reference, abs=1e-12), (a, b)
    # The best team is significantly better than the worst on these draws.
    assert significance.significant(0, len(significance.teams) - 1)


def test_every_scheme_side_by_side_with_kendalls_tau(results: EventResults,
                                                     analysis: Any) -> None:
    names = [s.name for s in analysis.schemes]
    assert names == ["sum-of-ranks (Dice, MSE)", "aggregate-then-rank (Dice)",
                     "aggregate-then-rank (MSE)", "rank-then-aggregate (Dice, MSE)",
                     "test-then-rank (Dice)", "test-then-rank (MSE)"]
    assert [s.current for s in analysis.schemes] == [True] + [False] * 5
    board = final_boards(results)["sarcopenia"]
    assert analysis.schemes[0].ranks == {r.team: r.rank for r in board if r.valid}
    # Each scheme's ranks are the board of a challenge declaring it.
    (challenge,) = results.challenges
    for scheme in analysis.schemes[1:]:
        declared = ChallengeResults(**{**challenge.__dict__, "ranking": scheme.declaration})
        rows = final_boards(EventResults("E", "UTC", (declared,), results.teams))["sarcopenia"]
        assert scheme.ranks == {r.team: r.rank for r in rows if r.valid}, scheme.name
    assert len(analysis.taus) == 15
    by_name = {s.name: s for s in analysis.schemes}
    for a, b, tau in analysis.taus:
        x = [by_name[a].ranks[t] for t in analysis.teams]
        y = [by_name[b].ranks[t] for t in analysis.teams]
        reference = st.kendalltau(x, y).statistic
        assert (tau is None and np.isnan(reference)) or tau == pytest.approx(reference), (a, b)


def test_the_reveal_sees_the_revealed_teams_only(analysis: Any) -> None:
    last_two = set(analysis.teams[2:])
    shown = analysis.only(last_two, taus=False)
    assert set(shown.teams) == last_two and shown.taus == ()
    assert {d.team for d in shown.distributions} == last_two
    assert set(shown.significance.teams) == last_two
    assert all(set(s.ranks) == last_two for s in shown.schemes)
    text = str(shown.to_json()) + "".join(analysis_plots(shown, {}).values())
    assert analysis.teams[0] not in text and analysis.teams[1] not in text


def test_the_plots_draw_each_team_once_and_stay_in_frame(analysis: Any) -> None:
    plots = analysis_plots(analysis, team_colours(TEAMS))
    assert set(plots) == {"rank-distribution", "significance"}
    blob = parse(plots["rank-distribution"])
    assert series(blob) == list(analysis.teams)
    assert_in_frame(blob)
    for group in (g for g in blob.iter(f"{SVG}g") if g.get("class") == "series"):
        circles = group.findall(f"{SVG}circle")
        shares = [float(c.get("data-share", "0")) for c in circles]
        radii = [float(c.get("r", "0")) for c in circles]
        assert sum(shares) == pytest.approx(1.0, abs=1e-3)
        # A dot's area is the share of draws: r² / share is the same for every dot.
        ratios = [r * r / s for r, s in zip(radii, shares, strict=True)]
        assert max(ratios) == pytest.approx(min(ratios), rel=0.02)
        assert group.find(f"{SVG}line[@class='median']") is not None
    heat = parse(plots["significance"])
    assert series(heat) == list(analysis.teams)
    assert_in_frame(heat)
    cells = heat.findall(f".//{SVG}rect[@data-p]")
    assert len(cells) == len(analysis.teams) * (len(analysis.teams) - 1)
    dark = {(c.get("data-against")) for c in heat.findall(f".//{SVG}rect[@class='significant']")}
    assert dark and "<script>" not in plots["significance"]
    ET.fromstring(plots["significance"])


def test_a_kind_without_per_exam_values_has_no_significance_map() -> None:
    """Detection's CPM is a whole-set figure: no per-case scheme, no significance map; the
    bootstrap still resamples the exams (their nodules found and false positives)."""
    from server.evaluators.detection import details_froc, froc_metrics
    rng = np.random.default_rng(4)
    records = []
    for n, team in enumerate(("A", "B", "C")):
        hits = [[float(p) for p in rng.uniform(0.2 + 0.2 * n, 1, int(rng.integers(0, 3)))]
                for _ in range(30)]
        details = {"ids": [f"N{k}" for k in range(30)], "nodules": [2] * 30, "hits": hits,
                   "false_positives": [sorted(rng.uniform(0, 0.8, 2).tolist(), reverse=True)
                                       for _ in range(30)]}
        metrics = froc_metrics(details_froc(details))
        records.append(SubmissionRecord(n + 1, team, T0, f"{n:064x}", 10, "c.csv", "scored",
                                        metrics, (), details))
    nodules = ChallengeResults("nodules", "Nodules", "detection", "last", ("A", "B", "C"),
                               tuple(records))
    results = EventResults("E", "UTC", (nodules,), ("A", "B", "C"))
    found = ranking_analysis(nodules, final_boards(results)["nodules"], resamples=200)
    assert found is not None and found.significance is None
    assert not any(s.scheme in ("rank-then-aggregate", "test-then-rank") for s in found.schemes)
    assert found.schemes[0].name == "aggregate-then-rank (CPM)" and found.taus
    assert len(found.distributions) == 3
    assert set(analysis_plots(found, {})) == {"rank-distribution"}


def test_the_workbook_has_a_ranking_analysis_sheet(results: EventResults,
                                                   analysis: Any) -> None:
    book = load_workbook(io.BytesIO(results_workbook(results)))
    assert "Ranking analysis" in book.sheetnames
    rows = [[c.value for c in row] for row in book["Ranking analysis"].iter_rows()]
    assert rows[0][0] == "Sarcopenia" and rows[1][0].startswith("Ranking: rank(dice)")
    header = rows[3]
    assert header[:5] == ["Rank", "Team", "Median rank (1000 draws)", "95 % interval low",
                          "95 % interval high"]
    assert header[5] == "sum-of-ranks (Dice, MSE) — this challenge"
    body = {r[1]: r for r in rows[4:4 + len(analysis.teams)]}
    for d in analysis.distributions:
        assert body[d.team][:5] == [d.rank, d.team, d.median, d.low, d.high]
        assert body[d.team][5:11] == [s.ranks[d.team] for s in analysis.schemes]
    tau_at = next(n for n, r in enumerate(rows) if r[0] == "Kendall's τ between the schemes")
    assert rows[tau_at + 1][1] == 1.0
    p_at = next(n for n, r in enumerate(rows) if str(r[0]).startswith("p-value that the row"))
    teams = rows[p_at + 1][1:1 + len(analysis.teams)]
    assert teams == list(analysis.significance.teams)
    first = rows[p_at + 2]
    assert first[0] == teams[0] and first[1] is None
    assert first[2] == pytest.approx(analysis.significance.p[0][1])
