"""What an evaluation returns: metrics, or every problem found in the submission."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

MetricValue = float | int

MORE = "more"


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    id: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.id is not None:
            out["id"] = self.id
        return out


@dataclass(frozen=True)
class Result:
    status: Literal["scored", "invalid"]
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    errors: tuple[Problem, ...] = ()
    # Per-exam values behind the metrics, in truth id order, so that plots and the rank
    # bootstrap can be computed later without the submitted files (see `details_json`).
    details: dict[str, list[Any]] | None = field(default=None, compare=False)

    @classmethod
    def scored(
        cls, metrics: dict[str, MetricValue], details: dict[str, list[Any]] | None = None
    ) -> Result:
        return cls("scored", {k: float(v) for k, v in metrics.items()}, (), details)

    @classmethod
    def invalid(cls, problems: Sequence[Problem], max_errors: int) -> Result:
        return cls("invalid", {}, cap(problems, max_errors))

    def to_json(self, details: bool = False) -> dict[str, Any]:
        """What `podium score` prints and the API stores; per-exam details only on request."""
        if self.status == "scored":
            out: dict[str, Any] = {"status": "scored", "metrics": dict(self.metrics)}
            if details and self.details is not None:
                out["details"] = self.details_json()
            return out
        return {"status": "invalid", "errors": [p.to_json() for p in self.errors]}

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
