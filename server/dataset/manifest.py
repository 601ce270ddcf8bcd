"""A set's manifest (docs/datasets.md): every file of every exam of the set, its path relative
to the set (`<exam id>/series/0/3.dcm`), its size and its SHA-256, written as CSV. Blocking:
run it in a thread."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("exam", "center", "path", "bytes", "sha256")
CHUNK = 1 << 20


@dataclass(frozen=True)
class ManifestExam:
    id: int
    center: str
    folder: Path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_rows(exams: Iterable[ManifestExam]) -> list[dict[str, str | int]]:
    """One row per file, exams by id, files by path. An exam whose folder is gone is a
    FileNotFoundError naming it: a manifest that silently lacks an exam is worse than none."""
    rows: list[dict[str, str | int]] = []
    for exam in sorted(exams, key=lambda e: e.id):
        if not exam.folder.is_dir():
            raise FileNotFoundError(f"exam {exam.id}'s folder {exam.folder} is missing")
        for path in sorted(p for p in exam.folder.rglob("*") if p.is_file()):
            relative = path.relative_to(exam.folder).as_posix()
            rows.append({"exam": exam.id, "center": exam.center,
                         "path": f"{exam.id}/{relative}", "bytes": path.stat().st_size,
                         "sha256": sha256_of(path)})
    return rows


def manifest_csv(exams: Iterable[ManifestExam]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(manifest_rows(exams))
    return out.getvalue()


def write_manifest(target: Path, exams: Iterable[ManifestExam]) -> Path:
    """Writes the manifest to `target` (its folder made), through a temporary file so a reader
    never sees half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    text = manifest_csv(exams)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    return target
