"""server/durable.py: `sync_tree` makes a whole folder durable, by syncfs(2) where the system
has it and by an fsync of every file and folder otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server import durable


def _tree(root: Path) -> list[Path]:
    files = [root / "series" / "0" / "0.dcm", root / "series" / "0" / "1.dcm",
             root / "annotation" / "mask.nii.gz"]
    for i, f in enumerate(files):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(bytes([i]) * 1000)
    return files


def _counting_fsync(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_one_syncfs_makes_the_tree_durable_where_linux_has_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if durable._SYNCFS is None:
        pytest.skip("this system's C library has no syncfs")
    _tree(tmp_path / "work")
    calls: list[int] = []
    real = durable._SYNCFS

    def syncfs(fd: int) -> int:
        calls.append(fd)
        return int(real(fd))  # type: ignore[operator]

    monkeypatch.setattr(durable, "_SYNCFS", syncfs)
    synced = _counting_fsync(monkeypatch)
    durable.sync_tree(tmp_path / "work")
    assert len(calls) == 1 and synced == []


@pytest.mark.parametrize("syncfs", [None, lambda fd: -1], ids=["no syncfs", "syncfs fails"])
def test_without_syncfs_every_file_and_folder_is_fsynced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: object) -> None:
    files = _tree(tmp_path / "work")
    monkeypatch.setattr(durable, "_SYNCFS", syncfs)
    synced = _counting_fsync(monkeypatch)
    durable.sync_tree(tmp_path / "work")
    folders = {tmp_path / "work", *(f.parent for f in files), tmp_path / "work" / "series"}
    assert sorted(synced) == sorted(str(p) for p in [*files, *folders])
