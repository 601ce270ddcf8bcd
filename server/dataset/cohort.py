"""From a question's kept exams to its split in force (docs/datasets.md): what the split core
knows of each exam, making (or redoing) the split, its manifests and its report as JSON. Used
by the organizers' API (server/dataset/views.py) and `podium split` alike."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg

from server.dataset import final
from server.dataset.manifest import ManifestExam, write_manifest
from server.dataset.split import (
    SEED_MALIGNANT,
    Split,
    SplitExam,
    SplitPlan,
    exam_class,
    exam_value,
    report,
    split,
    value_bin,
)
from server.errors import NoSplit, NoSplitDeclared, SplitRefused
from server.event import ChallengeSpec, EventSpec
from server.store import exams as exam_store
from server.store import splits as split_store
from server.store.exams import Exam, Stage

log = logging.getLogger("podium.dataset")

# Kept exams a question may have; far above the seed's 1,525.
MAX_EXAMS = 100_000


def _malignancy(challenge: ChallengeSpec) -> tuple[float | None, float | None]:
    criteria = challenge.inclusion.criteria if challenge.inclusion is not None else None
    nodules = getattr(criteria, "nodules", None)
    rule = getattr(nodules, "malignant", None)
    if rule is None:
        return SEED_MALIGNANT
    return rule.volume_mm3_above, rule.diameter_mm_above


def split_exam(exam: Exam, challenge: ChallengeSpec) -> SplitExam:
    """What the split knows of a kept exam: its patient, center, grade, and its class or its
    value's bin as the question's `stratify` asks."""
    spec = challenge.splits
    target = None
    if spec is not None and "class" in spec.stratify:
        target = exam_class(exam.summary, _malignancy(challenge))
    elif spec is not None and "value" in spec.stratify and spec.value is not None:
        target = value_bin(exam_value(exam.summary, spec.value), spec.bins)
    return SplitExam(id=exam.id, patient=exam.pseudonym, center=exam.center, target=target,
                     grade=exam.grade)


def plan_of(challenge: ChallengeSpec) -> SplitPlan:
    if challenge.splits is None:
        raise NoSplitDeclared(challenge.slug)
    return SplitPlan(seed=challenge.splits.seed, sets=challenge.splits.sets,
                     stratify=challenge.splits.stratify)


async def kept_exams(conn: asyncpg.Connection, slug: str) -> list[Exam]:
    return await exam_store.exams(conn, challenge=slug, stage=Stage.KEPT, limit=MAX_EXAMS)


def manifest_folder(data_dir: Path, slug: str, split_id: int) -> Path:
    return data_dir / "splits" / slug / str(split_id)


async def make_split(conn: asyncpg.Connection, challenge: ChallengeSpec, data_dir: Path, *,
                     by: str, redo: bool = False) -> dict[str, Any]:
    """Splits the question's kept exams as its `[challenges.splits]` declares, records the
    split, writes each set's manifest (and the final day's files when its event file names a
    set), and returns the report (`split_json`). What would stop the files being written (an
    exam's folder gone, an exam without its label) refuses the split before it is recorded."""
    plan = plan_of(challenge)
    exams = await kept_exams(conn, challenge.slug)
    result = split([split_exam(e, challenge) for e in exams], plan)
    by_id = {e.id: e for e in exams}
    for exam_id, name in sorted(result.assignment.items()):
        folder = by_id[exam_id].folder
        if name and (folder is None or not folder.is_dir()):
            raise SplitRefused(f"exam {exam_id}'s folder {folder} is missing: restore it, or "
                               "withdraw the exam, then split again")
    truth_rows, release_rows = _final_rows(challenge, result, by_id)
    # The truth is written aside before the split is recorded: an exam without what it needs
    # refuses the split, and a split refused leaves the truth in force as it was.
    prepared = None
    if challenge.truth_set is not None:
        prepared = await asyncio.to_thread(final.prepare_truth, challenge, truth_rows,
                                           data_dir)
    try:
        assert challenge.splits is not None
        split_id = await split_store.record(conn, challenge.slug, seed=plan.seed,
                                            declared=asdict(challenge.splits),
                                            sizes=result.sizes, assignment=result.assignment,
                                            by=by, redo=redo)
        folder = manifest_folder(data_dir, challenge.slug, split_id)
        for name, _ in result.sizes:
            members = [ManifestExam(e.id, e.center, by_id[e.id].folder or Path())
                       for e in result.members(name)]
            await asyncio.to_thread(write_manifest, folder / f"{name}.csv", members)
        if challenge.truth_set is not None or challenge.release_set is not None:
            await asyncio.to_thread(final.build, challenge, truth_rows, release_rows,
                                    data_dir, prepared=prepared)
            prepared = None
    finally:
        final.discard(prepared)
    return await split_json(conn, challenge, data_dir)


def _final_rows(challenge: ChallengeSpec, result: Split, exams: dict[int, Exam]
                ) -> tuple[list[final.ExamRow], list[final.ExamRow]]:
    """The exams of the sets the truth and the release are built from, the truth's with their
    label or value and their summary (what the kind's truth writer reads)."""
    spec = challenge.splits

    def value(exam: Exam) -> float | str | None:
        if challenge.kind == "regression" and spec is not None and spec.value is not None:
            return exam_value(exam.summary, spec.value)
        return exam_class(exam.summary, _malignancy(challenge))

    def rows(name: str | None, with_value: bool) -> list[final.ExamRow]:
        if name is None:
            return []
        return [final.ExamRow(e.id, exams[e.id].folder,
                              value(exams[e.id]) if with_value else None,
                              exams[e.id].summary)
                for e in result.members(name) if e.id in exams]

    return rows(challenge.truth_set, True), rows(challenge.release_set, False)


async def build_final(conn: asyncpg.Connection, challenge: ChallengeSpec,
                      data_dir: Path) -> list[Path]:
    """Writes the challenge's truth and release from the sets its event file names (nothing
    when it names none); NoSplit when it is not split yet."""
    if challenge.truth_set is None and challenge.release_set is None:
        return []
    _, result, exams = await stored_split(conn, challenge)
    truth_rows, release_rows = _final_rows(challenge, result, exams)
    return await asyncio.to_thread(final.build, challenge, truth_rows, release_rows, data_dir)


async def ensure_final(conn: asyncpg.Connection, event: EventSpec, data_dir: Path) -> bool:
    """At the server's start: writes what is missing of each final day built from a set whose
    split exists. Returns whether anything was written (the event is then resolved again)."""
    written = False
    for challenge in event.challenges:
        if challenge.truth_set is None and challenge.release_set is None:
            continue
        missing = ((challenge.truth_set is not None and not challenge.truth.exists())
                   or (challenge.release_set is not None and challenge.release is None))
        if not missing:
            continue
        try:
            written = bool(await build_final(conn, challenge, data_dir)) or written
        except NoSplit:
            log.warning("%s: its truth or release comes from a set, and it is not split yet: "
                        "make the split (POST /api/v1/challenges/%s/split or podium split)",
                        challenge.slug, challenge.slug)
    return written


async def stored_split(conn: asyncpg.Connection, challenge: ChallengeSpec
                       ) -> tuple[split_store.StoredSplit, Split, dict[int, Exam]]:
    """The split in force as the core's Split (its exams as they are now), with the exams."""
    stored = await split_store.current(conn, challenge.slug)
    if stored is None:
        raise NoSplit(challenge.slug)
    rows = [await exam_store.exam(conn, i) for i in sorted(stored.assignment)]
    exams = {e.id: e for e in rows if e is not None}
    result = Split(seed=stored.seed, sizes=tuple((s.name, s.size) for s in stored.sets),
                   assignment=stored.assignment,
                   exams=tuple(split_exam(e, challenge) for e in exams.values()))
    return stored, result, exams


async def split_json(conn: asyncpg.Connection, challenge: ChallengeSpec,
                     data_dir: Path) -> dict[str, Any]:
    """The report of the split in force: per set its size, when it was first released, its
    exams and patients, and its counts per center, per class or bin and per grade."""
    stored, result, _ = await stored_split(conn, challenge)
    released = {s.name: s.released_at for s in stored.sets}
    folder = manifest_folder(data_dir, challenge.slug, stored.id)
    sets = []
    for row in report(result):
        name = row["set"]
        when = released.get(name) if name else None
        sets.append({**row, "released_at": when.isoformat() if when else None,
                     "manifest": str(folder / f"{name}.csv") if name else None})
    return {"challenge": challenge.slug, "split": stored.id, "seed": stored.seed,
            "stratify": list(stored.declared.get("stratify", [])),
            "made_by": stored.made_by, "made_at": stored.made_at.isoformat(), "sets": sets}


def set_exams(result: Split, exams: dict[int, Exam], name: str) -> Sequence[Exam]:
    return [exams[e.id] for e in result.members(name) if e.id in exams]
