"""The final day built from a set (docs/datasets.md): a challenge whose event file says
`truth = "set:validation"` (or `release = "set:test"`) gets its truth and its release written
from that set's exams into the data dir, in the formats of docs/formats.md.

- the truth: written by the challenge's kind (`Kind.write_truth`, server/kinds/): a table
  (`truth.csv`) for binary-probability, regression and detection, a folder (`truth/`) for
  segmentation-surface, segmentation-3d and the nodule task, from each exam's folder
  (series + annotation) and its summary. A kind without a writer cannot take its truth from
  a set (the event file refuses it).
- the release, for any kind: `release/<id>/...` each exam's images (its folder without
  `annotation/`), never an annotation.

An exam's id is its exam number, as in the set's manifest. Files are written into a temporary
file or folder that replaces the old one, so a reader never sees half of a truth.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from server import kinds
from server.errors import NoTruth, SplitRefused
from server.event import ChallengeSpec, EventSpec
from server.kinds.base import SetExam, TruthMissing, TruthShape

log = logging.getLogger("podium.dataset")

SET_PREFIX = "set:"
ANNOTATION = "annotation"
PARTIAL = ".partial"


def truth_from_set(kind: str) -> bool:
    """Whether Podium can write a truth of `kind` from a set."""
    return kinds.get(kind).write_truth is not None


def final_folder(data_dir: Path, slug: str) -> Path:
    return data_dir / "final" / slug


def truth_path(data_dir: Path, slug: str, shape: TruthShape = "file") -> Path:
    """Where a truth built from a set is: `truth.csv`, or the folder `truth/`."""
    return final_folder(data_dir, slug) / ("truth" if shape == "folder" else "truth.csv")


def release_path(data_dir: Path, slug: str) -> Path:
    return final_folder(data_dir, slug) / "release"


def truth_of(challenge: ChallengeSpec, data_dir: Path) -> Path:
    return truth_path(data_dir, challenge.slug, kinds.get(challenge.kind).truth_shape)


def check_startable(challenge: ChallengeSpec) -> None:
    """NoTruth when the challenge's truth comes from a set and is not written yet (no split
    made): its clock would start with nothing to score against."""
    if challenge.truth_set is not None and not challenge.truth.exists():
        raise NoTruth(challenge.slug, challenge.truth_set)


def resolve(event: EventSpec, data_dir: Path) -> EventSpec:
    """The event with each challenge's `set:` truth and release pointing into the data dir
    (the truth always; the release once it is built, None before: nothing to arm yet)."""
    changed = []
    for c in event.challenges:
        if c.truth_set is None and c.release_set is None:
            changed.append(c)
            continue
        release = c.release
        if c.release_set is not None:
            built = release_path(data_dir, c.slug)
            release = built if built.is_dir() else None
        changed.append(dataclasses.replace(
            c, truth=truth_of(c, data_dir) if c.truth_set is not None else c.truth,
            release=release))
    return dataclasses.replace(event, challenges=tuple(changed))


class ExamRow(SetExam):
    """What the final day needs of one exam of the set (a SetExam, positional as before)."""

    def __init__(self, id: int, folder: Path | None, value: float | str | None,
                 summary: Mapping[str, Any] | None = None) -> None:
        super().__init__(id, folder, dict(summary or {}), value)


def _refused(challenge: ChallengeSpec, missing: TruthMissing) -> SplitRefused:
    return SplitRefused(f"exam {missing.exam} of the set has no {missing.what}: the truth of "
                        f"{challenge.slug} cannot be written; withdraw or correct it")


def write_truth(challenge: ChallengeSpec, rows: Sequence[SetExam], target: Path) -> None:
    """The challenge's truth written by its kind at `target` (which must not exist);
    SplitRefused naming the first exam that lacks what it needs."""
    writer = kinds.get(challenge.kind).write_truth
    if writer is None:
        raise SplitRefused(f"a {challenge.kind} truth cannot be written from a set: give "
                           f"{challenge.slug}'s truth as a path")
    try:
        writer(challenge, sorted(rows, key=lambda r: r.id), target)
    except TruthMissing as exc:
        raise _refused(challenge, exc) from None


def truth_csv(challenge: ChallengeSpec, rows: Sequence[SetExam]) -> str:
    """The truth of a table kind as text (what `build` writes to truth.csv)."""
    import tempfile
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "truth.csv"
        write_truth(challenge, rows, target)
        return target.read_text(encoding="utf-8")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _swap(partial: Path, target: Path) -> None:
    """`partial` in place of `target` (a file or a folder): the old one moved aside first."""
    old = target.with_name(target.name + ".old")
    _remove(old)
    if target.exists():
        target.replace(old)
    partial.replace(target)
    _remove(old)


def prepare_truth(challenge: ChallengeSpec, rows: Sequence[SetExam], data_dir: Path) -> Path:
    """Writes the truth beside its place (`<truth>.partial`) and returns it, for `build` to put
    in place; nothing is left behind when it is refused (blocking: run it in a thread)."""
    target = truth_of(challenge, data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + PARTIAL)
    _remove(partial)
    try:
        write_truth(challenge, rows, partial)
    except BaseException:
        _remove(partial)
        raise
    return partial


def discard(prepared: Path | None) -> None:
    if prepared is not None:
        _remove(prepared)


def build(challenge: ChallengeSpec, truth_rows: Sequence[SetExam],
          release_rows: Sequence[SetExam], data_dir: Path, *,
          prepared: Path | None = None) -> list[Path]:
    """Writes the challenge's truth (or puts the one `prepare_truth` wrote in place) and/or its
    release from its set's exams (blocking: run it in a thread). Returns what was written."""
    folder = final_folder(data_dir, challenge.slug)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if challenge.truth_set is not None:
        target = truth_of(challenge, data_dir)
        partial = prepared or prepare_truth(challenge, truth_rows, data_dir)
        _swap(partial, target)
        written.append(target)
    if challenge.release_set is not None:
        target = release_path(data_dir, challenge.slug)
        partial = target.with_name(target.name + PARTIAL)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        for row in sorted(release_rows, key=lambda r: r.id):
            if row.folder is None or not row.folder.is_dir():
                raise SplitRefused(f"exam {row.id}'s folder is missing: the release of "
                                   f"{challenge.slug} cannot be written")
            shutil.copytree(row.folder, partial / str(row.id),
                            ignore=shutil.ignore_patterns(ANNOTATION))
        _swap(partial, target)
        written.append(target)
    return written
