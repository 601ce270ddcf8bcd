"""What a challenge kind is: the one description every other part of Podium asks.

A kind names how a challenge's truth is read, how a submission is scored, which metrics the
score carries (with their labels, units, direction and number format), how teams are ranked,
what teams are told about the format, and which plots and bootstrap it offers the jury. The
event file, the API, the boards, `podium watch`, the workbook and the plots all read it from
here; none of them branches on a kind's name. See docs/kinds.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from server.ranking import Cases, Entry, RankingRule, Row, Scored, from_declaration

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from server.evaluators.options import ScoringOptions
    from server.evaluators.result import Result
    from server.event import ChallengeSpec

    Floats = npt.NDArray[np.float64]
    Ints = npt.NDArray[np.int64]

Details = Mapping[str, Any]

WARNINGS_TEXT = (
    "A scored file may carry warnings (orientation assumed, mask outside the HU window, "
    "surfaces that disagree with the masks, the same file sent twice, ...): they are computed "
    "from your file and the released exams only, and shown to you whatever the feedback policy."
)
TABLE_TEXT = (
    "Header optional; comma, semicolon or tab between columns; decimal point or comma. "
    "Every id of the validation set exactly once."
)


def table_format(value: str) -> dict[str, Any]:
    """What teams are told of a kind whose submission is a two-column table: id, `value`."""
    return {"files": [".csv", ".xlsx"],
            "description": f"One .csv or .xlsx file, two columns: exam id, then {value}. "
                           + TABLE_TEXT,
            "warnings": WARNINGS_TEXT}


@dataclass(frozen=True)
class Metric:
    """One figure of a score: `key` as the API sends it, `label` for the workbook and the
    jury, `short` for a board's column; shown with `digits` decimals (`grouped`: thousands
    separated, for large whole numbers)."""

    key: str
    label: str
    short: str
    higher_is_better: bool
    digits: int
    unit: str = ""
    grouped: bool = False

    @property
    def number_format(self) -> str:
        """The spreadsheet's number format: 0.0000, #,##0 ..."""
        whole = "#,##0" if self.grouped else "0"
        return whole + ("." + "0" * self.digits if self.digits else "")

    def column(self) -> dict[str, Any]:
        """How a board shows this metric (the websocket's and the API's `columns`)."""
        return {"key": self.key, "label": self.short, "digits": self.digits,
                "grouped": self.grouped, "unit": self.unit}


TruthShape = Literal["folder", "file"]
TruthLoader = Callable[[Path], Any]
Evaluator = Callable[[Any, Path, "ScoringOptions", str], "Result"]
Plotter = Callable[[Mapping[str, Details], Mapping[str, str]], dict[str, str]]
Resampler = Callable[[Mapping[str, Details], Sequence[str], "Ints"], dict[str, "Floats"]]
# A submission's stored details -> the per-exam values (in the details' `ids` order) of each
# metric that is the mean of a per-exam value; None where an exam has no value (an empty mask
# for a distance), which a ranking scheme replaces by its declared worst value.
CaseValues = Callable[[Details], dict[str, list[float | None]]]


@dataclass(frozen=True)
class SetExam:
    """One kept exam of the set a truth is written from (server/dataset/final.py): its id
    (the exam number), its folder as the inclusion intake keeps it (`series/<n>/`, the
    center's `annotation/`), its summary (the chosen `series`, the `mask` path, the `nodules`
    in mm, LPS) and its label or value as the question reads them."""

    id: int
    folder: Path | None
    summary: Mapping[str, Any] = field(default_factory=dict)
    value: float | str | None = None


class TruthMissing(Exception):  # noqa: N818 - what the exam lacks, not a failure of Podium
    """An exam of the set lacks what the truth needs (`what`: "its mask (...)")."""

    def __init__(self, exam: int, what: str) -> None:
        super().__init__(f"exam {exam} of the set has no {what}")
        self.exam = exam
        self.what = what


# Writes the truth of `challenge` from its set's exams at `target` (a file or a folder, by the
# kind's truth_shape; it does not exist yet), in the layout the kind's load_truth reads;
# raises TruthMissing. Blocking: the final day runs it in a thread.
TruthWriter = Callable[["ChallengeSpec", Sequence[SetExam], Path], None]


@dataclass(frozen=True)
class Kind:
    """A challenge kind. `metrics` lists the figures in the order the workbook shows them;
    `board` the keys of those a live board shows; `ranking` orders the teams (and picks a
    team's best submission when a challenge counts its best)."""

    name: str
    summary: str
    truth_shape: TruthShape
    truth_text: str              # what the truth must be, for the event file's refusal
    metrics: tuple[Metric, ...]
    board: tuple[str, ...]
    ranking: RankingRule
    format: Mapping[str, Any]    # what teams are told: files, description, orientation ...
    max_upload_mb: float
    load_truth: TruthLoader
    evaluate: Evaluator
    # A file that makes the reader exceed the scorer's memory: what such a file should be.
    expected_file: str
    options: frozenset[str] = frozenset()   # event keys only this kind accepts
    plots: Plotter | None = None
    resample: Resampler | None = None
    cases: CaseValues | None = None
    # The metrics `cases` gives per exam: those a per-case ranking scheme may rank on.
    case_metrics: tuple[str, ...] = ()
    # How this kind's truth is written from a set of kept exams (`truth = "set:NAME"`,
    # docs/datasets.md); None: its truth is always given as a path.
    write_truth: TruthWriter | None = None
    _by_key: dict[str, Metric] = field(default_factory=dict, init=False, repr=False,
                                       compare=False)

    def __post_init__(self) -> None:
        self._by_key.update({m.key: m for m in self.metrics})
        missing = [k for k in (*self.board, *self.ranking.metrics()) if k not in self._by_key]
        if missing:
            raise ValueError(f"kind {self.name}: metrics {missing} are not declared")
        unknown = [k for k in self.case_metrics if k not in self._by_key]
        if unknown:
            raise ValueError(f"kind {self.name}: case metrics {unknown} are not declared")
        if self.case_metrics and self.cases is None:
            raise ValueError(f"kind {self.name}: case_metrics needs cases")
        whole = [k for k in self.ranking.case_metrics() if k not in self.case_metrics]
        if whole:
            raise ValueError(f"kind {self.name}: the ranking ranks {whole} per exam, but "
                             "they have no per-exam values")

    def with_ranking(self, rule: RankingRule) -> Kind:
        """This kind ranking by `rule` (a challenge's declared ranking), checked as above."""
        return dataclasses.replace(self, ranking=rule)

    def ranking_from(self, declaration: Mapping[str, Any]) -> RankingRule:
        """The rule an event file's `ranking = {...}` declares for a challenge of this kind;
        raises server.ranking.RankingDeclarationError."""
        return from_declaration(declaration, self._by_key, self.case_metrics, self.ranking)

    @property
    def needs_cases(self) -> bool:
        """Whether ranking needs the counted submissions' per-exam values (`Scored.cases`)."""
        return bool(self.ranking.case_metrics())

    def case_values(self, details: Details | None) -> Cases | None:
        """The per-exam values of stored details (None: no details, or no `cases`)."""
        if details is None or self.cases is None:
            return None
        return self.cases(details)

    def metric(self, key: str) -> Metric | None:
        return self._by_key.get(key)

    def label(self, key: str) -> str:
        metric = self._by_key.get(key)
        return metric.label if metric else key

    # The ranking, in the words and formats of this kind's metrics.

    @property
    def primary(self) -> Metric:
        """The metric a team's progress is followed on (the score-over-time plot)."""
        return self._by_key[self.ranking.primary]

    @property
    def score_label(self) -> str:
        """What a board's `score` is: the figure the results table prints."""
        return self.ranking.score_label(self._by_key)

    @property
    def score_format(self) -> str:
        return self.ranking.score_format(self._by_key)

    @property
    def score_digits(self) -> int:
        return self.ranking.score_digits(self._by_key)

    @property
    def tie_rule(self) -> str | None:
        """What decides between teams equal on the score, in words; None: nothing does."""
        return self.ranking.tie_rule(self._by_key)

    @property
    def best_words(self) -> str:
        """Which result is the best, in words: "highest AUC"."""
        return self.ranking.best_words(self._by_key)

    @property
    def rank_columns(self) -> tuple[str, ...]:
        """The metrics whose per-metric ranks a row carries (`ranks`)."""
        return self.ranking.rank_columns()

    def columns(self) -> list[dict[str, Any]]:
        """A board's columns: the board metrics, then the score when it is not one of them."""
        shown = [self._by_key[k].column() for k in self.board]
        if self.ranking.score_is_own_column():
            shown.append({"key": "score", "label": "Score", "digits": self.score_digits,
                          "grouped": False, "unit": ""})
        return shown

    def format_json(self) -> dict[str, Any]:
        return {**self.format, "metrics": list(self.board),
                "ranking": self.ranking.describe(self._by_key)}

    def rank(self, entries: Sequence[Entry]) -> list[Row]:
        return self.ranking.rank(entries)

    def counted(self, counts: str, scored: Sequence[Scored]) -> Scored | None:
        """The submission that stands for a team: its last valid one, or its best."""
        if not scored:
            return None
        if counts == "last":
            return max(scored, key=lambda s: (s.received_at, s.id))
        return self.ranking.best(scored)

    def metric_columns(self, present: set[str]) -> list[str]:
        """The metrics of a board in the order the workbook shows them: this kind's first,
        then any other, sorted."""
        known = [m.key for m in self.metrics if m.key in present]
        return known + sorted(present - set(known))
