"""Zip archives opened defensively: every name checked, every byte counted.

The member count and the directory's size are read from the end-of-central-directory record
before the directory itself is parsed, so a zip of millions of entries costs a few bytes to
refuse. Limits are then checked on the central directory (declared sizes) before anything is
inflated, and again on the bytes actually produced while inflating, member by member, each
member under a cap of its own that the caller derives from what it should hold.
"""

from __future__ import annotations

import posixpath
import re
import stat
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, BinaryIO

from server.evaluators.result import Invalid, Problem, listing, plural

_DRIVE = re.compile(r"[A-Za-z]:")
# Files that macOS and Windows add on their own; teams never mean to submit them.
JUNK_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "Icon\r"})
JUNK_DIRS = frozenset({"__MACOSX"})
SUPPORTED_COMPRESSION = frozenset({
    zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA
})
# Zip compression methods (APPNOTE 4.4.5) that archivers offer, by name for messages.
METHOD_NAMES = {9: "Deflate64", 10: "PKWARE DCL Implode", 6: "Implode", 93: "Zstandard",
                95: "XZ", 96: "JPEG", 97: "WavPack", 98: "PPMd"}
AES_METHOD = 99  # WinZip AES: the member is encrypted, whatever codec is inside

# A central-directory entry is 46 bytes plus its name, extra field and comment; real zip
# writers stay far below this on average, so a directory larger than this per allowed member
# is refused before it is parsed.
DIRECTORY_BYTES_PER_MEMBER = 1024
READ_CHUNK = 1024**2

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"

OTHER_ARCHIVES = {
    b"Rar!": "a RAR archive",
    b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive",
    b"\x1f\x8b": "a gzip file",
    b"BZh": "a bzip2 file",
    b"\xfd7zXZ\x00": "an xz file",
}


def is_junk(name: str) -> bool:
    parts = name.split("/")
    base = parts[-1]
    return base in JUNK_NAMES or base.startswith("._") or any(p in JUNK_DIRS for p in parts)


def normalise_name(raw: str) -> str | None:
    """A member's path inside the archive, or None when it would land outside it."""
    name = raw.replace("\\", "/")
    if "\x00" in name or name.startswith("/") or _DRIVE.match(name):
        return None
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../"):
        return None
    return "" if norm == "." else norm


@dataclass
class Archive:
    """An open zip whose members passed every check; read them one at a time."""

    zip: zipfile.ZipFile
    name: str
    members: tuple[tuple[str, zipfile.ZipInfo], ...]
    max_expanded_bytes: int
    expanded: int = field(default=0)

    def read(self, name: str, info: zipfile.ZipInfo, label: str | None = None, *,
             limit: int | None = None, what: str = "") -> bytes:
        """A member's bytes, streamed, stopping as soon as the member's own `limit` or the
        archive's byte budget is spent; `what` says in the refusal what the member should be
        (e.g. "a mask of 512 × 512 pixels")."""
        if limit is not None and info.file_size > limit:
            raise Invalid(_member_too_large(name, self.name, info.file_size, limit, what, label))
        budget = self.max_expanded_bytes - self.expanded
        cap = min(info.file_size, budget, limit if limit is not None else budget)
        try:
            with self.zip.open(info) as stream:
                data = _read_at_most(stream, cap + 1)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise Invalid(Problem(
                "unreadable", f"{name} in {self.name} is damaged ({str(exc)[:80]})", label
            )) from exc
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - zlib/bz2/lzma errors vary by codec
            raise Invalid(Problem(
                "unreadable", f"{name} in {self.name} is damaged ({type(exc).__name__})", label
            )) from exc
        self.expanded += len(data)
        if limit is not None and len(data) > limit:
            raise Invalid(_member_too_large(name, self.name, len(data), limit, what, label))
        if len(data) > budget:
            raise Invalid(Problem(
                "too_large",
                f"{self.name} expands past the limit of {self.max_expanded_bytes} bytes",
            ))
        if len(data) != info.file_size:
            raise Invalid(Problem(
                "unreadable", f"{name} in {self.name} is damaged (wrong size)", label
            ))
        return data

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_at_most(stream: IO[bytes], size: int) -> bytes:
    """Up to `size` bytes, read in chunks: inflating stops where the cap is."""
    parts: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(min(READ_CHUNK, left))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _member_too_large(name: str, archive: str, size: int, limit: int, what: str,
                      label: str | None) -> Problem:
    should = f"; {what} takes at most {limit} bytes" if what else f" (limit {limit} bytes)"
    return Problem(
        "too_large",
        f"{name} in {archive} expands to {size} bytes{should}: check that the file holds what "
        "its name says",
        label,
    )


@dataclass(frozen=True)
class Directory:
    """What the end-of-central-directory record declares, before the directory is read."""

    entries: int
    size: int


def read_directory(stream: BinaryIO) -> Directory | None:
    """The member count and directory size the end record declares (ZIP64 included), read
    the way zipfile reads them; None when there is no end record (zipfile says what is
    wrong)."""
    stream.seek(0, 2)
    file_size = stream.tell()
    if file_size < _EOCD.size:
        return None
    stream.seek(file_size - _EOCD.size)
    tail = stream.read(_EOCD.size)
    if tail[:4] == _EOCD_SIGNATURE and tail[-2:] == b"\x00\x00":
        at = file_size - _EOCD.size
    else:  # an archive comment follows the record: search the last 64 KiB, as zipfile does
        start = max(file_size - (1 << 16) - _EOCD.size, 0)
        stream.seek(start)
        tail = stream.read()
        found = tail.rfind(_EOCD_SIGNATURE)
        if found < 0 or len(tail) - found < _EOCD.size:
            return None
        at = start + found
        tail = tail[found:found + _EOCD.size]
    fields = _EOCD.unpack(tail)
    on_disk, total, size = fields[3], fields[4], fields[5]
    if at >= _ZIP64_LOCATOR.size:
        stream.seek(at - _ZIP64_LOCATOR.size)
        locator = stream.read(_ZIP64_LOCATOR.size)
        if locator[:4] == _ZIP64_LOCATOR_SIGNATURE and \
                at >= _ZIP64_LOCATOR.size + _ZIP64_EOCD.size:
            stream.seek(at - _ZIP64_LOCATOR.size - _ZIP64_EOCD.size)
            record = stream.read(_ZIP64_EOCD.size)
            if record[:4] == _ZIP64_EOCD_SIGNATURE:
                zip64 = _ZIP64_EOCD.unpack(record)
                on_disk, total, size = zip64[6], zip64[7], zip64[8]
    return Directory(entries=max(on_disk, total), size=size)


def check_directory(stream: BinaryIO, label: str, max_members: int) -> None:
    """Refuses (`too_many_members`) an archive whose end record declares more members, or a
    larger directory, than `max_members` can need: cheaply, before the directory is parsed."""
    directory = read_directory(stream)
    stream.seek(0)
    if directory is None:
        return
    if directory.entries > max_members:
        raise Invalid(Problem(
            "too_many_members",
            f"{label} holds {directory.entries} entries, more than the limit of {max_members}; "
            "put only the files asked for in the archive",
        ))
    most = max_members * DIRECTORY_BYTES_PER_MEMBER + (1 << 16)
    if directory.size > most:
        raise Invalid(Problem(
            "too_many_members",
            f"{label} declares a directory of {directory.size} bytes, more than {max_members} "
            "entries can need; put only the files asked for in the archive",
        ))


def open_archive(path: Path, *, max_members: int, max_expanded_bytes: int) -> Archive:
    """Open a submitted zip; raises Invalid listing every problem with its directory."""
    try:
        with path.open("rb") as stream:
            check_directory(stream, path.name, max_members)
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise Invalid(_not_a_zip(path)) from exc
    try:
        return _checked(archive, path.name, max_members, max_expanded_bytes)
    except BaseException:
        archive.close()
        raise


def open_submission(path: Path, name: str, *, max_members: int, max_expanded_bytes: int
                    ) -> Archive:
    """A team's zip, stored at `path`, opened as `open_archive` does and named `name` (the
    file's name as the team uploaded it), in the archive and in every problem raised."""
    try:
        archive = open_archive(path, max_members=max_members,
                               max_expanded_bytes=max_expanded_bytes)
    except Invalid as exc:
        raise Invalid(renamed(exc.problems, path.name, name)) from None
    archive.name = name
    return archive


def renamed(problems: Iterable[Problem], stored: str, name: str) -> list[Problem]:
    """Problems that name the stored file, told with the name the team uploaded instead."""
    if stored == name:
        return list(problems)
    return [replace(p, message=p.message.replace(stored, name)) for p in problems]


def _not_a_zip(path: Path) -> Problem:
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError:
        head = b""
    for magic, what in OTHER_ARCHIVES.items():
        if head.startswith(magic):
            return Problem("unsupported_format", f"{path.name} is {what}; send a .zip archive")
    if head.startswith(b"PK"):
        return Problem("unreadable", f"{path.name} is a damaged or truncated zip archive")
    return Problem("unreadable", f"{path.name} is not a zip archive; send a .zip of the masks")


def _checked(
    archive: zipfile.ZipFile, label: str, max_members: int, max_expanded_bytes: int
) -> Archive:
    infos = archive.infolist()
    if len(infos) > max_members:
        raise Invalid(Problem(
            "too_many_members",
            f"{label} holds {len(infos)} entries, more than the limit of {max_members}",
        ))
    problems: list[Problem] = []
    unsafe: list[str] = []
    links: list[str] = []
    locked: list[str] = []
    methods: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    members: list[tuple[str, zipfile.ZipInfo]] = []
    declared = 0
    for info in infos:
        name = normalise_name(info.filename)
        if name is None:
            unsafe.append(info.filename)
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            links.append(info.filename)
            continue
        if info.is_dir() or not name or is_junk(name):
            continue
        if name in seen:
            duplicates.append(name)
            continue
        seen[name] = info.filename
        if info.flag_bits & 0x1:
            locked.append(name)
        if info.compress_type == AES_METHOD:
            locked.append(name)
        elif info.compress_type not in SUPPORTED_COMPRESSION:
            method = METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
            methods.setdefault(method, []).append(name)
        declared += info.file_size
        members.append((name, info))
    if unsafe:
        problems.append(Problem(
            "unsafe_path",
            f"{label}: {plural(len(unsafe), 'path')} would land outside the archive: "
            f"{listing(unsafe, 5)}; zip the files from inside their folder",
        ))
    if links:
        problems.append(Problem(
            "symlink",
            f"{label}: {plural(len(links), 'symbolic link')} ({listing(links, 5)}); "
            "zip the files themselves (zip without -y)",
        ))
    if duplicates:
        problems.append(Problem(
            "duplicate_path",
            f"{label}: {plural(len(duplicates), 'path')} stored twice: {listing(duplicates, 5)}",
        ))
    if locked:
        problems.append(Problem(
            "encrypted", f"{label} is password-protected (encrypted); zip the files again "
            "without a password"
        ))
    if methods:
        problems.append(Problem(
            "unsupported_compression",
            f"{label}: " + "; ".join(f"{plural(len(names), 'file')} compressed with {method} "
                                     f"({listing(names, 5)})" for method, names in methods.items())
            + ", which cannot be read; zip them again with ordinary Deflate compression "
            "(7-Zip: Compression method Deflate, not Deflate64 or PPMd; or the zip command, or "
            "Windows' Send to → Compressed folder)",
        ))
    if declared > max_expanded_bytes:
        problems.append(Problem(
            "too_large",
            f"{label} declares {declared} bytes once expanded, more than the limit of "
            f"{max_expanded_bytes}",
        ))
    if problems:
        raise Invalid(problems)
    return Archive(archive, label, tuple(members), max_expanded_bytes)
