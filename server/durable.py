"""Making a write survive a crash: a renamed file is only durable once its folder is synced."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs() -> object | None:
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    except OSError:
        return None


_SYNCFS = _syncfs()


def sync_tree(folder: Path) -> None:
    """Every file and folder under `folder` (itself included) made durable. One syncfs(2) of
    its filesystem where the system has it (Linux): a single journal commit for the whole
    tree, where an fsync per file costs one each (300 for a CT volume). Elsewhere, or if
    syncfs fails, each file and folder is fsynced. OSError if that fails too."""
    if _SYNCFS is not None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:  # type: ignore[operator]
                return
        finally:
            os.close(fd)
    inside = sorted(folder.rglob("*"))
    for path in inside:
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    for directory in [folder, *(p for p in inside if p.is_dir())]:
        fsync_dir(directory)
