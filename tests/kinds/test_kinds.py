"""The kinds registry and what every kind must declare (server/kinds/)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from server import kinds
from server.evaluators import evaluate
from server.kinds import Kind, Metric
from server.ranking import ByMetric, Entry, Scored

T0 = datetime(2019, 10, 13, 9, tzinfo=UTC)


def test_the_seed_kinds_are_found_as_modules() -> None:
    assert set(kinds.names()) == {"segmentation-surface", "binary-probability", "regression",
                                  "segmentation-3d", "detection", "nodule-task"}
    with pytest.raises(kinds.UnknownKind, match="unknown challenge kind 'nodule-size'; "
                                                "expected one of "):
        kinds.get("nodule-size")


@pytest.mark.parametrize("name", kinds.names())
def test_every_kind_declares_what_the_rest_of_podium_asks(name: str) -> None:
    kind = kinds.get(name)
    assert kind.truth_shape in ("folder", "file")
    assert {"files", "description", "warnings"} <= set(kind.format)
    described = kind.format_json()
    assert described["metrics"] == list(kind.board) and described["ranking"]
    keys = [m.key for m in kind.metrics]
    assert len(keys) == len(set(keys))
    assert set(kind.board) <= set(keys) and set(kind.ranking.metrics()) <= set(keys)
    for column in kind.columns():
        assert set(column) == {"key", "label", "digits", "grouped", "unit"}
    assert kind.score_label and kind.score_format and kind.best_words
    assert kind.max_upload_mb > 0 and kind.expected_file


@pytest.mark.parametrize("name", kinds.names())
def test_a_best_submission_is_the_one_the_ranking_prefers(name: str) -> None:
    """counts = "best" picks the submission that would rank first among a team's own."""
    kind = kinds.get(name)
    metrics = [m.key for m in kind.metrics]
    subs = [Scored(n, "T", T0, {k: v for k in metrics}) for n, v in
            enumerate((0.2, 0.9, 0.5), start=1)]
    best = kind.counted("best", subs)
    ranked = kind.rank([Entry(f"t{s.id}", s) for s in subs])
    assert best is not None and ranked[0].submission_id == best.id
    assert kind.counted("last", subs) == subs[-1]
    assert kind.counted("best", []) is None


def test_number_formats_follow_the_digits() -> None:
    assert Metric("dice", "Dice", "Dice", True, 4).number_format == "0.0000"
    assert Metric("m", "M", "M", False, 0, grouped=True).number_format == "#,##0"
    assert Metric("m", "M", "M", False, 2, grouped=True).number_format == "#,##0.00"
    assert Metric("n", "N", "N", False, 0).number_format == "0"


def test_a_kind_must_declare_the_metrics_it_shows_and_ranks_on() -> None:
    regression = kinds.get("regression")
    with pytest.raises(ValueError, match=r"metrics \['rmse'\] are not declared"):
        dataclasses.replace(regression, ranking=ByMetric("rmse", higher_is_better=False))
    with pytest.raises(ValueError, match=r"metrics \['r2'\] are not declared"):
        dataclasses.replace(regression, board=("mse", "r2"))


def test_modules_named_in_the_environment_add_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        monkeypatch.setenv(kinds.EXTRA_ENV, "tests.kinds.toy_count")
        assert "nodule-count" in kinds.discover()
        assert isinstance(kinds.get("nodule-count"), Kind)
        monkeypatch.setenv(kinds.EXTRA_ENV, "tests.kinds")  # a module without KIND
        with pytest.raises(TypeError, match="tests.kinds defines no KIND"):
            kinds.discover()
        monkeypatch.setenv(kinds.EXTRA_ENV, "server.kinds.regression")  # a kind twice
        with pytest.raises(ValueError, match="kind 'regression' is defined twice"):
            kinds.discover()
    finally:
        monkeypatch.delenv(kinds.EXTRA_ENV)
        kinds.discover()
    assert "nodule-count" not in kinds.names()


CASE_FILES = {
    "segmentation-surface": ("sarcopenia", "seg_valid_mixed_formats.zip"),
    "regression": ("edss.csv", "edss_valid.xlsx"),
    "binary-probability": ("nodules.csv", "prob_valid_french_excel.csv"),
}


@pytest.mark.parametrize("name", sorted(CASE_FILES))
def test_a_kinds_per_exam_values_average_to_its_metrics(name: str) -> None:
    """`cases` gives, for a scored file of the corpus, per-exam values whose mean is the
    metric the file was scored with: what the per-case ranking schemes rank on."""
    corpus = Path(__file__).resolve().parents[1] / "corpus"
    truth, submission = CASE_FILES[name]
    result = evaluate(name, corpus / "truth" / truth, corpus / "submissions" / submission)
    assert result.status == "scored" and result.details is not None
    kind = kinds.get(name)
    assert kind.cases is not None
    cases = kind.cases(result.details)
    assert cases and set(cases) == set(kind.case_metrics)
    for key, values in cases.items():
        assert len(values) == len(result.details["ids"])
        assert np.mean([float(v) for v in values if v is not None]) == pytest.approx(
            result.metrics[key], rel=1e-12)


def test_a_whole_set_metric_has_no_per_exam_values() -> None:
    assert kinds.get("detection").cases is None
    # The AUC is a whole-set metric; the Brier score beside it is a mean over exams.
    assert set(kinds.get("binary-probability").cases({"truth": [0, 1], "predicted": [0.5, 1]})
               ) == {"brier"}


def test_the_kinds_load_without_the_scoring_engine() -> None:
    """Every process loads the kinds (the web server's too); the evaluators, numpy and what
    they bring are for the scorers only, imported when a kind scores or draws."""
    import subprocess
    import sys
    probe = ("import sys; from server import kinds; kinds.discover(); "
             "print(sorted(m for m in sys.modules if m == 'numpy' "
             "or m.startswith('server.evaluators')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]", out.stdout
