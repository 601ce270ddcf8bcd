from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from server.release.archive import (
    MANIFEST_NAME,
    SIDECAR_NAME,
    ManifestEntry,
    PreparedRelease,
    ReleaseError,
    manifest_csv,
    prepare_release,
    read_manifest_csv,
)

ROOT = Path(__file__).resolve().parents[2]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def release_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_folder_is_packed_with_a_manifest_matching_its_files(clean_release: Path,
                                                             tmp_path: Path) -> None:
    prepared = prepare_release(clean_release, tmp_path / "store", sealed=False)

    files = release_files(clean_release)
    assert [e.file for e in prepared.manifest] == sorted(files)
    for entry in prepared.manifest:
        assert entry.size == len(files[entry.file])
        assert entry.sha256 == sha256(files[entry.file])
    assert prepared.path == tmp_path / "store" / "release.zip"
    assert prepared.size == prepared.path.stat().st_size
    assert prepared.sha256 == sha256(prepared.path.read_bytes())
    assert not prepared.sealed and prepared.key is None

    with zipfile.ZipFile(prepared.path) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == sorted(files) + [MANIFEST_NAME]
        for name in files:
            assert archive.read(name) == files[name]
        assert read_manifest_csv(archive.read(MANIFEST_NAME)) == prepared.manifest
        kinds = {info.filename: info.compress_type for info in archive.infolist()}
    # DICOM goes in as it is, whether named .dcm or recognised by its preamble; text shrinks.
    assert kinds["images/0000.dcm"] == zipfile.ZIP_STORED
    assert kinds["images/IM000099"] == zipfile.ZIP_STORED
    assert kinds["README.txt"] == zipfile.ZIP_DEFLATED


def test_unchanged_folder_reuses_the_archive_without_repacking(clean_release: Path,
                                                              tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = prepare_release(clean_release, store, sealed=False)
    before = first.path.stat()

    again = prepare_release(clean_release, store, sealed=False)

    after = again.path.stat()
    assert again == first
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_changed_or_added_file_repacks(clean_release: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = prepare_release(clean_release, store, sealed=False)

    (clean_release / "ids.csv").write_text("id\n0000\n", encoding="utf-8")
    changed = prepare_release(clean_release, store, sealed=False)
    assert changed.sha256 != first.sha256
    entry = next(e for e in changed.manifest if e.file == "ids.csv")
    assert entry == ManifestEntry("ids.csv", 8, sha256(b"id\n0000\n"))

    (clean_release / "extra.txt").write_text("late addition\n", encoding="utf-8")
    added = prepare_release(clean_release, store, sealed=False)
    assert "extra.txt" in {e.file for e in added.manifest}
    with zipfile.ZipFile(added.path) as archive:
        assert archive.read("extra.txt") == b"late addition\n"


def test_sidecar_round_trips_and_is_private(clean_release: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    prepared = prepare_release(clean_release, store, sealed=True)

    assert PreparedRelease.load(store) == prepared
    assert PreparedRelease.from_json(prepared.to_json(), store) == prepared
    assert stat.S_IMODE((store / SIDECAR_NAME).stat().st_mode) == 0o600
    assert prepared.key is not None and prepared.key not in repr(prepared)


def test_a_tampered_archive_is_not_reused(clean_release: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    prepared = prepare_release(clean_release, store, sealed=False)
    with prepared.path.open("ab") as out:
        out.write(b"junk")

    assert PreparedRelease.load(store) is None
    again = prepare_release(clean_release, store, sealed=False)
    assert again.sha256 == prepared.sha256
    assert sha256(again.path.read_bytes()) == prepared.sha256


def test_a_zip_release_is_used_as_it_is(clean_release: Path, tmp_path: Path) -> None:
    given = tmp_path / "given.zip"
    files = release_files(clean_release)
    with zipfile.ZipFile(given, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in reversed(sorted(files)):
            archive.writestr(name, files[name])
        archive.writestr("images/", b"")

    prepared = prepare_release(given, tmp_path / "store", sealed=False)

    assert prepared.path == tmp_path / "store" / "given.zip"
    assert prepared.path.read_bytes() == given.read_bytes()
    assert prepared.sha256 == sha256(given.read_bytes())
    assert prepared.manifest == tuple(ManifestEntry(n, len(files[n]), sha256(files[n]))
                                      for n in sorted(files))
    assert prepare_release(given, tmp_path / "store", sealed=False) == prepared


def test_switching_the_source_replaces_the_old_archive(clean_release: Path,
                                                      tmp_path: Path) -> None:
    store = tmp_path / "store"
    old = prepare_release(clean_release, store, sealed=False)
    given = tmp_path / "final.zip"
    with zipfile.ZipFile(given, "w") as archive:
        archive.writestr("a.txt", b"a")

    new = prepare_release(given, store, sealed=False)

    assert new.path.name == "final.zip"
    assert not old.path.exists()


@pytest.mark.parametrize("member", ["../outside.dcm", "/etc/passwd", "a/../../b.dcm", "C:x"])
def test_a_zip_with_escaping_members_is_refused(tmp_path: Path, member: str) -> None:
    given = tmp_path / "bad.zip"
    with zipfile.ZipFile(given, "w") as archive:
        archive.writestr(member, b"x")

    with pytest.raises(ReleaseError, match="outside the folder"):
        prepare_release(given, tmp_path / "store", sealed=False)


def test_unusable_sources_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReleaseError, match="empty"):
        prepare_release(tmp_path / "empty", tmp_path / "store", sealed=False)
    (tmp_path / "notes.txt").write_text("hi", encoding="utf-8")
    with pytest.raises(ReleaseError, match="neither a folder nor a .zip"):
        prepare_release(tmp_path / "notes.txt", tmp_path / "store", sealed=False)
    with pytest.raises(ReleaseError, match="inside the release folder"):
        prepare_release(tmp_path, tmp_path / "store", sealed=False)
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ReleaseError):
        prepare_release(tmp_path / "broken.zip", tmp_path / "store", sealed=False)


def test_an_encrypted_zip_is_refused_as_a_plain_release(clean_release: Path,
                                                       tmp_path: Path) -> None:
    sealed = prepare_release(clean_release, tmp_path / "sealing", sealed=True)

    with pytest.raises(ReleaseError, match="encrypted"):
        prepare_release(sealed.path, tmp_path / "store", sealed=False)


def test_manifest_csv_round_trips_names_with_commas_and_quotes() -> None:
    entries = (ManifestEntry('odd, "name".dcm', 3, "ab" * 32), ManifestEntry("é/b.dcm", 0, "0"))
    assert read_manifest_csv(manifest_csv(entries)) == entries


# A crash is simulated by the kernel: RLIMIT_FSIZE makes the write past the limit raise
# SIGXFSZ, which kills the process mid-archive when its default action is restored.
CRASHING_PREPARE = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from server.release.archive import prepare_release
    if sys.argv[3] == "kill":
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
    try:
        prepare_release(Path(sys.argv[1]), Path(sys.argv[2]), sealed=False)
    except OSError as exc:
        print(exc.errno)
        sys.exit(3)
""")


def run_limited(source: Path, store: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CRASHING_PREPARE, str(source), str(store), mode],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_a_crash_mid_write_leaves_no_archive_that_looks_complete(clean_release: Path,
                                                                 tmp_path: Path) -> None:
    (clean_release / "volume.raw").write_bytes(os.urandom(2 * 1024 * 1024))
    store = tmp_path / "store"

    crashed = run_limited(clean_release, store, "kill")

    assert crashed.returncode == -signal.SIGXFSZ, crashed.stderr
    assert not (store / "release.zip").exists()
    assert not (store / SIDECAR_NAME).exists()
    assert [p.name for p in store.glob(".release.zip.*.partial")], "the crash left no partial"

    prepared = prepare_release(clean_release, store, sealed=False)
    assert sha256(prepared.path.read_bytes()) == prepared.sha256
    assert not list(store.glob("*.partial")) and not list(store.glob(".*.partial"))


def test_a_failed_write_cleans_up_after_itself(clean_release: Path, tmp_path: Path) -> None:
    (clean_release / "volume.raw").write_bytes(os.urandom(2 * 1024 * 1024))
    store = tmp_path / "store"

    failed = run_limited(clean_release, store, "raise")

    assert failed.returncode == 3, failed.stderr
    assert failed.stdout.strip() == str(27)  # EFBIG
    assert sorted(p.name for p in store.iterdir()) == [".release.lock"]
