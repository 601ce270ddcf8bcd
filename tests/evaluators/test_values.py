"""binary-probability and regression: reference checks against scikit-learn, and messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import mean_absolute_error, mean_squared_error, roc_auc_score

from server.evaluators import ScoringOptions, evaluate
from server.evaluators.probability import delong_interval, probability_metrics
from server.evaluators.regression import regression_metrics

from .factory import table_csv


def _truth(tmp_path: Path, labels: dict[str, float]) -> Path:
    path = tmp_path / "truth.csv"
    path.write_bytes(table_csv(labels, header=("id", "label")))
    return path


def _brute_delong(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """DeLong's variance straight from its definition, O(m·n)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    var = v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)
    half = 1.959963984540054 * np.sqrt(var)
    return max(0.0, auc - half), min(1.0, auc + half)


def test_auc_and_interval_match_references(rng: np.random.Generator) -> None:
    for _ in range(20):
        n = int(rng.integers(10, 300))
        labels = (rng.random(n) < 0.3).astype(float)
        labels[:2] = [0, 1]
        scores = np.round(rng.random(n) * 0.5 + labels * 0.3, 2)  # rounding makes ties
        metrics = probability_metrics(labels, scores)
        assert metrics["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        low, high = _brute_delong(labels, scores)
        assert metrics["auc_ci_low"] == pytest.approx(low, abs=1e-12)
        assert metrics["auc_ci_high"] == pytest.approx(high, abs=1e-12)
        assert metrics["auc_ci_low"] <= metrics["auc"] <= metrics["auc_ci_high"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 100)), min_size=2, max_size=40),
       st.sampled_from([np.sqrt, np.exp, lambda x: x**3 + 2]))
def test_auc_invariant_under_monotone_transform(pairs: list[tuple[bool, int]],
                                                transform: object) -> None:
    labels = np.array([float(b) for b, _ in pairs])
    if len(set(labels)) < 2:
        return
    # Scores on a coarse grid, so the transforms stay strictly monotone in floating point.
    scores = np.array([s / 100 for _, s in pairs])
    a = probability_metrics(labels, scores)
    b = probability_metrics(labels, transform(scores))  # type: ignore[operator]
    assert a["auc"] == pytest.approx(b["auc"], abs=1e-12)


def test_interval_with_a_single_positive_is_finite() -> None:
    low, high = delong_interval(np.array([0.0, 0, 0, 1]), np.array([0.1, 0.2, 0.3, 0.9]), 1.0)
    assert 0.0 <= low <= high <= 1.0


def test_regression_metrics_match_sklearn(rng: np.random.Generator) -> None:
    for _ in range(20):
        y = rng.integers(0, 21, 100) / 2
        p = np.clip(y + rng.normal(0, 1.5, 100), 0, 10)
        metrics = regression_metrics(y, p)
        assert metrics["mse"] == pytest.approx(mean_squared_error(y, p), abs=1e-12)
        assert metrics["mae"] == pytest.approx(mean_absolute_error(y, p), abs=1e-12)


def test_probability_end_to_end_with_french_csv(tmp_path: Path) -> None:
    truth = _truth(tmp_path, {"00042": 1, "00107": 0, "00311": 1, "00400": 0})
    sub = tmp_path / "upload-équipe.csv"
    sub.write_bytes("id;proba\r\n42;0,9;\r\n00107;0,2;\r\n00311;0,35;\r\n00400;0,4;\r\n"
                    .encode("cp1252"))
    result = evaluate("binary-probability", truth, sub)
    assert result.status == "scored", result.errors
    assert result.metrics["auc"] == pytest.approx(0.75, abs=1e-12)
    assert all(type(v) is float for v in result.metrics.values())


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    truth = _truth(tmp_path, {f"{i:04d}": i % 2 for i in range(1, 8)})
    sub = tmp_path / "p.csv"
    sub.write_text("id,p\n0001,0.5\n0002,1.3\n0003,abc\n0003,0.4\n0005,\n0006,nan\n9999,0.1\n"
                   ",0.2\n")
    result = evaluate("binary-probability", truth, sub)
    assert result.status == "invalid"
    got = {(p.code, p.id) for p in result.errors}
    assert got == {("missing_id", None), ("unknown_id", None), ("duplicate_id", "0003"),
                   ("out_of_range", "0002"), ("missing_value", "0005"),
                   ("not_finite", "0006"), ("empty_id", None)}
    messages = {p.code: p.message for p in result.errors}
    assert messages["out_of_range"] == "p.csv: probability 1.3 in row 3 (id 0002) is outside [0, 1]"
    assert messages["missing_id"] == "p.csv: 2 ids missing: 0004, 0007"


def test_errors_are_capped_with_a_count(tmp_path: Path) -> None:
    truth = _truth(tmp_path, {f"{i:04d}": i % 2 for i in range(100)})
    sub = tmp_path / "p.csv"
    sub.write_text("".join(f"{i:04d},2\n" for i in range(100)))
    result = evaluate("binary-probability", truth, sub, ScoringOptions(max_errors=5))
    assert len(result.errors) == 6
    assert result.errors[-1].code == "more" and "95 more" in result.errors[-1].message


def test_regression_end_to_end(tmp_path: Path) -> None:
    truth = tmp_path / "edss.csv"
    truth.write_text("id,edss\nP01,2.5\nP02,6\nP03,0\n")
    sub = tmp_path / "s.xlsx"
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in (("id", "edss"), ("P01", 3.0), ("P02", 5.5), ("P03", 0.5)):
        sheet.append(row)
    book.save(sub)
    result = evaluate("regression", truth, sub)
    assert result.to_json() == {"status": "scored",
                                "metrics": {"mse": pytest.approx(0.25), "mae": pytest.approx(0.5)},
                                "warnings": []}
    sub2 = tmp_path / "s.csv"
    sub2.write_text("P01,11\nP02,5\nP03,-1\n")
    bad = evaluate("regression", truth, sub2)
    assert [p.code for p in bad.errors] == ["out_of_range", "out_of_range"]
    assert bad.to_json()["errors"][0] == {
        "code": "out_of_range", "id": "P01",
        "message": "s.csv: EDSS 11 in row 1 (id P01) is outside [0, 10]",
    }


def test_a_bad_first_row_is_not_mistaken_for_a_header(tmp_path: Path) -> None:
    truth = _truth(tmp_path, {"0001": 1, "0002": 0})
    sub = tmp_path / "p.csv"
    sub.write_text("0001,high\n0002,0.1\n")
    result = evaluate("binary-probability", truth, sub)
    assert [(p.code, p.id) for p in result.errors] == [("not_a_number", "0001")]
