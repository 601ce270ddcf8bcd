"""Combined kinds: one zip of several parts, each part scored with its own kind's scorer.

A combined kind (the seed's full nodule task: `server/kinds/nodule_task.py`) declares its
`Part`s: which members of the team's zip belong to a part (a `masks/` folder, a
`candidates.csv` ...) and how that part is scored against its share of the truth. `evaluate`
opens the zip once, hands each part its members, and gathers every part's problems (the file
is invalid when any part is) or metrics, details and warnings. A part's details are kept under
`part:key` names beside the shared `ids`, so the part's own kind can draw its plots, give its
per-exam values and resample for the bootstrap from them (`part_details`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The evaluators are imported where they are used: the kinds load in every process (the web
# server's too), the scoring engine only in the scorers.
if TYPE_CHECKING:
    from server.evaluators.archive import Archive
    from server.evaluators.matching import IdIndex, RangeCheck
    from server.evaluators.options import ScoringOptions
    from server.evaluators.result import Problem, Result
    from server.kinds.base import Details, Floats, Ints, Kind

Member = tuple[str, zipfile.ZipInfo]
Metrics = dict[str, float]
PartDetails = dict[str, list[Any]]


@dataclass(frozen=True)
class Scored:
    """What a part's scorer gives: problems (the part is invalid when there are any), else its
    metrics and per-exam details (with `ids`), and warnings either way."""

    problems: Sequence[Problem] = ()
    metrics: Metrics | None = None
    details: PartDetails | None = None
    warnings: Sequence[Problem] = ()


PartScorer = Callable[[Any, "Archive", Sequence[Member], "ScoringOptions"], Scored]


@dataclass(frozen=True)
class Part:
    """One part of a combined submission: `name` keys its details; `what` tells the team what
    the part is ("candidates.csv: id,x,y,z,probability"); `takes(path)` says whether a member
    of the zip belongs to it; `score(truth, archive, members, options)` scores them; `kind`
    is the kind whose plots, per-exam values and bootstrap apply to the part's details."""

    name: str
    what: str
    takes: Callable[[str], bool]
    score: PartScorer
    kind: str | None = None


def evaluate(parts: Sequence[Part], truths: Mapping[str, Any], submission: Path,
             options: ScoringOptions, name: str) -> Result:
    """Score one zip of `parts`; `truths[part.name]` is the part's truth."""
    from server.evaluators.archive import open_submission
    from server.evaluators.result import Invalid, Problem, Result
    from server.evaluators.table import suffix_of
    expected = "; ".join(part.what for part in parts)
    if suffix_of(name) != ".zip":
        return Result.invalid([Problem("unsupported_format",
                                       f"{name} is not a .zip; send one .zip holding {expected}")],
                              options.max_errors)
    try:
        archive = open_submission(submission, name, max_members=options.max_archive_members,
                                  max_expanded_bytes=options.max_expanded_bytes)
    except Invalid as exc:
        return Result.invalid(exc.problems, options.max_errors)
    with archive:
        return _score(parts, truths, archive, options, expected)


def _score(parts: Sequence[Part], truths: Mapping[str, Any], archive: Archive,
           options: ScoringOptions, expected: str) -> Result:
    from server.evaluators.result import Invalid, Problem, Result, listing, plural
    members: dict[str, list[Member]] = {part.name: [] for part in parts}
    unexpected: list[str] = []
    for path, info in archive.members:
        owner = next((part for part in parts if part.takes(path)), None)
        if owner is None:
            unexpected.append(path)
        else:
            members[owner.name].append((path, info))
    problems: list[Problem] = []
    warnings: list[Problem] = []
    if unexpected:
        problems.append(Problem(
            "unexpected_file",
            f"{plural(len(unexpected), 'file')} in {archive.name} "
            f"{'belongs' if len(unexpected) == 1 else 'belong'} to no part of this challenge: "
            f"{listing(unexpected, 5)}; the zip holds {expected}"))
    missing = [part for part in parts if not members[part.name]]
    for part in missing:
        problems.append(Problem("missing_part",
                                f"{archive.name} has no {part.name}: add {part.what}"))
    metrics: Metrics = {}
    details: PartDetails = {}
    for part in parts:
        if part in missing:
            continue
        try:
            scored = part.score(truths[part.name], archive, members[part.name], options)
        except Invalid as exc:
            scored = Scored(problems=exc.problems)
        warnings.extend(scored.warnings)
        if scored.problems:
            problems.extend(scored.problems)
            continue
        assert scored.metrics is not None and scored.details is not None
        clash = set(scored.metrics) & set(metrics)
        if clash:  # pragma: no cover - a kind's declaration error, caught by its tests
            raise ValueError(f"parts report the same metrics twice: {sorted(clash)}")
        metrics.update(scored.metrics)
        part_ids = scored.details.get("ids")
        if "ids" in details and part_ids is not None and part_ids != details["ids"]:
            raise ValueError(f"part {part.name} lists other exams than the others")
        if part_ids is not None:
            details["ids"] = list(part_ids)
        details.update({f"{part.name}:{k}": list(v) for k, v in scored.details.items()
                        if k != "ids"})
    if problems:
        return Result.invalid(problems, options.max_errors, warnings)
    return Result.scored(metrics, details, warnings)


def part_details(details: Details, part: str) -> dict[str, Any]:
    """A part's own details (with the shared `ids`), as its kind's functions expect them."""
    prefix = f"{part}:"
    out: dict[str, Any] = {k[len(prefix):]: v for k, v in details.items()
                           if k.startswith(prefix)}
    if "ids" in details:
        out["ids"] = details["ids"]
    return out


def one_table(archive: Archive, members: Sequence[Member], what: str) -> Member:
    """The one table member of a part; Invalid (`duplicate_path`) when the zip holds more."""
    from server.evaluators.result import Invalid, Problem, listing
    if len(members) > 1:
        raise Invalid(Problem(
            "duplicate_path", f"{archive.name} holds {len(members)} {what} tables "
            f"({listing([m[0] for m in members])}); keep one"))
    return members[0]


def table_part_scorer(index_of: Callable[[Any], IdIndex], *, label: str, check: RangeCheck,
                      metrics: Callable[[Any, dict[str, float]], tuple[Metrics, PartDetails]]
                      ) -> PartScorer:
    """A part that is one two-column table (id, value) of the zip: read as any table is
    (SPEC §3), one value per exam, scored by `metrics(truth, values)`."""
    def score(truth: Any, archive: Archive, members: Sequence[Member],
              options: ScoringOptions) -> Scored:
        from server.evaluators.matching import table_values
        from server.evaluators.segmentation import table_member_limit
        from server.evaluators.table import parse_table
        path, info = one_table(archive, members, label)
        index = index_of(truth)
        data = archive.read(path, info, limit=table_member_limit(len(index.ids)),
                            what=f"a table of {len(index.ids)} rows")
        table = parse_table(data, path, len(index.ids))
        values, problems = table_values(table, index, label=label, check=check)
        if problems:
            return Scored(problems=problems)
        found, details = metrics(truth, values)
        return Scored(metrics=found, details=details)

    return score


def stem_is(*stems: str) -> Callable[[str], bool]:
    """Takes a table member named `<stem>.csv` / `.xlsx` ... in any folder of the zip."""
    def takes(path: str) -> bool:
        from server.evaluators.table import TABLE_SUFFIXES, suffix_of
        base = path.rsplit("/", 1)[-1]
        suffix = suffix_of(base)
        return suffix in TABLE_SUFFIXES and base[: len(base) - len(suffix)].lower() in stems

    return takes


# What a combined kind offers the jury, from its parts' kinds.

def plots(parts: Sequence[Part], kinds_of: Callable[[str], Kind]
          ) -> Callable[[Mapping[str, Details], Mapping[str, str]], dict[str, str]]:
    def draw(details: Mapping[str, Details], colours: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in parts:
            kind = kinds_of(part.kind) if part.kind else None
            if kind is None or kind.plots is None:
                continue
            drawn = kind.plots({t: part_details(d, part.name) for t, d in details.items()},
                               colours)
            out.update({f"{part.name}:{key}": svg for key, svg in drawn.items()})
        return out
    return draw


def cases(parts: Sequence[Part], kinds_of: Callable[[str], Kind]
          ) -> Callable[[Details], dict[str, list[float | None]]]:
    def values(details: Details) -> dict[str, list[float | None]]:
        out: dict[str, list[float | None]] = {}
        for part in parts:
            kind = kinds_of(part.kind) if part.kind else None
            if kind is not None and kind.cases is not None:
                out.update(kind.cases(part_details(details, part.name)))
        return out
    return values


def resample(parts: Sequence[Part], kinds_of: Callable[[str], Kind]
             ) -> Callable[[Mapping[str, Details], Sequence[str], Ints], dict[str, Floats]]:
    def draws(details: Mapping[str, Details], teams: Sequence[str], picks: Ints
              ) -> dict[str, Floats]:
        out: dict[str, Floats] = {}
        for part in parts:
            kind = kinds_of(part.kind) if part.kind else None
            if kind is not None and kind.resample is not None:
                out.update(kind.resample(
                    {t: part_details(d, part.name) for t, d in details.items()}, teams, picks))
        return out
    return draws
