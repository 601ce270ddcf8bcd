"""The final day built from a set (docs/datasets.md): a challenge whose event file says
`truth = "set:validation"` (or `release = "set:test"`) gets its truth and its release written
from that set's exams into the data dir, in the formats of docs/formats.md.

- `binary-probability`: `truth.csv` of `id,label`, 1 for malignant (server/dataset/split.py
  `exam_class`: the exam's label, else its nodules by the question's malignancy rule).
- `regression`: `truth.csv` of `id,value`, the clinical value `[challenges.splits] value`.
- the release, for any kind: `release/<id>/...` each exam's images (its folder without
  `annotation/`), never an annotation.

An exam's id is its exam number, as in the set's manifest. Files are written into a temporary
folder that replaces the old one, so a reader never sees half of a truth.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from server.errors import SplitRefused
from server.event import ChallengeSpec, EventSpec

log = logging.getLogger("podium.dataset")

SET_PREFIX = "set:"
# The kinds whose truth Podium can write from a set, and its column.
TABLE_TRUTH = {"binary-probability": "label", "regression": "value"}
ANNOTATION = "annotation"


def final_folder(data_dir: Path, slug: str) -> Path:
    return data_dir / "final" / slug


def truth_path(data_dir: Path, slug: str) -> Path:
    return final_folder(data_dir, slug) / "truth.csv"


def release_path(data_dir: Path, slug: str) -> Path:
    return final_folder(data_dir, slug) / "release"


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
            c, truth=truth_path(data_dir, c.slug) if c.truth_set is not None else c.truth,
            release=release))
    return dataclasses.replace(event, challenges=tuple(changed))


class ExamRow:
    """What the final day needs of one exam of the set."""

    def __init__(self, id: int, folder: Path | None, value: float | str | None) -> None:
        self.id = id
        self.folder = folder
        self.value = value


def truth_csv(challenge: ChallengeSpec, rows: Sequence[ExamRow]) -> str:
    """The truth table, ids in exam order; SplitRefused naming the first exam without its
    label or value (a truth with a hole would score every team wrongly)."""
    column = TABLE_TRUTH[challenge.kind]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", column])
    for row in sorted(rows, key=lambda r: r.id):
        if row.value is None:
            what = ("benign / malignant (no label, no nodule sizes)" if column == "label"
                    else f"its {challenge.splits.value if challenge.splits else 'value'}")
            raise SplitRefused(f"exam {row.id} of the set has no {what}: the truth of "
                               f"{challenge.slug} cannot be written; withdraw or correct it")
        value = row.value
        if column == "label":
            value = 1 if value == "malignant" else 0
        writer.writerow([row.id, f"{value:g}" if isinstance(value, float) else value])
    return out.getvalue()


def build(challenge: ChallengeSpec, truth_rows: Sequence[ExamRow],
          release_rows: Sequence[ExamRow], data_dir: Path) -> list[Path]:
    """Writes the challenge's truth and/or release from its set's exams (blocking: run it in
    a thread). Returns what was written."""
    folder = final_folder(data_dir, challenge.slug)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if challenge.truth_set is not None:
        target = truth_path(data_dir, challenge.slug)
        partial = target.with_name(target.name + ".partial")
        partial.write_text(truth_csv(challenge, truth_rows), encoding="utf-8")
        partial.replace(target)
        written.append(target)
    if challenge.release_set is not None:
        target = release_path(data_dir, challenge.slug)
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        for row in sorted(release_rows, key=lambda r: r.id):
            if row.folder is None or not row.folder.is_dir():
                raise SplitRefused(f"exam {row.id}'s folder is missing: the release of "
                                   f"{challenge.slug} cannot be written")
            shutil.copytree(row.folder, partial / str(row.id),
                            ignore=shutil.ignore_patterns(ANNOTATION))
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.replace(old)
        partial.replace(target)
        shutil.rmtree(old, ignore_errors=True)
        written.append(target)
    return written
