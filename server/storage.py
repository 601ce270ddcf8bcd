"""Storage that no team can exhaust (docs/security.md, "Resources").

Two limits, checked before an upload's first byte is read and again on its real size:
- a quota per team and challenge on the bytes it has stored (every upload is kept: it is the
  evidence of an on-time submission), by default four maximum-size uploads;
- a free-space reserve on the data dir's filesystem (by default 2 GiB or 5 % of it, whichever
  is smaller) that uploads never eat into, so that PostgreSQL, the scorers and the organizers'
  actions keep working when teams send more than the disk holds.
Both refusals are 507 `storage_full`. The centers' exams (the web upload's chunks, the DICOM
node's instances: server/inclusion/upload.py, node.py) respect the same reserve
(`Storage.below_reserve`): a chunk gets 507, an instance the C-STORE status 0xA700. A disk
that fills anyway (another program, a reserve of 0) makes the upload fail as 507 too, not as a
traceback.

The arithmetic (`refusal`, `reserve_for`, `quota_for`) is pure; `Storage` adds the data dir,
the bytes of uploads in flight in this process, and the sweep of orphan `.part` files that a
killed server leaves behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiohttp import web

from server.config import Config
from server.errors import StorageFull
from server.keys import EVENT, POOL
from server.store.challenges import Challenge

log = logging.getLogger(__name__)

MiB = 1024**2
GiB = 1024**3
DEFAULT_RESERVE_BYTES = 2 * GiB
DEFAULT_RESERVE_FRACTION = 0.05
QUOTA_UPLOADS = 4  # the default quota: this many uploads of the challenge's maximum size
PART_GLOB = "*/*/.*.part"  # submissions/<challenge>/<team>/.<uuid>.part (server/intake.py)
SWEEP_EVERY_S = 300.0
# A .part file not written for this long belongs to no live upload: an upload that sends
# nothing for the idle timeout is dropped. The margin covers another process's settings.
MIN_ORPHAN_AGE_S = 120.0


@dataclass(frozen=True)
class Space:
    """The data dir's filesystem: bytes available to the server, and its size."""

    free: int
    total: int


def reserve_for(total: int, configured_bytes: int | None) -> int:
    """The free space uploads may never use: as configured, else 2 GiB or 5 % of the
    filesystem, whichever is smaller."""
    if configured_bytes is not None:
        return max(0, configured_bytes)
    return min(DEFAULT_RESERVE_BYTES, int(total * DEFAULT_RESERVE_FRACTION))


def quota_for(max_upload_bytes: int, challenge_quota_bytes: int | None,
              default_quota_bytes: int | None) -> int:
    """A team's quota on one challenge: the event file's, else the server's default, else
    four maximum-size uploads."""
    if challenge_quota_bytes is not None:
        return challenge_quota_bytes
    if default_quota_bytes is not None:
        return default_quota_bytes
    return QUOTA_UPLOADS * max_upload_bytes


def refusal(*, space: Space, reserve: int, in_flight: int, incoming: int, stored: int,
            quota: int, challenge: str) -> StorageFull | None:
    """Why an upload of `incoming` bytes cannot be stored now, or None. `stored` is what the
    team already keeps on this challenge; `in_flight` what uploads still being received in
    this process may write besides this one."""
    if stored + incoming > quota:
        return StorageFull(
            f"your team stores {_mib(stored)} of its {_mib(quota)} for {challenge!r}; this "
            f"upload ({_mib(incoming)}) would go past it. Send a smaller file (masks as uint8, "
            "zipped with ordinary deflate compression), or ask the organizers to raise "
            "storage_quota_mb", quota_bytes=quota, stored_bytes=stored)
    if space.free - in_flight - incoming < reserve:
        return StorageFull(
            f"the server's disk is nearly full ({_mib(space.free)} free, {_mib(reserve)} kept "
            "for the database and scoring); uploads are refused until the organizers free "
            "space. Tell the organizers; your stored submissions are kept and scored",
            free_bytes=space.free, reserve_bytes=reserve)
    return None


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, asyncpg.DiskFullError)


def refuse_if_disk_full(exc: BaseException) -> None:
    """Raises 507 `storage_full` in place of a disk-full error met while storing an upload."""
    if is_disk_full(exc):
        log.warning("an upload failed: the disk is full (%s)", exc)
        raise StorageFull(
            "the server's disk is full; your upload was not stored. Tell the organizers; "
            "your earlier submissions are kept and scored") from exc


def _mib(n: int) -> str:
    return f"{n / MiB:.1f} MiB"


def disk_space(path: Path) -> Space:
    stats = os.statvfs(path)
    # f_bavail: what an unprivileged process (PostgreSQL) may still use.
    return Space(free=stats.f_bavail * stats.f_frsize, total=stats.f_blocks * stats.f_frsize)


def sweep_partial_uploads(data_dir: Path, older_than_s: float, now: float | None = None
                          ) -> list[Path]:
    """Deletes the `.part` files of uploads that no process is receiving any more (not written
    for `older_than_s`); returns them."""
    now = time.time() if now is None else now
    removed = []
    for path in (data_dir / "submissions").glob(PART_GLOB):
        try:
            if now - path.stat().st_mtime >= older_than_s:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # its upload finished or failed meanwhile
            continue
    return removed


@dataclass
class Admission:
    """An upload's place on the disk, held while it is received."""

    storage: Storage
    key: tuple[int, int]
    incoming: int
    stored: int
    quota: int
    challenge: str
    released: bool = False

    def check(self, size: int) -> None:
        """Once the body is on disk: its real size within the quota (a body without
        Content-Length was admitted on the challenge's maximum size)."""
        if self.stored + size > self.quota:
            raise StorageFull(
                f"your team stores {_mib(self.stored)} of its {_mib(self.quota)} for "
                f"{self.challenge!r}; this upload ({_mib(size)}) would go past it. Send a "
                "smaller file, or ask the organizers to raise storage_quota_mb",
                quota_bytes=self.quota, stored_bytes=self.stored)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.storage.in_flight -= self.incoming
            left = self.storage.team_in_flight.pop(self.key, 0) - self.incoming
            if left > 0:
                self.storage.team_in_flight[self.key] = left


@dataclass
class Storage:
    data_dir: Path
    reserve_bytes: int | None = None  # None: the default rule
    default_quota_bytes: int | None = None
    orphan_age_s: float = MIN_ORPHAN_AGE_S
    # Bytes that uploads being received in this process may still write: in all, and per
    # (challenge id, team id).
    in_flight: int = 0
    team_in_flight: dict[tuple[int, int], int] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> Storage:
        def mib(value: float | None) -> int | None:
            return None if value is None else int(value * MiB)

        return cls(config.data_dir, mib(config.storage_reserve_mb), mib(config.storage_quota_mb),
                   max(MIN_ORPHAN_AGE_S, 2 * config.upload_idle_timeout_s))

    async def space(self) -> Space:
        # statvfs is one system call that does not touch the disk: called in the loop, not
        # behind the fsyncs queued in the default executor during a rush.
        return disk_space(self.data_dir)

    def reserve(self, space: Space) -> int:
        return reserve_for(space.total, self.reserve_bytes)

    def below_reserve(self, incoming: int, space: Space | None = None) -> StorageFull | None:
        """Why `incoming` more bytes of an exam (a web upload's chunk, a DICOM instance)
        cannot be stored now, or None: the same reserve as the submissions'. Exams count no
        team quota (a center's uploads are bounded by the inclusion limits)."""
        space = disk_space(self.data_dir) if space is None else space
        reserve = self.reserve(space)
        if space.free - self.in_flight - incoming < reserve:
            return StorageFull(
                f"the server's disk is nearly full ({_mib(space.free)} free, {_mib(reserve)} "
                "kept for the database and scoring); nothing of this was kept. Send it again "
                "later: the organizers are freeing space", free_bytes=space.free,
                reserve_bytes=reserve)
        return None

    async def admit(self, pool: asyncpg.Pool, *, challenge_id: int, challenge: str,
                    team_id: int, incoming: int, quota: int, most_stored: int) -> Admission:
        """Admits an upload of up to `incoming` bytes, or raises 507 `storage_full`. The
        admission is released when the request's task ends, whatever happens to it.
        `most_stored` bounds what the team can have stored (its uploads × the largest size):
        when even that leaves room, the database is not asked (the rush's common case)."""
        key = (challenge_id, team_id)
        # The team's other uploads still being received here count as stored already.
        receiving = self.team_in_flight.get(key, 0)
        if most_stored + receiving + incoming <= quota:
            stored = receiving  # whatever the team stored, this fits: no query (see check)
        else:
            async with pool.acquire() as conn:
                stored = receiving + await stored_bytes(conn, challenge_id, team_id)
        space = await self.space()
        refused = refusal(space=space, reserve=self.reserve(space), in_flight=self.in_flight,
                          incoming=incoming, stored=stored, quota=quota, challenge=challenge)
        if refused is not None:
            raise refused
        admission = Admission(self, key, incoming, stored, quota, challenge)
        self.in_flight += incoming
        self.team_in_flight[key] = receiving + incoming
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _task: admission.release())
        return admission

    def sweep(self) -> None:
        removed = sweep_partial_uploads(self.data_dir, self.orphan_age_s)
        if removed:
            log.info("removed %d orphan upload file(s) (.part) under %s", len(removed),
                     self.data_dir / "submissions")


@dataclass(frozen=True)
class DiskReport:
    """The data dir's free space as the organizer console shows it."""

    path: str
    free: str
    total: str
    reserve: str
    low: bool  # uploads are being refused for lack of space


async def disk_report(storage: Storage) -> DiskReport:
    space = await storage.space()
    reserve = storage.reserve(space)
    return DiskReport(str(storage.data_dir), _size(space.free), _size(space.total),
                      _size(reserve), space.free - storage.in_flight < reserve)


def _size(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / MiB:.0f} MiB"


async def stored_bytes(conn: asyncpg.Connection, challenge_id: int, team_id: int) -> int:
    """What a team keeps on a challenge: every upload it made is stored."""
    value = await conn.fetchval(
        "SELECT coalesce(sum(size), 0) FROM submission WHERE challenge_id = $1 AND team_id = $2",
        challenge_id, team_id)
    return int(value)


STORAGE = web.AppKey("storage", Storage)


async def admit_upload(request: web.Request, challenge: Challenge, team_id: int,
                       uploads: int) -> Admission:
    """The intake's hook: admits the upload about to be received on `challenge`, the
    team having made `uploads` before it."""
    storage = request.app[STORAGE]
    spec = request.app[EVENT].challenge(challenge.slug)
    quota = quota_for(challenge.max_upload_bytes, spec.storage_quota_bytes,
                      storage.default_quota_bytes)
    incoming = request.content_length or challenge.max_upload_bytes
    if request.content_length is not None:
        incoming = min(incoming, challenge.max_upload_bytes)
    return await storage.admit(request.app[POOL], challenge_id=challenge.id,
                               challenge=challenge.slug, team_id=team_id, incoming=incoming,
                               quota=quota, most_stored=uploads * challenge.max_upload_bytes)


async def housekeeping(app: web.Application) -> AsyncIterator[None]:
    """Sweeps orphan `.part` files at start, then every few minutes, for the app's life."""
    storage = app[STORAGE]
    await asyncio.to_thread(storage.data_dir.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(storage.sweep)

    async def sweep_forever() -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            try:
                await asyncio.to_thread(storage.sweep)
            except OSError as exc:
                log.warning("could not sweep orphan uploads: %s", exc)

    task = asyncio.create_task(sweep_forever(), name="storage-sweep")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
