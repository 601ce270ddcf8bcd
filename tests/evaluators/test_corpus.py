"""Every corpus file: scored or invalid with exactly its expected codes, never an exception."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from server.evaluators import ScoringOptions, evaluate

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
TRUTHS = {
    "segmentation-surface": CORPUS / "truth" / "sarcopenia",
    "binary-probability": CORPUS / "truth" / "nodules.csv",
    "regression": CORPUS / "truth" / "edss.csv",
}
# The same limits as make_corpus.py, which keep the limit cases small.
OPTIONS = ScoringOptions(max_archive_members=20, max_expanded_bytes=1_000_000)

with (CORPUS / "expected.csv").open(newline="") as f:
    EXPECTED = list(csv.DictReader(f))


def test_corpus_is_complete_and_small() -> None:
    listed = {row["file"] for row in EXPECTED}
    on_disk = {p.name for p in (CORPUS / "submissions").iterdir()}
    assert listed == on_disk
    assert sum(row["status"] == "invalid" for row in EXPECTED) >= 40
    size = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert size < 2 * 1024**2


@pytest.mark.parametrize("row", EXPECTED, ids=[row["file"] for row in EXPECTED])
def test_corpus_file(row: dict[str, str]) -> None:
    result = evaluate(row["kind"], TRUTHS[row["kind"]], CORPUS / "submissions" / row["file"],
                      OPTIONS)
    assert result.status == row["status"], result.to_json()
    assert {p.code for p in result.warnings} == set(row["warnings"].split()), result.to_json()
    if result.status == "scored":
        assert result.metrics and all(isinstance(v, float) for v in result.metrics.values())
        return
    assert {p.code for p in result.errors} == set(row["codes"].split())
    for problem in result.errors:
        assert problem.message and "Traceback" not in problem.message
