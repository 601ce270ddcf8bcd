"""The release archive teams download: packed once, with a manifest, reused while unchanged.

A release folder becomes one zip in the store; a release zip is taken as it is. What was
prepared is described by a JSON sidecar in the store, which doubles as the commit record: an
archive is only reused when the sidecar names it with the source's current fingerprint, so a
crash between writing the archive and writing the sidecar costs a re-pack, never a wrong file.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any

import pyzipper
from pyzipper.zipfile_aes import AESZipInfo

from server.durable import fsync_dir
from server.errors import ReleaseError

MANIFEST_NAME = "MANIFEST.csv"
SIDECAR_NAME = "release.json"
LOCK_NAME = ".release.lock"
PARTIAL_SUFFIX = ".partial"
# Bumped whenever the packing changes, so archives prepared by an older Podium are rebuilt.
FORMAT_VERSION = 1
CHUNK = 1 << 20

# Only text is worth deflating: DICOM pixel data, images and archives barely shrink, and a
# stored member costs no CPU on either side, which matters at several GB.
DEFLATED_SUFFIXES = frozenset({
    ".csv", ".tsv", ".txt", ".json", ".md", ".xml", ".html", ".htm", ".yaml", ".yml", ".toml",
})
DEFLATE_MAX_BYTES = 64 << 20


@dataclass(frozen=True)
class ManifestEntry:
    file: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PreparedRelease:
    """The archive served for one release, as recorded in the store's sidecar."""

    path: Path
    size: int
    sha256: str
    manifest: tuple[ManifestEntry, ...]
    sealed: bool
    # The seal's key: revealed to teams at the start, never before, so kept out of reprs.
    key: str | None = field(repr=False)
    source: Path
    fingerprint: str
    # Lets a reload tell, without hashing gigabytes, that the archive is the one recorded.
    mtime_ns: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "archive": self.path.name,
            "size": self.size,
            "sha256": self.sha256,
            "mtime_ns": self.mtime_ns,
            "sealed": self.sealed,
            "key": self.key,
            "source": str(self.source),
            "fingerprint": self.fingerprint,
            "manifest": [[e.file, e.size, e.sha256] for e in self.manifest],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], store: Path) -> PreparedRelease:
        return cls(
            path=store / str(data["archive"]),
            size=int(data["size"]),
            sha256=str(data["sha256"]),
            manifest=tuple(ManifestEntry(str(f), int(s), str(h)) for f, s, h in data["manifest"]),
            sealed=bool(data["sealed"]),
            key=None if data["key"] is None else str(data["key"]),
            source=Path(data["source"]),
            fingerprint=str(data["fingerprint"]),
            mtime_ns=int(data["mtime_ns"]),
        )

    def save(self, store: Path) -> Path:
        """Writes the sidecar atomically, readable by its owner only (it may hold the key)."""
        body = json.dumps(self.to_json(), indent=1).encode()
        target = store / SIDECAR_NAME
        with _atomic_file(target, mode=0o600) as out:
            out.write(body)
        return target

    @classmethod
    def load(cls, store: Path) -> PreparedRelease | None:
        """The release recorded in `store`, if its sidecar is readable and its archive has the
        recorded size and modification time (a cheap check: nothing is hashed)."""
        recorded = _recorded(store)
        if recorded is None or _archive_stat(recorded) != (recorded.size, recorded.mtime_ns):
            return None
        return recorded


def prepare_release(source: Path, store: Path, *, sealed: bool) -> PreparedRelease:
    """The archive for `source` (a folder or a .zip) in `store`, reused while unchanged.

    A folder is packed into `<name>.zip` with a MANIFEST.csv member; a zip is hard-linked (or
    copied) as it is. With `sealed` the archive is WinZip AES-256 encrypted under a new random
    key. One store holds one release: the server gives each challenge its own.
    """
    from server.release.seal import new_key

    source = Path(source).resolve()
    if not source.exists():
        raise ReleaseError(f"release {source} not found")
    is_zip = source.is_file()
    if is_zip and not _is_zip_file(source):
        raise ReleaseError(f"release {source} is neither a folder nor a .zip archive")
    if not is_zip and store.resolve().is_relative_to(source):
        raise ReleaseError(f"the data directory {store} is inside the release folder {source}; "
                           "keep them apart or the archive would pack itself")
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _store_lock(store):
        _remove_partials(store)
        files = None if is_zip else _folder_files(source)
        fingerprint = _fingerprint(source, files, sealed=sealed)
        name = (source.stem if is_zip else source.name) + ".zip"
        previous = _recorded(store)
        if previous is not None:
            reused = _reuse(previous, source, files, name, fingerprint, sealed=sealed)
            if reused is not None:
                if reused != previous:
                    reused.save(store)
                return reused

        target = store / name
        key = new_key() if sealed else None
        if files is not None:
            manifest = _pack_folder(source, files, target, key)
        elif key is not None:
            manifest = _reseal_zip(source, target, key)
        else:
            manifest = _zip_manifest(source)
            _link_or_copy(source, target)
        stat = target.stat()
        prepared = PreparedRelease(
            path=target, size=stat.st_size, sha256=_file_sha256(target), manifest=manifest,
            sealed=sealed, key=key, source=source, fingerprint=fingerprint,
            mtime_ns=stat.st_mtime_ns,
        )
        prepared.save(store)
        fsync_dir(store)
        if previous is not None and previous.path.name != name:
            previous.path.unlink(missing_ok=True)
        return prepared


def _recorded(store: Path) -> PreparedRelease | None:
    try:
        data = json.loads((store / SIDECAR_NAME).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT_VERSION:
            return None
        return PreparedRelease.from_json(data, store)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _archive_stat(prepared: PreparedRelease) -> tuple[int, int] | None:
    try:
        stat = prepared.path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _reuse(previous: PreparedRelease, source: Path, files: list[_SourceFile] | None, name: str,
           fingerprint: str, *, sealed: bool) -> PreparedRelease | None:
    """The recorded release if it still serves `source`, brought up to date; else None.

    Timestamps are only a shortcut. A copied or restored data directory or release folder
    gets new ones, and re-sealing it then would change the key teams may already hold, so
    when only timestamps differ the content is hashed and the archive kept if it is the same.
    """
    if previous.sealed != sealed or previous.path.name != name:
        return None
    stat = _archive_stat(previous)
    if stat is None or stat[0] != previous.size:
        return None
    current = previous
    if stat[1] != previous.mtime_ns:
        if _file_sha256(previous.path) != previous.sha256:
            return None
        current = replace(current, mtime_ns=stat[1])
    if previous.fingerprint != fingerprint:
        if not _same_content(source, files, previous):
            return None
        current = replace(current, fingerprint=fingerprint, source=source)
    return current


def _same_content(source: Path, files: list[_SourceFile] | None,
                  previous: PreparedRelease) -> bool:
    if files is None:
        if previous.sealed:
            return _zip_manifest(source) == previous.manifest
        return _file_sha256(source) == previous.sha256
    if [(f.relative, f.size) for f in files] != [(e.file, e.size) for e in previous.manifest]:
        return False
    return all(_file_sha256(f.path) == e.sha256 for f, e in zip(files, previous.manifest,
                                                                  strict=True))


def manifest_csv(entries: tuple[ManifestEntry, ...]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "size", "sha256"])
    for entry in entries:
        writer.writerow([entry.file, entry.size, entry.sha256])
    return out.getvalue().encode("utf-8")


def read_manifest_csv(data: bytes) -> tuple[ManifestEntry, ...]:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    if not rows or rows[0] != ["file", "size", "sha256"]:
        raise ReleaseError(f"{MANIFEST_NAME} must start with the header file,size,sha256")
    try:
        return tuple(ManifestEntry(f, int(s), h) for f, s, h in rows[1:])
    except ValueError:
        raise ReleaseError(f"{MANIFEST_NAME} has a malformed row") from None


def member_path(name: str) -> PurePosixPath:
    """The relative path a zip member extracts to; refuses names that would leave the folder."""
    # Windows tools write backslashes; 7-Zip treats them as separators, so must we.
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if (not parts or name.startswith(("/", "\\")) or ".." in parts
            or any(":" in part for part in parts)):
        raise ReleaseError(f"archive member {name!r} would be written outside the folder")
    return PurePosixPath(*parts)


def is_manifest_member(name: str) -> bool:
    return name.replace("\\", "/") == MANIFEST_NAME


def stored_or_deflated(relative: str, size: int) -> int:
    suffix = PurePosixPath(relative).suffix.lower()
    if suffix in DEFLATED_SUFFIXES and size <= DEFLATE_MAX_BYTES:
        return pyzipper.ZIP_DEFLATED
    return pyzipper.ZIP_STORED


# --- packing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SourceFile:
    relative: str
    path: Path
    size: int
    mtime_ns: int


def _folder_files(folder: Path) -> list[_SourceFile]:
    files = []
    for directory, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for filename in filenames:
            path = Path(directory, filename)
            relative = path.relative_to(folder).as_posix()
            # A manifest left in the folder (say, from an unsealed copy) is replaced by ours.
            if relative == MANIFEST_NAME:
                continue
            stat = path.stat()
            files.append(_SourceFile(relative, path, stat.st_size, stat.st_mtime_ns))
    files.sort(key=lambda f: f.relative)
    if not files:
        raise ReleaseError(f"release folder {folder} is empty")
    return files


def _fingerprint(source: Path, files: list[_SourceFile] | None, *, sealed: bool) -> str:
    if files is None:
        stat = source.stat()
        described: Any = [stat.st_size, stat.st_mtime_ns]
    else:
        described = [[f.relative, f.size, f.mtime_ns] for f in files]
    text = json.dumps([FORMAT_VERSION, sealed, files is None, described])
    return hashlib.sha256(text.encode()).hexdigest()


def _pack_folder(folder: Path, files: list[_SourceFile], target: Path,
                 key: str | None) -> tuple[ManifestEntry, ...]:
    entries = []
    with _atomic_file(target) as out, _zip_writer(out, key) as archive:
        for item in files:
            info = _member_info(item.relative, item.size, item.mtime_ns)
            digest = hashlib.sha256()
            written = 0
            with item.path.open("rb") as data, archive.open(info, "w") as member:
                while chunk := data.read(CHUNK):
                    digest.update(chunk)
                    member.write(chunk)
                    written += len(chunk)
            if written != item.size:
                raise ReleaseError(f"{item.path} changed while it was being packed; "
                                   "load the event again once the release folder is complete")
            entries.append(ManifestEntry(item.relative, written, digest.hexdigest()))
        _write_manifest(archive, tuple(entries))
    return tuple(entries)


def _reseal_zip(source: Path, target: Path, key: str) -> tuple[ManifestEntry, ...]:
    entries = []
    with (_open_release_zip(source) as given, _atomic_file(target) as out,
          _zip_writer(out, key) as archive):
        for src in _data_members(given):
            info = _member_info(src.filename, src.file_size, None, src.date_time)
            info.compress_type = src.compress_type
            digest = hashlib.sha256()
            with _reading(given, src) as data, archive.open(info, "w") as member:
                while chunk := data.read(CHUNK):
                    digest.update(chunk)
                    member.write(chunk)
            entries.append(ManifestEntry(src.filename, src.file_size, digest.hexdigest()))
        manifest = tuple(sorted(entries, key=lambda e: e.file))
        _write_manifest(archive, manifest)
    return manifest


def _zip_manifest(source: Path) -> tuple[ManifestEntry, ...]:
    entries = []
    with _open_release_zip(source) as given:
        for info in _data_members(given):
            digest = hashlib.sha256()
            with _reading(given, info) as data:
                while chunk := data.read(CHUNK):
                    digest.update(chunk)
            entries.append(ManifestEntry(info.filename, info.file_size, digest.hexdigest()))
    return tuple(sorted(entries, key=lambda e: e.file))


@contextmanager
def _open_release_zip(source: Path) -> Iterator[pyzipper.AESZipFile]:
    try:
        with pyzipper.AESZipFile(source) as given:
            yield given
    except pyzipper.BadZipFile as exc:
        raise ReleaseError(f"release {source} is not a readable zip archive ({exc})") from None


def _data_members(given: pyzipper.AESZipFile) -> list[pyzipper.ZipInfo]:
    seen: set[PurePosixPath] = set()
    members = []
    for info in given.infolist():
        if info.is_dir() or is_manifest_member(info.filename):
            continue
        if info.flag_bits & 0x1:
            raise ReleaseError(f"release {given.filename} is encrypted ({info.filename}); give "
                               "the plain release and set sealed = true to have Podium seal it")
        path = member_path(info.filename)
        if path in seen:
            raise ReleaseError(f"release {given.filename} holds {info.filename} twice")
        seen.add(path)
        members.append(info)
    return members


@contextmanager
def _reading(given: pyzipper.AESZipFile, info: pyzipper.ZipInfo) -> Iterator[IO[bytes]]:
    try:
        with given.open(info) as data:
            yield data
    # Only the reading side's failures: a full disk while writing must not read as a bad zip.
    except (pyzipper.BadZipFile, EOFError, zlib.error) as exc:
        raise ReleaseError(f"release {given.filename}: member {info.filename} is damaged "
                           f"({exc})") from None


@contextmanager
def _zip_writer(out: IO[bytes], key: str | None) -> Iterator[pyzipper.AESZipFile]:
    encryption = pyzipper.WZ_AES if key is not None else None
    with pyzipper.AESZipFile(out, "w", allowZip64=True, encryption=encryption) as archive:
        if key is not None:
            archive.setpassword(key.encode("ascii"))
            archive.setencryption(pyzipper.WZ_AES, nbits=256)
        yield archive


def _member_info(relative: str, size: int, mtime_ns: int | None,
                 date_time: tuple[int, int, int, int, int, int] | None = None) -> AESZipInfo:
    if date_time is None:
        assert mtime_ns is not None
        year, month, day, hour, minute, second = time.localtime(mtime_ns / 1e9)[:6]
        # The zip format counts years from 1980 up to 2107.
        date_time = (1980, 1, 1, 0, 0, 0) if year < 1980 else (
            min(year, 2107), month, day, hour, minute, second)
    info = AESZipInfo(relative, date_time)
    info.compress_type = stored_or_deflated(relative, size)
    # Known in advance so the writer picks ZIP64 headers for members past 4 GiB.
    info.file_size = size
    info.external_attr = 0o644 << 16
    return info


def _write_manifest(archive: pyzipper.AESZipFile, entries: tuple[ManifestEntry, ...]) -> None:
    body = manifest_csv(entries)
    info = _member_info(MANIFEST_NAME, len(body), time.time_ns())
    with archive.open(info, "w") as member:
        member.write(body)


def _link_or_copy(source: Path, target: Path) -> None:
    # A hard link makes a reload free even for gigabytes; it is atomic once renamed in place.
    partial = _partial_name(target)
    try:
        os.link(source, partial)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK,
                             errno.ENOTSUP):
            raise
        with _atomic_file(target) as out, source.open("rb") as data:
            shutil.copyfileobj(data, out, CHUNK)
        return
    os.replace(partial, target)


# --- files --------------------------------------------------------------------------------


def _partial_name(target: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX,
                                dir=target.parent)
    os.close(fd)
    os.unlink(name)
    return Path(name)


@contextmanager
def _atomic_file(target: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """A file that appears under `target` only once fully written and on disk."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX,
                                dir=target.parent)
    partial = Path(name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def _remove_partials(store: Path) -> None:
    # Left by a crash mid-write; nothing else in the store ends this way.
    for leftover in store.glob(f".*{PARTIAL_SUFFIX}"):
        leftover.unlink(missing_ok=True)


@contextmanager
def _store_lock(store: Path) -> Iterator[None]:
    # Two servers loading the same event must not pack into the same store at once.
    with (store / LOCK_NAME).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_zip_file(path: Path) -> bool:
    return path.suffix.lower() == ".zip" and pyzipper.is_zipfile(path)
