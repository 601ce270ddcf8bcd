"""Batch releases of training sets (docs/datasets.md, "Batches").

A batch is a part of a training set of the question's split: the set's exams in exam order
(the order they arrived in) cut into `parts` runs of nearly equal size, the first ones one
exam longer when they do not divide evenly. Its archive holds each exam's folder as it was
kept, images and annotations (a training set's truth goes out with it), packed by the final
day's packer (server/release/archive.py: MANIFEST.csv with SHA-256 per file, sealing).

A batch is open from its `opens` moment on the server's clock, or from when an organizer
opens it. It is packed when first opened or asked for once open, and packing marks its set
released, so the split can no longer change once any of its exams went out.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import asyncpg

from server.dataset.cohort import stored_split
from server.errors import BatchNotOpen, SplitRefused, UnknownBatch
from server.event import BatchSpec, ChallengeSpec
from server.release.archive import prepare_release
from server.store import batches as batch_store
from server.store import splits as split_store
from server.store.batches import PackedBatch


class BatchState(StrEnum):
    OPEN = "open"
    SCHEDULED = "scheduled"      # opens at its `opens` moment
    WAITING = "waiting"          # waits for an organizer to open it


def state_at(spec: BatchSpec, opened_at: datetime | None, now: datetime) -> BatchState:
    """Open from the second of its `opens` (inclusive) or once an organizer opened it."""
    if opened_at is not None or (spec.opens is not None and now >= spec.opens):
        return BatchState.OPEN
    return BatchState.SCHEDULED if spec.opens is not None else BatchState.WAITING


def part_of(exams: Sequence[int], part: int, parts: int) -> list[int]:
    """Part `part` (from 1) of `parts` of a set's exams, in exam order."""
    ordered = sorted(exams)
    size, extra = divmod(len(ordered), parts)
    start = (part - 1) * size + min(part - 1, extra)
    return ordered[start:start + size + (1 if part <= extra else 0)]


def next_opening(batches: Sequence[BatchSpec], opened: dict[str, datetime | None],
                 now: datetime) -> datetime | None:
    """The earliest scheduled opening still to come."""
    coming = [b.opens for b in batches if b.opens is not None and b.opens > now
              and opened.get(b.name) is None]
    return min(coming) if coming else None


def spec_of(challenge: ChallengeSpec, name: str) -> BatchSpec:
    spec = challenge.batch(name)
    if spec is None:
        raise UnknownBatch(challenge.slug, name, [b.name for b in challenge.batches])
    return spec


def batch_folder(data_dir: Path, slug: str, name: str) -> Path:
    return data_dir / "batches" / slug / name


@dataclass(frozen=True)
class BatchExam:
    id: int
    folder: Path


def stage(exams: Sequence[BatchExam], target: Path) -> Path:
    """The batch's folder, `<exam id>/...` each exam's whole folder, hard-linked where the
    file system allows (copied otherwise). Written beside and renamed, so a crash leaves no
    half of one; kept once complete. Blocking: run it in a thread."""
    if target.is_dir():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for exam in sorted(exams, key=lambda e: e.id):
        if not exam.folder.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
            raise SplitRefused(f"exam {exam.id}'s folder {exam.folder} is missing: the batch "
                               "cannot be packed; restore it")
        shutil.copytree(exam.folder, partial / str(exam.id), copy_function=_link_or_copy)
    partial.replace(target)
    return target


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK,
                             errno.ENOTSUP):
            raise
        shutil.copy2(source, target)


_packing: dict[tuple[str, str], asyncio.Lock] = {}


async def packed_batch(pool: asyncpg.Pool, challenge: ChallengeSpec, spec: BatchSpec,
                       data_dir: Path) -> PackedBatch:
    """The batch's archive, packed now if it was not yet (its set then marked released).
    NoSplit when the question is not split. No connection is held while files are packed:
    teams asking at the opening second wait on the lock, not on the pool."""
    async with pool.acquire() as conn:
        found = await batch_store.packed_one(conn, challenge.slug, spec.name)
    if found is not None:
        return found
    lock = _packing.setdefault((challenge.slug, spec.name), asyncio.Lock())
    async with lock:
        async with pool.acquire() as conn:
            found = await batch_store.packed_one(conn, challenge.slug, spec.name)
            if found is not None:
                return found
            stored, result, exams = await stored_split(conn, challenge)
        members = part_of([e.id for e in result.members(spec.set)], spec.part, spec.parts)
        folders = [BatchExam(i, exams[i].folder or Path()) for i in members if i in exams]
        place = batch_folder(data_dir, challenge.slug, spec.name) / f"split-{stored.id}"
        # One folder per split: a batch of a redone split is packed from the new one.
        source = place / f"{challenge.slug}-{spec.name}"

        def pack() -> tuple[Path, int, str, str | None]:
            stage(folders, source)
            release = prepare_release(source, place / "archive", sealed=spec.sealed)
            return release.path, release.size, release.sha256, release.key

        path, size, sha256, key = await asyncio.to_thread(pack)
        async with pool.acquire() as conn, conn.transaction():
            # The split in force must still be the one packed from; its set is now out. The
            # challenge's row is locked as a redo of the split locks it (store/splits.py).
            await conn.execute("SELECT id FROM challenge WHERE slug = $1 FOR UPDATE",
                               challenge.slug)
            again = await split_store.current(conn, challenge.slug)
            if again is None or again.id != stored.id:
                raise SplitRefused(f"the split of {challenge.slug} changed while batch "
                                   f"{spec.name!r} was packed; ask again")
            await batch_store.record_packed(conn, challenge.slug, spec.name, spec.set,
                                            members, path, size, sha256, spec.sealed, key)
            await split_store.mark_released(conn, challenge.slug, spec.set)
            packed = await batch_store.packed_one(conn, challenge.slug, spec.name)
        assert packed is not None
        return packed


async def open_now(pool: asyncpg.Pool, challenge: ChallengeSpec, spec: BatchSpec,
                   data_dir: Path, by: str | None) -> PackedBatch:
    """An organizer opens the batch now: packed first (which releases its set), then marked
    opened by `organizer (<by>)`; opening twice keeps the first opening. The route's
    (`POST .../batches/{name}/open`) and the demo's (server/demo_inclusion.py) one path."""
    await packed_batch(pool, challenge, spec, data_dir)
    async with pool.acquire() as conn:
        await batch_store.mark_opened(conn, challenge.slug, spec.name,
                                      f"organizer ({by})" if by else "organizer")
        packed = await batch_store.packed_one(conn, challenge.slug, spec.name)
    assert packed is not None
    return packed


def require_open(challenge: ChallengeSpec, spec: BatchSpec, packed: PackedBatch | None,
                 now: datetime, timezone: str) -> None:
    """BatchNotOpen (403 not_started) before its moment; a sealed batch may go out before."""
    opened_at = packed.opened_at if packed is not None else None
    if spec.sealed or state_at(spec, opened_at, now) is BatchState.OPEN:
        return
    raise BatchNotOpen(challenge.slug, spec.name, spec.opens, timezone)
