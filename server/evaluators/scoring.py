"""evaluate(): the one entry point the server, its workers and the CLI call."""

from __future__ import annotations

import logging
from pathlib import Path

from server.evaluators.options import KINDS, ScoringOptions
from server.evaluators.probability import score_probability
from server.evaluators.regression import score_regression
from server.evaluators.result import Problem, Result
from server.evaluators.segmentation import score_segmentation
from server.evaluators.truth import SegmentationTruth, TruthError, ValueTruth, load_truth

log = logging.getLogger(__name__)


def evaluate(
    kind: str, truth: Path, submission: Path, options: ScoringOptions = ScoringOptions(),  # noqa: B008
    *, name: str | None = None,
) -> Result:
    """Score one submission file; never raises for the submission, only for a bad truth.

    `name` is the file's name as the team uploaded it (the server stores it under another),
    used in every message; by default the file's own name.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown challenge kind {kind!r}; expected one of {', '.join(KINDS)}")
    loaded = load_truth(kind, Path(truth))
    submission = Path(submission)
    name = name or submission.name
    try:
        if not submission.is_file():
            return Result.invalid(
                [Problem("unreadable", f"{name}: no such file")], options.max_errors
            )
        if isinstance(loaded, SegmentationTruth):
            return score_segmentation(loaded, submission, options, name)
        if not isinstance(loaded, ValueTruth):  # pragma: no cover - load_truth's contract
            raise TypeError(type(loaded).__name__)
        if kind == "binary-probability":
            return score_probability(loaded, submission, options, name)
        return score_regression(loaded, submission, options, name)
    except TruthError:
        raise
    except MemoryError:
        # The scorer's address-space limit (RLIMIT_AS) stopped an allocation: the file makes
        # the reader take far more memory than a file of this challenge can need.
        log.warning("scoring %s ran out of memory on %s", kind, submission)
        return Result.invalid(
            [Problem(
                "too_large",
                f"{submission.name} needs more memory to read than a scorer may use; it "
                "expands far beyond what this challenge's files need. Check it (a mask: one "
                "2-D slice of the exam's shape with 0/1 values, e.g. uint8; a table: two "
                "columns) and send it again",
            )],
            options.max_errors,
        )
    except Exception as exc:  # noqa: BLE001 - a team's file must never crash a worker
        log.exception("scoring %s failed on %s", kind, submission)
        return Result.invalid(
            [Problem(
                "unreadable",
                f"{name} could not be processed ({type(exc).__name__}); check its "
                "format against the challenge's description, or ask the organisers",
            )],
            options.max_errors,
        )
