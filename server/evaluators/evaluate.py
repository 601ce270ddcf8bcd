"""evaluate(): the one entry point the server, its workers and the CLI call."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from server import kinds
from server.evaluators.options import ScoringOptions
from server.evaluators.result import Problem, Result
from server.evaluators.truth import TruthError

log = logging.getLogger(__name__)


def load_truth(kind: str, truth: Path) -> Any:
    """The validated truth of a challenge of `kind`, from the per-process cache when
    unchanged; raises TruthError naming the file and row."""
    return kinds.get(kind).load_truth(Path(truth))


def evaluate(
    kind: str, truth: Path, submission: Path, options: ScoringOptions = ScoringOptions(),  # noqa: B008
    *, name: str | None = None,
) -> Result:
    """Score one submission file; never raises for the submission, only for a bad truth.

    `name` is the file's name as the team uploaded it (the server stores it under another),
    used in every message; by default the file's own name.
    """
    spec = kinds.get(kind)
    loaded = spec.load_truth(Path(truth))
    submission = Path(submission)
    name = name or submission.name
    try:
        if not submission.is_file():
            return Result.invalid(
                [Problem("unreadable", f"{name}: no such file")], options.max_errors
            )
        return spec.evaluate(loaded, submission, options, name)
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
                "expands far beyond what this challenge's files need. Check it "
                f"({spec.expected_file}) and send it again",
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
