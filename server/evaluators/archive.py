"""Zip archives opened defensively: every name checked, every byte counted.

Limits are checked on the central directory (member count, declared sizes) before anything
is inflated, and again on the bytes actually produced while inflating, member by member.
"""

from __future__ import annotations

import posixpath
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

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

    def read(self, name: str, info: zipfile.ZipInfo, label: str | None = None) -> bytes:
        """A member's bytes, stopping as soon as the archive's byte budget is spent."""
        budget = self.max_expanded_bytes - self.expanded
        try:
            with self.zip.open(info) as stream:
                data = stream.read(min(info.file_size, budget) + 1)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise Invalid(Problem(
                "unreadable", f"{name} in {self.name} is damaged ({str(exc)[:80]})", label
            )) from exc
        except Exception as exc:  # noqa: BLE001 - zlib/bz2/lzma errors vary by codec
            raise Invalid(Problem(
                "unreadable", f"{name} in {self.name} is damaged ({type(exc).__name__})", label
            )) from exc
        self.expanded += len(data)
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


def open_archive(path: Path, *, max_members: int, max_expanded_bytes: int) -> Archive:
    """Open a submitted zip; raises Invalid listing every problem with its directory."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise Invalid(_not_a_zip(path)) from exc
    try:
        return _checked(archive, path.name, max_members, max_expanded_bytes)
    except BaseException:
        archive.close()
        raise


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
