"""Sealed releases: the key, and opening a sealed archive again.

A sealed archive is a WinZip AES-256 zip, the format 7-Zip, WinZip, macOS Archive Utility
alternatives and `pyzipper` open with a password. The key is that password: 30 characters of
Crockford's base32 (150 bits) in six groups of five, read aloud or typed without confusion
because it has no I, L, O or U.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import pyzipper

from server.errors import ReleaseError, WrongKeyError
from server.release.archive import (
    CHUNK,
    MANIFEST_NAME,
    PARTIAL_SUFFIX,
    ManifestEntry,
    is_manifest_member,
    member_path,
    read_manifest_csv,
)

KEY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
KEY_GROUPS = 6
KEY_GROUP_LENGTH = 5
# What people type for the characters the alphabet leaves out.
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


@dataclass(frozen=True)
class Unsealed:
    out_dir: Path
    files: tuple[Path, ...]
    total_bytes: int
    # Whether a MANIFEST.csv was in the archive and every file matched it.
    verified: bool


def new_key() -> str:
    characters = "".join(secrets.choice(KEY_ALPHABET)
                         for _ in range(KEY_GROUPS * KEY_GROUP_LENGTH))
    return _grouped(characters)


def normalize_key(text: str) -> str | None:
    """The canonical key for what a person typed (any case, with or without dashes), or None."""
    characters = "".join(text.split()).replace("-", "").upper().translate(_LOOKALIKES)
    if len(characters) != KEY_GROUPS * KEY_GROUP_LENGTH or any(
            c not in KEY_ALPHABET for c in characters):
        return None
    return _grouped(characters)


def unseal(archive: Path, key: str, out_dir: Path) -> Unsealed:
    """Extracts a sealed archive into `out_dir`, checking every file against its manifest.

    Refuses the whole archive before writing anything if a member would land outside
    `out_dir`, and raises WrongKeyError when the key does not open it.
    """
    password = (normalize_key(key) or key.strip()).encode("utf-8")
    try:
        zipped = pyzipper.AESZipFile(archive)
    except (OSError, pyzipper.BadZipFile) as exc:
        raise ReleaseError(f"{archive} is not a readable zip archive ({exc})") from None
    with zipped:
        zipped.setpassword(password)
        members = [info for info in zipped.infolist() if not info.is_dir()]
        targets = {info.filename: member_path(info.filename) for info in members}
        if len(set(targets.values())) != len(targets):
            raise ReleaseError(f"{archive} holds the same file twice")
        _check_key(zipped, members, archive)
        out_dir.mkdir(parents=True, exist_ok=True)
        root = out_dir.resolve()
        written: list[Path] = []
        digests: dict[str, tuple[int, str]] = {}
        total = 0
        for info in members:
            target = root.joinpath(*targets[info.filename].parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            # A symlink already in out_dir could still redirect a safe-looking name.
            if not target.parent.resolve().is_relative_to(root):
                raise ReleaseError(f"member {info.filename!r} would be written outside {root}")
            size, digest = _extract(zipped, info, target, archive)
            written.append(target)
            digests[targets[info.filename].as_posix()] = (size, digest)
            total += size
    verified = _verify(digests, root / MANIFEST_NAME, archive)
    return Unsealed(out_dir=root, files=tuple(written), total_bytes=total, verified=verified)


def _grouped(characters: str) -> str:
    return "-".join(characters[i:i + KEY_GROUP_LENGTH]
                    for i in range(0, len(characters), KEY_GROUP_LENGTH))


def _check_key(zipped: pyzipper.AESZipFile, members: list[pyzipper.ZipInfo],
               archive: Path) -> None:
    # Opening a member checks the password verifier, so a wrong key fails before any write.
    for info in members:
        if info.flag_bits & 0x1:
            try:
                zipped.open(info).close()
            except RuntimeError:
                raise WrongKeyError(_wrong_key(archive)) from None
            return


def _extract(zipped: pyzipper.AESZipFile, info: pyzipper.ZipInfo, target: Path,
             archive: Path) -> tuple[int, str]:
    partial = target.with_name(f".{target.name}{PARTIAL_SUFFIX}")
    digest = hashlib.sha256()
    size = 0
    try:
        with zipped.open(info) as data, partial.open("wb") as out:
            while chunk := data.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        os.replace(partial, target)
    except RuntimeError:
        raise WrongKeyError(_wrong_key(archive)) from None
    except pyzipper.BadZipFile as exc:
        # The 2-byte verifier lets one wrong key in 65536 through; the HMAC then refuses it.
        raise WrongKeyError(f"{_wrong_key(archive)}, or the archive is damaged ({exc}); "
                            "download it again if the key is right") from None
    finally:
        partial.unlink(missing_ok=True)
    return size, digest.hexdigest()


def _verify(digests: dict[str, tuple[int, str]], manifest_path: Path, archive: Path) -> bool:
    if not manifest_path.is_file():
        return False
    manifest: tuple[ManifestEntry, ...] = read_manifest_csv(manifest_path.read_bytes())
    listed = {e.file for e in manifest}
    for entry in manifest:
        if digests.get(entry.file) != (entry.size, entry.sha256):
            raise ReleaseError(f"{entry.file} from {archive} does not match {MANIFEST_NAME}; "
                               "download the archive again")
    unlisted = [f for f in digests if f not in listed and not is_manifest_member(f)]
    if unlisted:
        raise ReleaseError(f"{archive} holds files its {MANIFEST_NAME} does not list: "
                           f"{', '.join(sorted(unlisted)[:5])}")
    return True


def _wrong_key(archive: Path) -> str:
    example = _grouped("X" * KEY_GROUPS * KEY_GROUP_LENGTH)
    return (f"wrong key for {archive.name}: check it character by character "
            f"(keys look like {example})")
