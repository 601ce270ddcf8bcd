"""What an evaluation returns: metrics, or every problem found in the submission, and the
warnings that go with either."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

MetricValue = float | int

MORE = "more"

# Truth-free notices: computed from the team's file and the released exams only, so a team sees
# them under every feedback policy. Each is documented in docs/formats.md ("Warnings").
WARNING_CODES = frozenset({
    "orientation_assumed", "orientation_from_shape", "spacing_mismatch", "origin_mismatch",
    "read_from_alpha", "outside_hu_window", "looks_transposed", "looks_flipped",
    "surface_mismatch", "number_read_from_masks", "empty_mask", "constant_predictions",
    "duplicate_upload", "direction_mismatch", "no_candidates", "outside_exam",
})


@dataclass(frozen=True)
class Problem:
    """One problem (an error or a warning): a code, a message in the team's words, the id of
    the exam or row it concerns. `group` phrases it for many ids at once ("masks are 256×256,
    the exams are 512×512"), so that one mistake repeated on every exam reads as one line."""

    code: str
    message: str
    id: str | None = None
    group: str | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.id is not None:
            out["id"] = self.id
        return out


def notice(code: str, message: str, id: str | None = None, group: str | None = None) -> Problem:
    """A warning; its code must be one of WARNING_CODES (and so documented)."""
    if code not in WARNING_CODES:
        raise ValueError(f"undocumented warning code {code!r}")
    return Problem(code, message, id, group)


@dataclass(frozen=True)
class Result:
    status: Literal["scored", "invalid"]
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    errors: tuple[Problem, ...] = ()
    # Per-exam values behind the metrics, in truth id order, so that plots and the rank
    # bootstrap can be computed later without the submitted files (see `details_json`).
    details: dict[str, list[Any]] | None = field(default=None, compare=False)
    warnings: tuple[Problem, ...] = ()

    @classmethod
    def scored(
        cls, metrics: dict[str, MetricValue], details: dict[str, list[Any]] | None = None,
        warnings: Sequence[Problem] = (),
    ) -> Result:
        return cls("scored", {k: float(v) for k, v in metrics.items()}, (), details,
                   tuple(grouped(warnings)))

    @classmethod
    def invalid(cls, problems: Sequence[Problem], max_errors: int,
                warnings: Sequence[Problem] = ()) -> Result:
        return cls("invalid", {}, cap(grouped(problems), max_errors), None,
                   tuple(grouped(warnings)))

    def to_json(self, details: bool = False) -> dict[str, Any]:
        """What `podium score` prints and the API stores; per-exam details only on request."""
        warnings = [p.to_json() for p in self.warnings]
        if self.status == "scored":
            out: dict[str, Any] = {"status": "scored", "metrics": dict(self.metrics),
                                   "warnings": warnings}
            if details and self.details is not None:
                out["details"] = self.details_json()
            return out
        return {"status": "invalid", "errors": [p.to_json() for p in self.errors],
                "warnings": warnings}

    def details_json(self) -> dict[str, list[Any]] | None:
        """The per-exam details as plain JSON lists (a copy), or None if not scored."""
        if self.details is None:
            return None
        return {key: list(values) for key, values in self.details.items()}


class Invalid(Exception):  # noqa: N818 - a verdict on a file, not a program fault
    """Raised inside readers when a file cannot be used at all; carries its problems."""

    def __init__(self, problems: Problem | Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = (
            (problems,) if isinstance(problems, Problem) else tuple(problems)
        )
        super().__init__("; ".join(p.message for p in self.problems))


def grouped(problems: Iterable[Problem]) -> list[Problem]:
    """One line for one problem repeated on several exams: "3 masks are 256×256, the exams are
    512×512: 0042, 0107, 0311". Problems keep their order (a group sits where its first was)."""
    items = list(problems)
    buckets: dict[tuple[str, str], list[Problem]] = {}
    for p in items:
        if p.group is not None and p.id is not None:
            buckets.setdefault((p.code, p.group), []).append(p)
    out: list[Problem] = []
    for p in items:
        key = (p.code, p.group or "")
        bucket = buckets.get(key) if p.group is not None and p.id is not None else None
        if bucket is None or len(bucket) < 2:
            out.append(p)
        elif bucket[0] is p:
            ids = [q.id for q in bucket if q.id is not None]
            out.append(Problem(p.code, f"{len(ids)} {p.group}: {listing(ids)}"))
    return out


def cap(problems: Sequence[Problem], max_errors: int) -> tuple[Problem, ...]:
    """Keep a list a tired team can read; the last line says how many were left out."""
    limit = max(1, max_errors)
    if len(problems) <= limit:
        return tuple(problems)
    hidden = len(problems) - limit
    more = Problem(MORE, f"… and {hidden} more problem{'s' if hidden > 1 else ''}")
    return (*problems[:limit], more)


def listing(items: Sequence[str], limit: int = 10) -> str:
    """'0042, 0107, 0311' or '0042, 0107, … (12 in all)' for long lists."""
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f", … ({len(items)} in all)"


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"
