from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import pyzipper

from server.release.archive import (
    MANIFEST_NAME,
    PreparedRelease,
    ReleaseError,
    manifest_csv,
    prepare_release,
)
from server.release.seal import WrongKeyError, new_key, normalize_key, unseal

from .test_archive import release_files

KEY_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){5}$")
SEVEN_ZIP = shutil.which("7zz") or shutil.which("7z")


def other_key(key: str) -> str:
    while (wrong := new_key()) == key:
        pass
    return wrong


def test_keys_are_random_grouped_and_forgiving_to_type() -> None:
    keys = {new_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(KEY_RE.match(k) for k in keys)
    key = next(iter(keys))
    assert normalize_key(key.lower().replace("-", " ")) == key
    # O, I and L are read as the digits they look like.
    assert normalize_key("abcde-fghjk-mnpqr-stvwx-yz012-3456O") == \
        "ABCDE-FGHJK-MNPQR-STVWX-YZ012-34560"
    assert normalize_key("too-short") is None


def test_a_sealed_archive_opens_with_its_key_only(clean_release: Path, tmp_path: Path) -> None:
    prepared = prepare_release(clean_release, tmp_path / "store", sealed=True)
    assert prepared.sealed and prepared.key is not None and KEY_RE.match(prepared.key)
    files = release_files(clean_release)

    with pyzipper.AESZipFile(prepared.path) as archive:
        infos = archive.infolist()
        assert all(info.wz_aes_strength == 3 for info in infos)  # 3 = AES-256
        with pytest.raises(RuntimeError, match="requires a password"):
            archive.read("ids.csv")
        with pytest.raises(RuntimeError, match="Bad password"):
            archive.read("ids.csv", pwd=other_key(prepared.key).encode())
        archive.setpassword(prepared.key.encode())
        for name, data in files.items():
            assert archive.read(name) == data
        assert archive.read(MANIFEST_NAME) == manifest_csv(prepared.manifest)
    # What teams see before the start describes the sealed file itself.
    assert prepared.size == prepared.path.stat().st_size
    # Stored members are encrypted too: no plaintext pixel data in the file.
    assert files["images/0001.dcm"][-256:] not in prepared.path.read_bytes()


def test_the_key_survives_a_reload_and_changes_with_the_content(clean_release: Path,
                                                                tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = prepare_release(clean_release, store, sealed=True)
    mtime = first.path.stat().st_mtime_ns

    reloaded = prepare_release(clean_release, store, sealed=True)
    assert (reloaded.key, reloaded.sha256) == (first.key, first.sha256)
    assert reloaded.path.stat().st_mtime_ns == mtime

    (clean_release / "ids.csv").write_text("id\n0000\n", encoding="utf-8")
    resealed = prepare_release(clean_release, store, sealed=True)
    # A fresh key: an archive fetched before the fix cannot be opened by mistake.
    assert resealed.key != first.key
    assert resealed.sha256 != first.sha256


def test_the_key_survives_new_timestamps_on_the_same_content(clean_release: Path,
                                                              tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = prepare_release(clean_release, store, sealed=True)
    inode = first.path.stat().st_ino
    # Touched sources and a data directory copied without its timestamps: same data.
    os.utime(clean_release / "images" / "0001.dcm", ns=(0, 1_700_000_000_000_000_000))
    copied = tmp_path / "copied-store"
    shutil.copytree(store, copied, copy_function=shutil.copy)

    reloaded = prepare_release(clean_release, store, sealed=True)
    moved = prepare_release(clean_release, copied, sealed=True)

    assert reloaded.key == moved.key == first.key
    assert reloaded.sha256 == moved.sha256 == first.sha256
    assert reloaded.path.stat().st_ino == inode
    assert reloaded.fingerprint != first.fingerprint
    # Recorded again, so the next reload is back to the cheap path.
    assert prepare_release(clean_release, copied, sealed=True) == moved
    assert PreparedRelease.load(copied) == moved


def test_unseal_gives_back_the_files_byte_for_byte(clean_release: Path, tmp_path: Path) -> None:
    prepared = prepare_release(clean_release, tmp_path / "store", sealed=True)
    assert prepared.key is not None

    result = unseal(prepared.path, prepared.key.lower().replace("-", ""), tmp_path / "out")

    assert result.verified
    unpacked = release_files(tmp_path / "out")
    assert unpacked.pop(MANIFEST_NAME) == manifest_csv(prepared.manifest)
    assert unpacked == release_files(clean_release)
    assert result.total_bytes == sum(len(d) for d in unpacked.values()) + len(
        manifest_csv(prepared.manifest))


def test_a_sealed_zip_release_is_resealed_with_its_members(clean_release: Path,
                                                           tmp_path: Path) -> None:
    given = tmp_path / "given.zip"
    files = release_files(clean_release)
    with zipfile.ZipFile(given, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)

    prepared = prepare_release(given, tmp_path / "store", sealed=True)
    assert prepared.key is not None
    unseal(prepared.path, prepared.key, tmp_path / "out")

    unpacked = release_files(tmp_path / "out")
    assert unpacked.pop(MANIFEST_NAME) == manifest_csv(prepared.manifest)
    assert unpacked == files


def test_a_wrong_key_is_refused_before_anything_is_written(clean_release: Path,
                                                          tmp_path: Path) -> None:
    prepared = prepare_release(clean_release, tmp_path / "store", sealed=True)
    assert prepared.key is not None
    out = tmp_path / "out"

    with pytest.raises(WrongKeyError, match="wrong key"):
        unseal(prepared.path, other_key(prepared.key), out)
    assert not out.exists() or not any(out.rglob("*"))


def sealed_zip(path: Path, key: str, members: dict[str, bytes]) -> Path:
    with pyzipper.AESZipFile(path, "w", encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(key.encode())
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_unseal_refuses_members_that_leave_the_folder(tmp_path: Path) -> None:
    key = new_key()
    archive = sealed_zip(tmp_path / "evil.zip", key, {"ok.txt": b"fine",
                                                       "../../escaped.txt": b"gotcha"})

    with pytest.raises(ReleaseError, match="outside"):
        unseal(archive, key, tmp_path / "deep" / "out")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "deep" / "out" / "ok.txt").exists()


def test_unseal_checks_the_files_against_the_manifest(tmp_path: Path) -> None:
    key = new_key()
    lying = b"file,size,sha256\na.txt,1," + b"0" * 64 + b"\n"
    archive = sealed_zip(tmp_path / "r.zip", key, {"a.txt": b"a", MANIFEST_NAME: lying})

    with pytest.raises(ReleaseError, match="does not match MANIFEST.csv"):
        unseal(archive, key, tmp_path / "out")


def test_podium_unseal_command(clean_release: Path, tmp_path: Path,
                               podium: Callable[..., int],
                               capsys: pytest.CaptureFixture[str]) -> None:
    prepared = prepare_release(clean_release, tmp_path / "store", sealed=True)
    assert prepared.key is not None
    download = tmp_path / "downloads" / "sarcopenia.zip"
    download.parent.mkdir()
    shutil.copy(prepared.path, download)

    assert podium("unseal", str(download), other_key(prepared.key)) == 1
    assert "wrong key for sarcopenia.zip" in capsys.readouterr().err

    assert podium("unseal", str(download), prepared.key) == 0
    out = capsys.readouterr().out
    assert "checked against MANIFEST.csv" in out
    unpacked = release_files(tmp_path / "downloads" / "sarcopenia")
    unpacked.pop(MANIFEST_NAME)
    assert unpacked == release_files(clean_release)

    # Unsealing twice into the same folder would mix files: refused as a usage error.
    assert podium("unseal", str(download), prepared.key) == 2
    assert podium("unseal", str(tmp_path / "nope.zip"), prepared.key) == 2


@pytest.mark.skipif(SEVEN_ZIP is None, reason="7-Zip (7zz or 7z) is not installed")
def test_seven_zip_opens_the_sealed_archive_with_the_key(clean_release: Path,
                                                         tmp_path: Path) -> None:
    assert SEVEN_ZIP is not None
    prepared = prepare_release(clean_release, tmp_path / "store", sealed=True)
    assert prepared.key is not None

    wrong = subprocess.run([SEVEN_ZIP, "t", f"-p{other_key(prepared.key)}", str(prepared.path)],
                           capture_output=True, text=True, check=False)
    assert wrong.returncode != 0
    done = subprocess.run([SEVEN_ZIP, "x", f"-p{prepared.key}", f"-o{tmp_path / 'out'}",
                           str(prepared.path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    unpacked = release_files(tmp_path / "out")
    unpacked.pop(MANIFEST_NAME)
    assert unpacked == release_files(clean_release)
