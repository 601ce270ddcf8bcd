"""challengeR's long table (`podium export --challenger`), read back with pandas: one row per
task × exam × team, values equal to the counted submissions' details."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from server.deliberation.challenger import challenger_csv
from server.results import ChallengeResults, EventResults, SubmissionRecord
from tests.deliberation.test_analysis import EXAMS, T0, TEAMS, record, segmentation

INJECTED = "=cmd|' /C calc'!A0"


def test_the_long_table_holds_every_per_exam_value() -> None:
    details = {team: segmentation(EXAMS, 0.93 - 0.006 * k, 300 + 250 * k, 10 + k)
               for k, team in enumerate((*TEAMS, INJECTED))}
    sarcopenia = ChallengeResults(
        "sarcopenia", "Sarcopenia", "segmentation-surface", "last", (*TEAMS, INJECTED),
        tuple(record(k + 1, team, details[team]) for k, team in enumerate((*TEAMS, INJECTED))))
    edss = ChallengeResults("edss", "EDSS", "regression", "last", ("A", "B"), (
        SubmissionRecord(20, "A", T0, "0" * 64, 10, "e.csv", "scored", {"mse": 0.5}, (),
                         {"ids": ["MS1", "MS2"], "truth": [1.0, 2.0], "predicted": [2.0, 2.0]}),
        SubmissionRecord(21, "B", T0, "1" * 64, 10, "e.csv", "scored", {"mse": 0.1}, ())))
    nodules = ChallengeResults("nodules", "Nodules", "binary-probability", "last", ("A",), (
        SubmissionRecord(30, "A", T0, "2" * 64, 10, "p.csv", "scored", {"auc": 0.8}, (),
                         {"ids": ["N1", "N2"], "truth": [0, 1], "predicted": [0.2, 0.9]}),))
    results = EventResults("E", "UTC", (sarcopenia, edss, nodules), (*TEAMS, INJECTED, "A", "B"))

    table = pd.read_csv(io.StringIO(challenger_csv(results)), dtype={"case": str})
    assert list(table.columns) == ["task", "case", "algorithm", "value"]
    assert sorted(set(table["task"])) == ["edss:mae", "edss:mse", "nodules:brier",
                                          "sarcopenia:dice", "sarcopenia:surface_mse"]
    # No AUC per exam (a whole-set figure); the Brier score beside it is one per exam.
    assert len(table) == 2 * EXAMS * 5 + 2 * 2 + 2   # B's counted EDSS file kept no details
    brier = table[table["task"] == "nodules:brier"]
    np.testing.assert_allclose(brier["value"].to_numpy(), [0.04, 0.01], rtol=1e-12)
    table["algorithm"] = table["algorithm"].str.removeprefix("'")  # a formula stays text
    for team, detail in details.items():
        rows = table[(table["task"] == "sarcopenia:dice") & (table["algorithm"] == team)]
        assert list(rows["case"]) == detail["ids"]
        np.testing.assert_allclose(rows["value"].to_numpy(), detail["dice"], rtol=1e-12)
        squared = (np.array(detail["surface_predicted"]) - np.array(detail["surface_true"])) ** 2
        rows = table[(table["task"] == "sarcopenia:surface_mse") & (table["algorithm"] == team)]
        np.testing.assert_allclose(rows["value"].to_numpy(), squared, rtol=1e-12)
    mse = table[table["task"] == "edss:mse"]
    assert list(zip(mse["case"], mse["algorithm"], mse["value"], strict=True)) == [
        ("MS1", "A", 1.0), ("MS2", "A", 0.0)]
