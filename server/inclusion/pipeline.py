"""From a received study to a de-identified, checked exam (docs/inclusion-platform.md).

Both ways in (the web upload, server/inclusion/upload.py, and the DICOM node) end in
`Intake.receive`: the raw files of one study, plus its annotation, in a folder on the data
dir's filesystem. `receive` commits the exam at stage received, moves the folder under
`inclusion/incoming/<exam id>/`, then returns; the rest runs in the
background, one exam at a time per worker process (a pool of `workers` processes, spawned: the
pydicom work is CPU-bound and would hold the event loop's GIL in a thread), one file at a time:

1. every DICOM file is de-identified (server/deid, the question's dates option) into
   `inclusion/exams/<exam id>.partial/series/<n>/`, the annotation copied (a DICOM SEG
   de-identified with the same keys) into `annotation/`; a file the profile rejects (burned-in
   text...) stops there: the exam is excluded with the reason, nothing of it is kept;
2. the series' headers, read from the de-identified copies, and the annotation are checked
   against the question's criteria (server/inclusion/check.py, annotation.py);
3. the folder is renamed `inclusion/exams/<exam id>/`, the exam recorded (de-identified, then
   its findings and summary), and only then is the raw folder removed.

Restart: an exam still at stage received whose raw folder is there is processed again from
the start (its half-written copy removed first); one whose folder never arrived (a stop between
the commit and the move: the caller still holds the folder and hands it over again) is
excluded; a raw folder of an exam already recorded is removed; anything `.partial` is removed.

A worker process that dies (killed, out of memory, a crash in a native library) loses nothing:
`prepare` only reads the raw folder, so the exam stays at stage received with its files in
`incoming/`; the pool is recreated and the exam prepared once more; if it kills its process
again it is excluded, with a message saying so (the center exports it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import hmac
import io
import json
import logging
import multiprocessing
import os
import re
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from server.deid import Dates, Keys, Policy, deidentify, load_keys
from server.deid.engine import NotDicomError, read_dicom
from server.durable import fsync_dir, sync_tree
from server.event import EventSpec, InclusionSpec
from server.inclusion.annotation import (
    Nodule,
    Volume,
    check_clinical,
    check_mask,
    check_nodules,
)
from server.inclusion.check import check_study
from server.inclusion.criteria import Criteria
from server.inclusion.headers import SeriesBuilder, SeriesSummary
from server.inclusion.viewer import seg_on_slices
from server.inclusion.violation import Severity, Violation
from server.store import exams as store

log = logging.getLogger("podium.intake")

# How many times an exam is prepared again after its worker process died under it.
RETRIES_AFTER_CRASH = 1

INCOMING = Path("inclusion") / "incoming"
EXAMS = Path("inclusion") / "exams"
PARTIAL = ".partial"
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
MASK_SUFFIXES = (".nii", ".nii.gz")
TABLE_SUFFIXES = (".csv", ".json")
# What archivers and file browsers leave beside the files: never part of a study.
JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "dicomdir"})


def source_key(keys: Keys, center_id: int, study_uid: str) -> str:
    """The exam's `source_key`: HMAC of the center and the study's original UID under the
    event secret, so the same study sent again is known without keeping its UID."""
    message = b"source\x00" + f"{center_id}\x00{study_uid}".encode("utf-8", "surrogateescape")
    return hmac.new(keys.secret, message, hashlib.sha256).hexdigest()


def is_junk(relative: Path) -> bool:
    """A file no center meant to send: macOS resource forks, folder metadata, DICOMDIR."""
    return (any(part.startswith("__MACOSX") for part in relative.parts)
            or relative.name.startswith("._") or relative.name.lower() in JUNK_NAMES)


def policy_for(inclusion: InclusionSpec) -> Policy:
    """The profile applied on arrival: the question's dates option, patient characteristics
    kept (age and sex are often criteria), descriptions cleaned rather than removed (the checks
    read SeriesDescription and the contrast agent)."""
    return Policy(dates=Dates(inclusion.dates), patient_characteristics=True,
                  clean_descriptors=True)


class Stopped(Exception):
    """The server is stopping: the exam is left at stage received, to be processed again."""


@dataclass
class Prepared:
    """What the blocking part found: either `rejected` (the reason, in the center's words) or
    the de-identified copy's numbers, the findings and the summary."""

    rejected: str | None = None
    crashed: str | None = None          # set by the intake: the worker died twice on it
    files: int = 0
    size: int = 0
    pseudonym: str | None = None
    study_uid: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


# The copies are written without an fsync each: `prepare` makes the whole `.partial` folder
# durable once, at its end (server/durable.py `sync_tree`), before it is renamed into place.

def _write(dataset: Any, target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(target, enforce_file_format=True)
    return target.stat().st_size


def _copy(source: Path, target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, target.open("wb") as out:
        shutil.copyfileobj(src, out, 1024 * 1024)
    return target.stat().st_size


def prepare(raw: Path, work: Path, inclusion: InclusionSpec, keys: Keys, today: date,
            stop: threading.Event | None = None) -> Prepared:
    """De-identifies and checks the study in `raw` into `work` (blocking; files read one at a
    time, pixel data never decoded). `work` is removed first if it exists."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    policy = policy_for(inclusion)
    out = Prepared()
    series: dict[str, tuple[int, SeriesBuilder]] = {}
    annotations: list[Path] = []       # copies under work/annotation
    pseudonyms: list[str] = []
    study_uids: list[str] = []
    for path in sorted(p for p in raw.rglob("*") if p.is_file()):
        if stop is not None and stop.is_set():
            raise Stopped
        relative = path.relative_to(raw)
        if is_junk(relative):
            continue
        lower = path.name.lower()
        if lower.endswith(MASK_SUFFIXES + TABLE_SUFFIXES):
            target = work / "annotation" / _free_name(work / "annotation", path.name)
            out.size += _copy(path, target)
            annotations.append(target)
            continue
        try:
            dataset = read_dicom(path)
        except NotDicomError:
            out.ignored.append(str(relative))
            continue
        try:
            result = deidentify(dataset, policy, keys)
        except Exception as exc:  # a value pydicom cannot convert, a broken sequence...
            return Prepared(rejected=f"{relative}: cannot be de-identified ({exc}); export "
                            "the series again")
        if result.rejection is not None:
            return Prepared(rejected=f"{relative}: {result.rejection.message}; nothing of "
                            "this exam is kept (remove the file, or send the series without "
                            "it)")
        if result.pseudonym and result.pseudonym not in pseudonyms:
            pseudonyms.append(result.pseudonym)
        uid = str(dataset.get("StudyInstanceUID", "") or "")
        if uid and uid not in study_uids:
            study_uids.append(uid)
        if str(dataset.get("SOPClassUID", "")) == SEG_SOP_CLASS:
            target = work / "annotation" / _free_name(work / "annotation", f"{path.stem}.dcm")
            out.size += _write(dataset, target)
            annotations.append(target)
            continue
        series_uid = str(dataset.get("SeriesInstanceUID", "") or "")
        if series_uid not in series:
            series[series_uid] = (len(series), SeriesBuilder())
        number, builder = series[series_uid]
        builder.add(dataset)
        try:
            out.size += _write(dataset, work / "series" / str(number) / f"{builder.files}.dcm")
        except (ValueError, TypeError, AttributeError) as exc:   # pydicom refuses to encode
            return Prepared(rejected=f"{relative}: cannot be written once de-identified "
                            f"({exc}); export the series again")
        out.files += 1
        del dataset
    if len(pseudonyms) > 1:
        return Prepared(rejected=f"the files belong to {len(pseudonyms)} patients; an exam is "
                        "one study of one patient: send each study on its own")
    if len(study_uids) > 1:
        return Prepared(rejected=f"the files belong to {len(study_uids)} studies; send each "
                        "study as its own exam")
    out.pseudonym = pseudonyms[0] if pseudonyms else None
    out.study_uid = study_uids[0] if study_uids else None
    criteria: Criteria | None = inclusion.criteria
    summaries = {number: builder.summary() for number, builder in series.values()}
    out.findings, out.summary = _check(criteria, summaries, annotations, work, today)
    sync_tree(work)
    return out


def _free_name(folder: Path, name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "annotation"
    candidate, n = safe, 1
    while (folder / candidate).exists():
        n += 1
        candidate = f"{n}-{safe}"
    return candidate


def _check(criteria: Criteria | None, summaries: dict[int, SeriesSummary],
           annotations: list[Path], work: Path, today: date
           ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    summary: dict[str, Any] = {"series_count": len(summaries)}
    if criteria is None:
        return [], summary
    numbers = {id(s): n for n, s in summaries.items()}
    study = check_study(criteria, list(summaries.values()))
    violations = list(study.violations)
    chosen = study.chosen
    if chosen is None and summaries:
        # The closest series still feeds the viewer, so a reviewer (or an organizer deciding
        # a violation) sees what came.
        chosen = max(summaries.values(), key=lambda s: s.stack.count)
    volume = Volume.from_series(chosen) if chosen is not None else None
    if chosen is not None:
        summary.update(_series_summary(chosen))
        summary["series"] = f"series/{numbers[id(chosen)]}"
    if criteria.mask:
        found, mask_path = _mask_findings(criteria, annotations, volume, work)
        violations += found
        if mask_path is not None:
            summary["mask"] = mask_path
    if criteria.nodules is not None:
        found, nodules = _nodule_findings(criteria, annotations, volume)
        violations += found
        summary["nodules"] = nodules
    if criteria.clinical:
        found, row = _clinical_findings(criteria, annotations, today)
        violations += found
        summary["clinical"] = row
    return [v.to_json() for v in violations], summary


def _series_summary(series: SeriesSummary) -> dict[str, Any]:
    thickness = series.slice_thickness()
    return {"modality": series.modality, "slices": series.stack.count,
            "thickness_mm": thickness.value, "spacing_mm": series.stack.spacing,
            "pixel_spacing_mm": list(series.pixel_spacing) if series.pixel_spacing else None,
            "kernel": "\\".join(series.kernel), "manufacturer": series.manufacturer,
            "size": list(series.sizes[0]) if series.sizes else None}


def _of_kind(annotations: list[Path], suffixes: tuple[str, ...]) -> list[Path]:
    return [p for p in annotations if p.name.lower().endswith(suffixes)]


def _mask_findings(criteria: Criteria, annotations: list[Path], volume: Volume | None,
                   work: Path) -> tuple[list[Violation], str | None]:
    candidates = _of_kind(annotations, MASK_SUFFIXES + (".dcm",))
    if not candidates:
        return check_mask(None, volume.shape if volume else (0,)), None
    path = candidates[0]
    relative = str(path.relative_to(work))
    if volume is None:
        return [], relative     # the series' own violations say why there is no volume
    try:
        mask = _read_mask(path, volume)
    except Exception as exc:  # nibabel and highdicom raise many kinds on a broken file
        return [Violation("mask_missing", "mask", f"the mask {path.name} cannot be read "
                          f"({exc}); send a NIfTI or a DICOM SEG of the exam's series",
                          Severity.VIOLATION, path.name, "a readable mask")], None
    return check_mask(mask, volume.shape, empty=criteria.empty_mask), relative


def _read_mask(path: Path, volume: Volume) -> Any:
    """The mask as (slices, rows, columns): a NIfTI's voxels (columns, rows, slices, as a
    NIfTI of the exam's grid stores them) transposed; a SEG placed on the series' slices
    (`seg_on_slices`, the viewer's placement too)."""
    if path.name.lower().endswith(MASK_SUFFIXES):
        import nibabel as nib

        image: Any = nib.load(str(path))
        labels = np.asarray(image.dataobj)
        if labels.ndim == 4 and labels.shape[3] == 1:
            labels = labels[..., 0]
        return labels.T
    return seg_on_slices(path, volume.shape, volume.origin, volume.normal, volume.spacing[2])


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(str(value).replace(",", ".") if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """A CSV's rows (comma or semicolon, as a French spreadsheet writes it)."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


class _Unreadable(Exception):
    pass


_LABELS = {"1": 1, "true": 1, "yes": 1, "malignant": 1,
           "0": 0, "false": 0, "no": 0, "benign": 0}


def _label(value: Any, where: str) -> int | None:
    """The exam's label as a table gives it: 0 or 1 (a number, a boolean, or its text)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    found = _LABELS.get(str(value).strip().casefold())
    if found is None:
        raise _Unreadable(f"{where}: malignant is {value!r}; give 0 (benign) or 1 (malignant)")
    return found


def _read_nodules(path: Path) -> tuple[list[Nodule], int | None]:
    """Nodules from `nodules.csv` (columns x, y, z, and diameter_mm, volume_mm3, density when
    known; a `malignant` column, 0 or 1, gives the exam's label: one value on every row that
    has one) or `nodules.json` (a list of such objects, or {"malignant": 0 or 1,
    "nodules": [...]})."""
    label: int | None = None
    if path.name.lower().endswith(".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Unreadable(f"{path.name} is not valid JSON ({exc})") from None
        if isinstance(data, dict):
            label = _label(data.get("malignant"), path.name)
            data = data.get("nodules", [])
        if not isinstance(data, list):
            raise _Unreadable(f"{path.name} must hold a list of nodules")
        rows = [r for r in data if isinstance(r, dict)]
    else:
        rows = _read_rows(path)
        labels = {found for row in rows
                  if (found := _label(row.get("malignant"), path.name)) is not None}
        if len(labels) > 1:
            raise _Unreadable(f"{path.name} gives the exam both labels (malignant 0 and 1); "
                              "an exam has one label")
        label = labels.pop() if labels else None
    nodules = []
    for index, row in enumerate(rows, start=1):
        point = [_number(row.get(k)) for k in ("x", "y", "z")]
        if any(v is None for v in point):
            raise _Unreadable(f"nodule {index} of {path.name} has no x, y and z")
        nodules.append(Nodule((point[0], point[1], point[2]),  # type: ignore[arg-type]
                              _number(row.get("diameter_mm")), _number(row.get("volume_mm3")),
                              str(row.get("density") or "") or None, f"nodule {index}"))
    return nodules, label


def _nodule_findings(criteria: Criteria, annotations: list[Path], volume: Volume | None
                     ) -> tuple[list[Violation], list[dict[str, Any]]]:
    rule = criteria.nodules
    assert rule is not None
    files = [p for p in _of_kind(annotations, TABLE_SUFFIXES) if "nodule" in p.name.lower()]
    nodules: list[Nodule] = []
    label = None
    if files:
        try:
            nodules, label = _read_nodules(files[0])
        except _Unreadable as exc:
            return [Violation("nodule_count", "nodules.count", f"{exc}: no nodule could be "
                              "read", Severity.VIOLATION, "unreadable", rule.count.text())], []
    if volume is None:
        return [], []
    found = check_nodules(nodules, rule, volume, label)
    marks = []
    for nodule in nodules:
        point = nodule.position
        if rule.positions == "voxel":
            point = _voxel_to_mm(volume, point)
        marks.append({"x": point[0], "y": point[1], "z": point[2],
                      "diameter_mm": nodule.diameter_mm, "volume_mm3": nodule.volume_mm3,
                      "density": nodule.density})
    return found, marks


def _voxel_to_mm(volume: Volume, voxel: tuple[float, float, float]) -> tuple[float, float, float]:
    column, row, k = voxel
    point = (np.array(volume.origin) + column * volume.spacing[1] * np.array(volume.row_direction)
             + row * volume.spacing[0] * np.array(volume.column_direction)
             + k * volume.spacing[2] * np.array(volume.normal))
    return (float(point[0]), float(point[1]), float(point[2]))


def _clinical_findings(criteria: Criteria, annotations: list[Path], today: date
                       ) -> tuple[list[Violation], dict[str, Any]]:
    files = [p for p in _of_kind(annotations, (".csv",)) if "nodule" not in p.name.lower()]
    row: dict[str, Any] = {}
    if files:
        rows = _read_rows(files[0])
        row = rows[0] if rows else {}
    return check_clinical(row, criteria.clinical, today=today, also=("exam",)), row


def _publish(work: Path, final: Path) -> None:
    shutil.rmtree(final, ignore_errors=True)
    os.replace(work, final)
    fsync_dir(final.parent)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        fsync_dir(path.parent)


def _move_in(folder: Path, raw: Path) -> None:
    raw.parent.mkdir(parents=True, exist_ok=True)
    os.replace(folder, raw)
    fsync_dir(raw.parent)
    if folder.parent != raw.parent:
        fsync_dir(folder.parent)


class UnknownQuestion(ValueError):
    """`receive` for a question that collects no exams."""


class Intake:
    """The app's intake: `receive` studies, process them in the background (docs above)."""

    def __init__(self, pool: asyncpg.Pool, event: EventSpec, data_dir: Path, *,
                 workers: int = 1, clock: Callable[[], datetime] | None = None,
                 prepare_fn: Callable[..., Prepared] | None = None) -> None:
        self.pool = pool
        self.event = event
        self.data_dir = data_dir
        self.incoming = data_dir / INCOMING
        self.exams = data_dir / EXAMS
        self.clock = clock or (lambda: datetime.now(UTC))
        self.workers = max(1, workers)
        # What runs in the worker processes: `prepare`, or (tests) a module-level function of
        # the same signature that a spawned child can import.
        self._prepare = prepare_fn or prepare
        self._executor: ProcessPoolExecutor | None = None
        self._stop = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._keys: Keys | None = None

    @property
    def keys(self) -> Keys:
        assert self._keys is not None, "start() opens the keys"
        return self._keys

    def inclusion(self, challenge: str) -> InclusionSpec:
        for spec in self.event.challenges:
            if spec.slug == challenge and spec.inclusion is not None:
                return spec.inclusion
        raise UnknownQuestion(f"{challenge!r} collects no exams (no [challenges.inclusion])")

    async def start(self) -> None:
        """Opens the keys and takes up what a stopped server left (restart behaviour above)."""
        self._keys = await asyncio.to_thread(load_keys, self.data_dir)
        self._stop.clear()
        self._executor = self._new_executor()
        await asyncio.to_thread(self._folders)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT id, stage FROM exam")
        stages = {r["id"]: r["stage"] for r in rows}
        for entry in await asyncio.to_thread(lambda: list(self.exams.iterdir())):
            if entry.name.endswith(PARTIAL):
                await asyncio.to_thread(_remove, entry)
        for entry in await asyncio.to_thread(lambda: list(self.incoming.iterdir())):
            exam_id = int(entry.name) if entry.name.isdigit() else None
            if exam_id is not None and stages.get(exam_id) == store.Stage.RECEIVED:
                continue
            await asyncio.to_thread(_remove, entry)     # recorded already, or left by a failure
        for exam_id, stage in stages.items():
            if stage != store.Stage.RECEIVED:
                continue
            if (self.incoming / str(exam_id)).is_dir():
                self._spawn(exam_id)
            else:
                async with self.pool.acquire() as conn:
                    await store.exclude(conn, exam_id, store.Exclusion.DEIDENTIFICATION,
                                        "the files were lost before they were de-identified: "
                                        "send the exam again")

    def _folders(self) -> None:
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.exams.mkdir(parents=True, exist_ok=True)

    def _new_executor(self) -> ProcessPoolExecutor:
        # Spawned, as the scorers are (server/worker.py): a fork of a process running an event
        # loop, asyncpg connections and threads is not safe. The children start on the first
        # exam, not here.
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_started)

    def worker_pids(self) -> list[int]:
        """The pool's live processes (the organizer's `ps`, and the crash test)."""
        executor = self._executor
        processes = getattr(executor, "_processes", None) or {}
        return [p.pid for p in list(processes.values()) if p.pid is not None and p.is_alive()]

    async def close(self) -> None:
        self._stop.set()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(_shut_down, executor)

    async def idle(self) -> None:
        """Waits until every exam received so far is processed (for tests and the bench)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def receive(self, *, center_id: int, challenge: str, channel: str, label: str,
                      source_key: str, folder: Path) -> int:
        """Takes `folder` (moved, never copied), commits the exam at stage received and
        returns its id; de-identification and the checks follow in the background."""
        self.inclusion(challenge)
        await asyncio.to_thread(self._folders)
        async with self.pool.acquire() as conn:
            exam_id = await store.create(
                conn, center_id=center_id, challenge=challenge, channel=channel, label=label,
                source_key=source_key, message=f"received {label} ({channel})")
            # Committed before the move: a stop in between leaves the caller's folder where
            # it was (the caller hands it over again, and the new exam replaces this one);
            # never files without an exam, nor an exam whose files were silently dropped.
            try:
                await asyncio.to_thread(_move_in, folder, self.incoming / str(exam_id))
            except BaseException:
                await store.exclude(conn, exam_id, store.Exclusion.DEIDENTIFICATION,
                                    "the server could not take the files in: send the exam "
                                    "again")
                raise
        self._spawn(exam_id)
        return exam_id

    def _spawn(self, exam_id: int) -> None:
        task = asyncio.create_task(self._process(exam_id), name=f"intake-{exam_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, exam_id: int) -> None:
        try:
            await self._run(exam_id)
        except Stopped:
            return      # taken up again on the next start
        except Exception:
            log.exception("exam %s could not be processed; it stays at stage received and is "
                          "taken up again on the next start", exam_id)

    async def _record(self, conn: asyncpg.Connection, exam_id: int, final: Path,
                      prepared: Prepared) -> None:
        ignored = (f"; {len(prepared.ignored)} file(s) that are not DICOM ignored: "
                   + ", ".join(prepared.ignored[:5])) if prepared.ignored else ""
        await store.deidentified(
            conn, exam_id, folder=final, files=prepared.files, size=prepared.size,
            pseudonym=prepared.pseudonym, study_uid=prepared.study_uid,
            message=f"{prepared.files} DICOM file(s) de-identified{ignored}")
        violations = sum(f["severity"] == "violation" for f in prepared.findings)
        warnings = len(prepared.findings) - violations
        message = (f"criteria: {violations} violation(s), {warnings} warning(s)"
                   if prepared.findings else "criteria: every rule met")
        await store.checked(conn, exam_id, prepared.findings, prepared.summary, message)

    async def _run(self, exam_id: int) -> None:
        async with self.pool.acquire() as conn:
            exam = await store.exam(conn, exam_id)
        if exam is None or exam.stage != store.Stage.RECEIVED:
            return
        assert self._keys is not None, "start() opens the keys"
        inclusion = self.inclusion(exam.challenge)
        raw = self.incoming / str(exam_id)
        work = self.exams / f"{exam_id}{PARTIAL}"
        final = self.exams / str(exam_id)
        prepared = await self._prepare_in_pool(exam_id, raw, work, inclusion)
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                # The exam may have moved on meanwhile (replaced by the same study sent
                # again, withdrawn): then nothing of this work is recorded.
                stage = await conn.fetchval("SELECT stage FROM exam WHERE id = $1 FOR UPDATE",
                                            exam_id)
                if stage != store.Stage.RECEIVED:
                    await asyncio.to_thread(_remove, work)
                elif prepared.crashed is not None:
                    await asyncio.to_thread(_remove, work)
                    await store.exclude(conn, exam_id, store.Exclusion.DEIDENTIFICATION,
                                        prepared.crashed)
                elif prepared.rejected is not None:
                    await asyncio.to_thread(_remove, work)
                    await store.exclude(conn, exam_id, store.Exclusion.DEIDENTIFICATION,
                                        f"rejected at de-identification: {prepared.rejected}")
                else:
                    await asyncio.to_thread(_publish, work, final)
                    await self._record(conn, exam_id, final, prepared)
        await asyncio.to_thread(_remove, raw)

    async def _prepare_in_pool(self, exam_id: int, raw: Path, work: Path,
                               inclusion: InclusionSpec) -> Prepared:
        """`prepare` in a worker process. A process that dies under it breaks the pool: the
        pool is recreated (once for every exam it took down) and the exam prepared again;
        a second death excludes it (`Prepared.crashed`)."""
        assert self._keys is not None, "start() opens the keys"
        loop = asyncio.get_running_loop()
        for attempt in range(RETRIES_AFTER_CRASH + 1):
            if self._stop.is_set():
                raise Stopped
            executor = self._executor
            if executor is None:
                raise Stopped
            try:
                # The child gets the paths, the question's spec, the keys (their secret is
                # pickled to it, never logged: Keys' repr leaves it out) and today's date.
                return await loop.run_in_executor(
                    executor, self._prepare, raw, work, inclusion, self._keys,
                    self.clock().date())
            except BrokenProcessPool:
                if self._stop.is_set():
                    raise Stopped from None
                if self._executor is executor:      # the first exam to see it replaces it
                    self._executor = self._new_executor()
                    executor.shutdown(wait=False, cancel_futures=True)
                log.warning("the worker process preparing exam %s died (attempt %d of %d); "
                            "its files are kept in %s", exam_id, attempt + 1,
                            RETRIES_AFTER_CRASH + 1, raw)
        return Prepared(crashed="rejected at de-identification: the worker process died "
                        f"{RETRIES_AFTER_CRASH + 1} times while reading this exam (a file "
                        "that crashes the DICOM reader, or one too large for the server's "
                        "memory); export the study again, or send it without its unusual "
                        "files")


# Below the server and the DICOM node, as the scorers are (server/worker.py): a PACS waiting
# for its acknowledgements, a page, an upload come first; an exam is de-identified a moment
# later when the machine is busy, and at once when it is not.
WORKER_NICENESS = 10


def _worker_started() -> None:
    os.nice(WORKER_NICENESS)


def _shut_down(executor: ProcessPoolExecutor) -> None:
    """Stops the pool without waiting for an exam in progress: its process is terminated (the
    exam stays at stage received and is prepared again on the next start)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(10)
