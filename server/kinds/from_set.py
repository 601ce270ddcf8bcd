"""What the kinds' truth writers read of a set's kept exams (`truth = "set:NAME"`,
docs/datasets.md): an exam's chosen series, its mask and its nodules, as the inclusion intake
keeps them (server/inclusion/pipeline.py: `series/<n>/` of de-identified DICOM files, the
center's annotation in `annotation/`, the summary's `series`, `mask` and `nodules` in mm).
Each raises TruthMissing naming what the exam lacks. A building block, not a kind."""

from __future__ import annotations

import csv
import io
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server.kinds.base import SetExam, TruthMissing

ANNOTATION = "annotation"
MASK_SUFFIXES = (".nii.gz", ".nii", ".dcm")
NODULE_HEADER = ("id", "x", "y", "z", "diameter_mm")


def folder_of(exam: SetExam) -> Path:
    if exam.folder is None or not exam.folder.is_dir():
        raise TruthMissing(exam.id, f"folder ({exam.folder} is missing)")
    return exam.folder


def series_folder(exam: SetExam) -> Path:
    """The series the intake chose (`series` of its summary), else its only one."""
    folder = folder_of(exam)
    chosen = exam.summary.get("series")
    if isinstance(chosen, str) and (folder / chosen).is_dir():
        return folder / chosen
    found = sorted(p for p in (folder / "series").glob("*") if p.is_dir()) \
        if (folder / "series").is_dir() else []
    if len(found) != 1:
        raise TruthMissing(exam.id, "series (series/<n>/ of DICOM files in its folder)"
                           if not found else f"chosen series ({len(found)} series, no "
                           "`series` in its summary)")
    return found[0]


def suffix_of(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in MASK_SUFFIXES if name.endswith(s)), "")


def mask_file(exam: SetExam) -> Path:
    """The center's mask: the summary's `mask`, else the one NIfTI or DICOM SEG of
    `annotation/`."""
    folder = folder_of(exam)
    given = exam.summary.get("mask")
    if isinstance(given, str) and (folder / given).is_file() and suffix_of(folder / given):
        return folder / given
    found = sorted(p for p in (folder / ANNOTATION).rglob("*")
                   if p.is_file() and suffix_of(p)) if (folder / ANNOTATION).is_dir() else []
    if len(found) != 1:
        raise TruthMissing(exam.id, "mask (a NIfTI or DICOM SEG in annotation/)" if not found
                           else f"single mask ({len(found)} in annotation/)")
    return found[0]


def copy_mask(exam: SetExam, masks: Path) -> None:
    source = mask_file(exam)
    shutil.copyfile(source, masks / f"{exam.id}{suffix_of(source)}")


def nodule_rows(exam: SetExam) -> list[tuple[Any, ...]]:
    """The exam's nodules as rows of id,x,y,z,diameter_mm (mm, LPS: the intake's marks, voxel
    positions already placed by the exam's geometry); [(id,)] for an exam without one."""
    marks = exam.summary.get("nodules")
    if not isinstance(marks, list):
        folder = folder_of(exam)
        tables = [p for p in (folder / ANNOTATION).glob("*nodule*")
                  if p.suffix.lower() in (".csv", ".json")]
        raise TruthMissing(exam.id, "nodules (a nodules table in annotation/)" if not tables
                           else "nodules in its summary: the intake reads its nodules table "
                           "when the question declares [challenges.inclusion.criteria.nodules]")
    rows: list[tuple[Any, ...]] = []
    for number, mark in enumerate(marks, start=1):
        given = [mark.get(k) if isinstance(mark, dict) else None
                 for k in ("x", "y", "z", "diameter_mm")]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                   for v in given):
            raise TruthMissing(exam.id, f"centre and diameter_mm for its nodule {number}")
        values = [float(v) for v in given]  # type: ignore[arg-type]
        if values[3] <= 0:
            raise TruthMissing(exam.id, f"diameter above 0 for its nodule {number}")
        rows.append((exam.id, *(repr(v) for v in values)))
    return rows or [(exam.id,)]


def nodules_csv(exams: Sequence[SetExam]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(NODULE_HEADER)
    for exam in sorted(exams, key=lambda e: e.id):
        writer.writerows(nodule_rows(exam))
    return out.getvalue()


def write_volumes(exams: Sequence[SetExam], target: Path) -> None:
    """`images/<id>/` (the exam's series) and `masks/<id>.nii.gz|.nii|.dcm` (its mask)."""
    (target / "images").mkdir(parents=True)
    (target / "masks").mkdir()
    for exam in sorted(exams, key=lambda e: e.id):
        series = series_folder(exam)
        copy_mask(exam, target / "masks")
        shutil.copytree(series, target / "images" / str(exam.id))


def values_csv(exams: Sequence[SetExam], column: str, missing: str) -> str:
    """The two-column truth `id,<column>` of the exams' values (a label as 0/1: 1 for
    malignant); TruthMissing(`missing`) for the first exam without one."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", column])
    for exam in sorted(exams, key=lambda e: e.id):
        value = exam.value
        if value is None:
            raise TruthMissing(exam.id, missing)
        if isinstance(value, str):
            value = 1 if value == "malignant" else 0
        writer.writerow([exam.id, f"{value:g}" if isinstance(value, float) else value])
    return out.getvalue()
