"""The centers' resumable web upload: one zip per exam (docs/inclusion-platform.md).

Modelled on the tus protocol's core (creation, then PATCH at an offset, HEAD to learn it):

- `POST /api/v1/challenges/{slug}/uploads` with `Upload-Length` (and optionally tus'
  `Upload-Metadata: filename <base64>`) opens an upload: 201, `Location`, `Upload-Offset: 0`.
- `PATCH /api/v1/uploads/{id}` with `Upload-Offset` and a body of
  `application/offset+octet-stream` appends; the bytes are fsynced before the 204 that gives
  the new `Upload-Offset`. A chunk that does not start where the server's copy ends is
  refused (409 `offset_mismatch`, with the offset to send from). Below the data dir's
  free-space reserve (the submissions', server/storage.py) a chunk is refused whole: 507
  `storage_full`, nothing of it kept, the center sends it again later from the same offset.
- `HEAD` gives the offset; `GET` the upload's state as JSON, and the exam once there is one.

The offset is the length of `DATA_DIR/inclusion/uploads/<id>.zip`: what a cut connection or a
killed server wrote is kept, and the center resumes from there. On the last byte the zip is
unpacked (safely: no path out of the folder, no link, entry-count and size limits checked as
it unpacks, `__MACOSX` and other junk left out) into `inclusion/unpacked/<id>/`, and handed to
`Intake.receive`, which takes the folder. A server stopped at any point after the last byte
finishes the job on its next start.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import asyncpg
from aiohttp import web

from server.access import Role
from server.auth import principal_of, requires
from server.deid.engine import NotDicomError, read_dicom
from server.durable import fsync_dir
from server.errors import (
    BadArchive,
    BadChunk,
    BadUploadLength,
    NotCenterQuestion,
    OffsetMismatch,
    UnknownChallenge,
    UnknownUpload,
    UploadClosed,
    UploadInterrupted,
    UploadTimeout,
    UploadTooLarge,
)
from server.inclusion.pipeline import MASK_SUFFIXES, TABLE_SUFFIXES, is_junk, source_key
from server.isotime import iso
from server.keys import CONFIG, EVENT, INTAKE, POOL
from server.storage import STORAGE, is_disk_full, refuse_if_disk_full

log = logging.getLogger("podium.upload")

UPLOADS = Path("inclusion") / "uploads"
UNPACKED = Path("inclusion") / "unpacked"
TUS_VERSION = "1.0.0"
CHUNK_TYPE = "application/offset+octet-stream"
READ_BYTES = 1024 * 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    upload_bytes: int
    unpacked_bytes: int
    entries: int


@dataclass(frozen=True)
class Upload:
    id: int
    center_id: int
    challenge: str
    name: str
    length: int
    state: str
    source_key: str | None
    exam_id: int | None
    error_code: str | None
    error: str | None
    created_at: Any

    @classmethod
    def of(cls, row: asyncpg.Record) -> Upload:
        return cls(row["id"], row["center_id"], row["slug"], row["name"], row["length"],
                   row["state"], row["source_key"], row["exam_id"], row["error_code"],
                   row["error"], row["created_at"])


_SELECT = """SELECT u.id, u.center_id, c.slug, u.name, u.length, u.state, u.source_key,
                    u.exam_id, u.error_code, u.error, u.created_at
             FROM inclusion_upload u JOIN challenge c ON c.id = u.challenge_id"""


async def _upload(conn: asyncpg.Connection, upload_id: int) -> Upload | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE u.id = $1", upload_id)  # noqa: S608
    return Upload.of(row) if row is not None else None


async def _set_state(conn: asyncpg.Connection, upload_id: int, state: str, *,
                     exam_id: int | None = None, error_code: str | None = None,
                     error: str | None = None) -> None:
    await conn.execute(
        """UPDATE inclusion_upload SET state = $2, exam_id = $3, error_code = $4, error = $5,
               updated_at = podium_now() WHERE id = $1""",
        upload_id, state, exam_id, error_code, error)


# -- unpacking (blocking: run in a thread) -----------------------------------------------------

def unpack(archive_path: Path, target: Path, limits: Limits) -> int:
    """Unpacks the zip into `target` (written as `target.partial`, renamed whole); returns
    the number of files. BadArchive, in the center's words, for anything unsafe or unusable."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        files = _unpack_into(archive_path, partial, limits)
        for directory in [partial, *(p for p in partial.rglob("*") if p.is_dir())]:
            fsync_dir(directory)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
        fsync_dir(target.parent)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return files


def _unpack_into(archive_path: Path, folder: Path, limits: Limits) -> int:
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError):
        raise BadArchive("the file is not a zip archive: send the exam's DICOM files and its "
                         "annotation zipped together (one zip per exam)") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.entries:
            raise BadArchive(f"the zip holds {len(entries)} entries; an exam may hold "
                             f"{limits.entries} at most: send one study per zip")
        declared = sum(e.file_size for e in entries)
        if declared > limits.unpacked_bytes:
            raise BadArchive(f"the zip would unpack to {declared / MIB:.1f} MiB; an exam may "
                             f"take {limits.unpacked_bytes / MIB:g} MiB at most")
        written, files = 0, 0
        for entry in entries:
            name = entry.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if (name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts):
                raise BadArchive(f"{entry.filename!r} in the zip points outside its folder; "
                                 "zip the exam's folder again, without absolute paths or '..'")
            if stat.S_ISLNK(entry.external_attr >> 16):
                raise BadArchive(f"{entry.filename!r} in the zip is a link; zip the files "
                                 "themselves")
            if entry.is_dir():
                continue
            relative = Path(*[p for p in parts if p not in ("", ".")])
            if not relative.parts or is_junk(relative):
                continue
            if entry.flag_bits & 0x1:
                raise BadArchive(f"{entry.filename!r} is encrypted; send the zip without a "
                                 "password")
            destination = folder / relative
            if destination.exists():
                raise BadArchive(f"{entry.filename!r} is in the zip twice")
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(entry) as source, destination.open("wb") as out:
                    while chunk := source.read(READ_BYTES):
                        written += len(chunk)
                        if written > limits.unpacked_bytes:
                            # The entries' sizes lied: a zip bomb.
                            raise BadArchive(f"the zip unpacks to more than "
                                             f"{limits.unpacked_bytes / MIB:g} MiB (at "
                                             f"{entry.filename!r}); an exam may take no more")
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise BadArchive(f"{entry.filename!r} cannot be unpacked ({exc}); zip the "
                                 "exam again") from None
            files += 1
    if files == 0:
        raise BadArchive("the zip holds no file")
    return files


def study_uid_of(folder: Path) -> str:
    """The StudyInstanceUID of the first DICOM file of the folder (headers only)."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name.lower().endswith(MASK_SUFFIXES + TABLE_SUFFIXES):
            continue
        try:
            dataset = read_dicom(path)
        except NotDicomError:
            continue
        uid = str(dataset.get("StudyInstanceUID", "") or "").strip()
        if uid:
            return uid
    raise BadArchive("the zip holds no DICOM file with a StudyInstanceUID: send the study's "
                     "DICOM files as the scanner or the PACS exported them")


# -- the routes --------------------------------------------------------------------------------

class Uploads:
    """One lock per upload being written (a chunk at a time), the limits, and the tasks that
    finish uploads a stopped server left complete."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._locks: dict[int, asyncio.Lock] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def lock(self, upload_id: int) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    def done(self, upload_id: int) -> None:
        lock = self._locks.get(upload_id)
        if lock is not None and not lock.locked():
            del self._locks[upload_id]


UPLOADS_KEY = web.AppKey("inclusion_uploads", Uploads)


def _data(app: web.Application) -> Path:
    return Path(app[CONFIG].data_dir)


def _path(app: web.Application, upload_id: int) -> Path:
    return _data(app) / UPLOADS / f"{upload_id}.zip"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _location(upload_id: int) -> str:
    return f"/api/v1/uploads/{upload_id}"


def _headers(offset: int, length: int | None = None) -> dict[str, str]:
    headers = {"Tus-Resumable": TUS_VERSION, "Upload-Offset": str(offset),
               "Cache-Control": "no-store"}
    if length is not None:
        headers["Upload-Length"] = str(length)
    return headers


def _file_name(metadata: str | None) -> str:
    """tus' `Upload-Metadata: filename <base64>`; exam.zip without it."""
    for pair in (metadata or "").split(","):
        key, _, value = pair.strip().partition(" ")
        if key == "filename" and value:
            try:
                name = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                break
            name = re.sub(r"[\x00-\x1f/\\]", "_", name).strip()[:200]
            if name:
                return name
    return "exam.zip"


def _whole(text: str | None) -> int | None:
    if text is None or not re.fullmatch(r"\d{1,18}", text.strip()):
        return None
    return int(text)


def _center_id(request: web.Request) -> int:
    principal = principal_of(request)
    assert principal is not None and principal.center_id is not None
    return principal.center_id


async def _own(conn: asyncpg.Connection, request: web.Request) -> Upload:
    upload_id = int(request.match_info["id"])
    upload = await _upload(conn, upload_id)
    if upload is None or upload.center_id != _center_id(request):
        raise UnknownUpload(upload_id)
    return upload


@requires(Role.CENTER)
async def create_upload(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    event = request.app[EVENT]
    known = [c.slug for c in event.challenges]
    if slug not in known:
        raise UnknownChallenge(slug, known)
    center_id = _center_id(request)
    async with request.app[POOL].acquire() as conn:
        yours = [r["slug"] for r in await conn.fetch(
            """SELECT c.slug FROM center_question q JOIN challenge c ON c.id = q.challenge_id
               WHERE q.center_id = $1 ORDER BY c.id""", center_id)]
        if slug not in yours:
            raise NotCenterQuestion(slug, yours)
        length = _whole(request.headers.get("Upload-Length"))
        if length is None or length <= 0:
            raise BadUploadLength(request.headers.get("Upload-Length"))
        limit = request.app[UPLOADS_KEY].limits.upload_bytes
        if length > limit:
            raise UploadTooLarge(limit)
        name = _file_name(request.headers.get("Upload-Metadata"))
        upload_id: int = await conn.fetchval(
            """INSERT INTO inclusion_upload (center_id, challenge_id, name, length)
               SELECT $1, id, $3, $4 FROM challenge WHERE slug = $2 RETURNING id""",
            center_id, slug, name, length)
    path = _path(request.app, upload_id)
    await asyncio.to_thread(_create_empty, path)
    return web.json_response(
        {"id": upload_id, "location": _location(upload_id), "offset": 0, "length": length},
        status=201, headers={**_headers(0, length), "Location": _location(upload_id)})


def _create_empty(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        os.fsync(out.fileno())
    fsync_dir(path.parent)


@requires(Role.CENTER)
async def append_chunk(request: web.Request) -> web.Response:
    if request.content_type != CHUNK_TYPE:
        raise BadChunk(f"send the chunk as {CHUNK_TYPE} (got {request.content_type or 'none'})")
    sent = _whole(request.headers.get("Upload-Offset"))
    if sent is None:
        raise BadChunk("give the byte the chunk starts at in the Upload-Offset header "
                       "(HEAD the upload to learn it)")
    async with request.app[POOL].acquire() as conn:
        upload = await _own(conn, request)
    uploads = request.app[UPLOADS_KEY]
    async with uploads.lock(upload.id):
        async with request.app[POOL].acquire() as conn:
            upload = await _own(conn, request)
        if upload.state != "receiving":
            raise UploadClosed(upload.id, upload.state)
        path = _path(request.app, upload.id)
        offset = await asyncio.to_thread(_size, path)
        if sent != offset:
            raise OffsetMismatch(sent, offset)
        declared = request.content_length
        if declared is not None and offset + declared > upload.length:
            raise BadChunk(f"the chunk's {declared} bytes from byte {offset} go past the "
                           f"{upload.length} bytes declared for this upload")
        # The data dir's reserve, as for the submissions (server/storage.py): below it the
        # chunk is refused whole (507) and the center sends it again later from this offset.
        storage = request.app[STORAGE]
        incoming = declared if declared is not None else upload.length - offset
        refused = storage.below_reserve(incoming)
        if refused is not None:
            log.warning("upload %s: a chunk refused, the disk is below its reserve",
                        upload.id)
            raise refused
        storage.in_flight += incoming
        try:
            offset = await _append(request, path, offset, upload.length)
        finally:
            storage.in_flight -= incoming
        if offset == upload.length:
            await _complete(request.app, upload.id)
    uploads.done(upload.id)
    return web.Response(status=204, headers=_headers(offset))


async def _append(request: web.Request, path: Path, offset: int, length: int) -> int:
    """Appends the request's body; what arrived is fsynced even when the connection breaks
    (the center resumes after it). Returns the new offset."""
    idle = request.app[CONFIG].upload_idle_timeout_s
    # Unbuffered: what arrived is in the file (and counted by HEAD) as it arrives.
    with path.open("r+b", buffering=0) as out:
        out.seek(offset)
        size = offset
        try:
            while True:
                try:
                    async with asyncio.timeout(idle):
                        chunk = await request.content.readany()
                except TimeoutError:
                    raise UploadTimeout(idle) from None
                except (ConnectionError, web.RequestPayloadError) as exc:
                    raise UploadInterrupted("the connection closed mid-chunk; HEAD the upload "
                                            f"and send from its offset ({exc})") from None
                if not chunk:
                    break
                if size + len(chunk) > length:
                    out.truncate(offset)
                    size = offset
                    raise BadChunk(f"the chunk goes past the {length} bytes declared for "
                                   "this upload; nothing of it was kept")
                view = memoryview(chunk)
                try:
                    while view:
                        view = view[out.write(view) or 0:]
                except OSError as exc:
                    if not is_disk_full(exc):
                        raise
                    # Nothing of this chunk is kept: the center sends it again from `offset`.
                    out.truncate(offset)
                    size = offset
                    refuse_if_disk_full(exc)
                size += len(chunk)
        finally:
            try:
                await asyncio.to_thread(os.fsync, out.fileno())
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                out.truncate(offset)
                refuse_if_disk_full(exc)
    return size


async def _complete(app: web.Application, upload_id: int) -> None:
    """Every byte is here: unpack, hand to the intake, record the exam (or the refusal).
    Safe to run again after a stop at any point."""
    pool, data = app[POOL], _data(app)
    async with pool.acquire() as conn:
        upload = await _upload(conn, upload_id)
        if upload is None or upload.state in ("received", "refused"):
            return
        if upload.state == "receiving":
            await _set_state(conn, upload_id, "unpacking")
    folder = data / UNPACKED / str(upload_id)
    async with pool.acquire() as conn:
        if upload.source_key is not None and not folder.exists():
            # Handed to the intake before a stop: the exam is there if its commit was.
            exam_id = await conn.fetchval(
                """SELECT e.id FROM exam e JOIN challenge c ON c.id = e.challenge_id
                   WHERE e.center_id = $1 AND c.slug = $2 AND e.source_key = $3
                     AND e.channel = 'web' AND e.received_at >= $4
                   ORDER BY e.id DESC LIMIT 1""",
                upload.center_id, upload.challenge, upload.source_key, upload.created_at)
            if exam_id is not None:
                await _received(app, conn, upload_id, exam_id)
                return
    try:
        if not folder.exists():
            await asyncio.to_thread(unpack, _path(app, upload_id), folder,
                                    app[UPLOADS_KEY].limits)
        study_uid = await asyncio.to_thread(study_uid_of, folder)
    except BadArchive as exc:
        async with pool.acquire() as conn:
            await _set_state(conn, upload_id, "refused", error_code=exc.code, error=exc.message)
        await asyncio.to_thread(_remove_files, app, upload_id)
        raise
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        # No room to unpack (`unpack` removed its partial folder): the zip is kept whole and
        # the upload open again; an empty chunk at its last offset finishes it later.
        async with pool.acquire() as conn:
            await _set_state(conn, upload_id, "receiving")
        refuse_if_disk_full(exc)
    intake = app[INTAKE]
    key = source_key(intake.keys, upload.center_id, study_uid)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE inclusion_upload SET source_key = $2 WHERE id = $1",
                           upload_id, key)
    exam_id = await intake.receive(center_id=upload.center_id, challenge=upload.challenge,
                                   channel="web", label=upload.name, source_key=key,
                                   folder=folder)
    async with pool.acquire() as conn:
        await _received(app, conn, upload_id, exam_id)


async def _received(app: web.Application, conn: asyncpg.Connection, upload_id: int,
                    exam_id: int) -> None:
    await _set_state(conn, upload_id, "received", exam_id=exam_id)
    await asyncio.to_thread(_remove_files, app, upload_id)


def _remove_files(app: web.Application, upload_id: int) -> None:
    _path(app, upload_id).unlink(missing_ok=True)
    shutil.rmtree(_data(app) / UNPACKED / str(upload_id), ignore_errors=True)


@requires(Role.CENTER)
async def upload_state(request: web.Request) -> web.Response:
    """GET: the upload as JSON; HEAD (aiohttp answers it with this handler): its offset."""
    async with request.app[POOL].acquire() as conn:
        upload = await _own(conn, request)
    offset = (upload.length if upload.state in ("unpacking", "received") else
              await asyncio.to_thread(_size, _path(request.app, upload.id)))
    error = ({"code": upload.error_code, "message": upload.error}
             if upload.error is not None else None)
    return web.json_response(
        {"id": upload.id, "challenge": upload.challenge, "name": upload.name,
         "length": upload.length, "offset": offset, "state": upload.state,
         "exam_id": upload.exam_id, "error": error, "location": _location(upload.id),
         "created_at": iso(upload.created_at)},
        headers=_headers(offset, upload.length))


async def _resume(app: web.Application) -> AsyncIterator[None]:
    """Finishes the uploads a stopped server left with every byte (after the intake starts)."""
    uploads = app[UPLOADS_KEY]
    async with app[POOL].acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, length, state FROM inclusion_upload "
            "WHERE state IN ('receiving', 'unpacking')")
    for row in rows:
        if row["state"] == "receiving" and \
                await asyncio.to_thread(_size, _path(app, row["id"])) != row["length"]:
            continue

        async def finish(upload_id: int = row["id"]) -> None:
            async with uploads.lock(upload_id):
                try:
                    await _complete(app, upload_id)
                except BadArchive:
                    pass            # recorded as refused: the center reads why
                except Exception:
                    log.exception("upload %s could not be finished; it is tried again on "
                                  "the next start", upload_id)

        task = asyncio.create_task(finish(), name=f"upload-{row['id']}")
        uploads.tasks.add(task)
        task.add_done_callback(uploads.tasks.discard)
    yield
    for task in list(uploads.tasks):
        task.cancel()
    for task in list(uploads.tasks):
        with contextlib.suppress(asyncio.CancelledError):
            await task


def setup(app: web.Application) -> None:
    config = app[CONFIG]
    app[UPLOADS_KEY] = Uploads(Limits(int(config.inclusion_upload_mb * MIB),
                                      int(config.inclusion_unzipped_mb * MIB),
                                      config.inclusion_zip_entries))
    app.cleanup_ctx.append(_resume)
    r = app.router
    r.add_post("/api/v1/challenges/{slug}/uploads", create_upload)
    r.add_patch("/api/v1/uploads/{id:\\d{1,18}}", append_chunk)
    r.add_get("/api/v1/uploads/{id:\\d{1,18}}", upload_state)
