"""The DICOM node run by `podium serve --dicom-port N`: the library Storage SCP
(server/inclusion/dicom_node.py) wired to the event's centers and to the intake pipeline. It
runs in a process of its own (server/inclusion/node_process.py): its association threads do not
share the server's interpreter lock, and the two meet only in the spool.

Each center with an `ae_title` in the event file may send; its studies are spooled under
DATA_DIR/dicom-spool/<center id>/<StudyInstanceUID>/ and closed after the quiet period. A closed
study (its `study.json` marker written; the node's process says so on its standard output) is
handed on the event loop: the question it is for is
picked from its headers (`choose_question`), then `Intake.receive(channel="dicom", ...)` takes
a folder of hard links to its instances and commits the exam. Only then are the spool's
originals removed, so the hand-over is driven by the spool alone — a marked folder still in the
spool has not been taken — and one sweep serves a study just closed and one a crash left:

`handing.json`, written before each hand-over, holds the highest exam id of that moment and
the linked folder's name. The pipeline commits the exam, then moves the linked folder in. So
at the next attempt (or start): no exam of this center and study above that id — handed again;
such an exam but the linked folder still there — the pipeline never took the files (it excludes
that exam), handed again and the new exam replaces it; the exam and the linked folder gone —
done, only the spool's copy is removed, no second exam.

docs/inclusion.md "The DICOM node" is the contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from server.config import Config
from server.deid import Keys, load_keys
from server.durable import fsync_dir
from server.event import EventSpec
from server.inclusion.check import check_series, check_study
from server.inclusion.criteria import Criteria
from server.inclusion.dicom_node import (
    INSTANCE_SUFFIX,
    MARKER,
    TEMP_SUFFIX,
    closed_folders,
)
from server.inclusion.headers import (
    SeriesSummary,
    study_label,
    study_series,
    summary_from_json,
)
from server.inclusion.pipeline import source_key

if TYPE_CHECKING:  # server.storage imports server.keys, which imports this module
    from server.storage import Storage

LOG = logging.getLogger(__name__)

SPOOL = "dicom-spool"
# Where a study's instances are linked for the pipeline to take (same filesystem as the spool).
HANDOVER = "dicom-handover"
# In a study's folder while it is handed: the highest exam id before the hand-over.
HANDING = "handing.json"
CHANNEL = "dicom"
_DIMENSION_RULES = ("dimension", "min_slices")


class Receiver(Protocol):
    """The pipeline's side of the hand-over (server/inclusion/pipeline.py `Intake`)."""

    async def receive(self, *, center_id: int, challenge: str, channel: str, label: str,
                      source_key: str, folder: Path) -> int: ...


@dataclass(frozen=True)
class Center:
    """A center that may send: its id (its folder in the spool), name and questions, each
    with its criteria (None: the question checks nothing on headers)."""

    id: int
    name: str
    ae_title: str
    questions: tuple[tuple[str, Criteria | None], ...]


# -- the question a study is for (pure) ------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    challenge: str
    why: str


def _fit(criteria: Criteria | None, series: Sequence[SeriesSummary]) -> tuple[int, ...]:
    """How well a study fits one question, smaller is better: (modality, dimension,
    accepted, violations), each 0 when it fits."""
    if criteria is None:
        return (0, 0, 0, 0)
    candidates = [s for s in series if not s.localizer] or list(series)
    best = (1, 1)
    for s in candidates:
        if s.modality != criteria.modality:
            continue
        found = check_series(criteria, s)
        dimension_fits = not any(v.excludes and v.rule in _DIMENSION_RULES for v in found)
        best = min(best, (0, 0 if dimension_fits else 1))
    study = check_study(criteria, series)
    return (*best, 0 if study.accepted else 1, sum(v.excludes for v in study.violations))


def choose_question(questions: Sequence[tuple[str, Criteria | None]],
                    series: Sequence[SeriesSummary]) -> Choice:
    """The question a study received by DICOM is for. A center that includes for one question:
    that one. Otherwise the one whose criteria the study fits best: its modality first, then
    2-D or 3-D (one slice or a volume of enough slices), then every criterion met, then the
    fewest violations; a tie goes to the question named first in the center's list. A study
    that fits none still goes to the closest, where its violations tell the center why."""
    if not questions:
        raise ValueError("a center without questions cannot send")
    if len(questions) == 1:
        return Choice(questions[0][0], "the center's only question")
    ranked = sorted(range(len(questions)), key=lambda i: (_fit(questions[i][1], series), i))
    slug = questions[ranked[0]][0]
    fit = _fit(questions[ranked[0]][1], series)
    if fit[0]:
        return Choice(slug, "no question takes this modality; the first of the center's list")
    if fit[1]:
        return Choice(slug, "the modality fits, not the number of slices; the closest question")
    if fit[2]:
        return Choice(slug, "modality and slices fit; the question with the fewest violations")
    return Choice(slug, "the study meets this question's criteria")


# -- what is read of a closed study (blocking: run in a thread) ------------------------------


@dataclass(frozen=True)
class Study:
    study_uid: str
    label: str
    series: tuple[SeriesSummary, ...]


def _headers(files: Iterable[Path]) -> Iterable[Any]:
    for path in files:
        try:
            yield dcmread(path, stop_before_pixels=True, defer_size="4 KB")
        except (InvalidDicomError, ValueError, EOFError, OSError) as exc:
            LOG.warning("%s: header not readable (%s); left to the pipeline", path.name, exc)


def read_study(folder: Path) -> Study:
    """The study's label and series summaries: those the node kept in its marker while the
    instances arrived (each header is read once), else (a study armed again after a restart,
    or sent in several rounds) the files' headers read one at a time."""
    files = sorted(folder.glob(f"*{INSTANCE_SUFFIX}"))
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        marker = json.loads((folder / MARKER).read_text())
        if marker.get("series") is not None and marker.get("instances") == len(files):
            return Study(folder.name, marker.get("label") or f"study of {len(files)} instances",
                         tuple(summary_from_json(s) for s in marker["series"]))
    label = ""
    first = next(iter(_headers(files[:1])), None)
    if first is not None:
        label = study_label(first)
    return Study(folder.name, label or f"study of {len(files)} instances",
                 tuple(study_series(_headers(files))))


# -- the node in the server -----------------------------------------------------------------


class Node:
    """The DICOM node of one server process: listens while the app runs (in a process of its
    own, server/inclusion/node_process.py, started again if it dies), hands each closed study
    to `receiver` on the app's event loop."""

    def __init__(self, *, pool: asyncpg.Pool, spool: Path, centers: Sequence[Center],
                 receiver: Receiver,
                 keys: Keys, ae_title: str, host: str, port: int,
                 quiet_s: float, storage: Storage, tick_s: float = 1.0) -> None:
        self.pool = pool
        self.spool = spool
        self.handover = spool.parent / HANDOVER
        self.by_id = {c.id: c for c in centers}
        self.receiver = receiver
        self.keys = keys
        self.ae_title = ae_title
        self.host, self.port = host, port
        self.quiet_s = quiet_s
        # What the node's process is given (docs there); its port, once known, is kept so
        # that a node started again listens where the centers' PACS send.
        self._settings: dict[str, Any] = {
            "spool": str(spool), "centers": {c.ae_title: str(c.id) for c in centers},
            "quiet_s": quiet_s, "ae_title": ae_title, "host": host,
            "data_dir": str(storage.data_dir), "reserve_bytes": storage.reserve_bytes,
            "parent": os.getpid(), "tick_s": tick_s}
        self._process: asyncio.subprocess.Process | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self._handing: set[Path] = set()
        self._handovers: set[asyncio.Task[None]] = set()
        self.handed: list[tuple[str, int]] = []  # (study folder name, exam id), for tests

    @property
    def pid(self) -> int | None:
        """The node's process (tests kill it)."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    async def start(self) -> int:
        """Start the node's process (it recovers the spool and listens), then hand every
        closed study still in the spool."""
        self._stopping = False
        self.port = await self._launch()
        self._keeper = asyncio.create_task(self._keep_running(), name="dicom-node-keeper")
        await asyncio.to_thread(self._sweep_handover)
        self._sweeper = asyncio.create_task(self._sweep(), name="dicom-node-sweeper")
        return self.port

    async def stop(self) -> None:
        self._stopping = True
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        await self._end_process()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        # A hand-over under way finishes (the exam row and the folder move are short); one
        # cancelled here is handed again at the next start.
        if self._handovers:
            await asyncio.wait(self._handovers, timeout=30)

    # -- the node's process ---------------------------------------------------------------

    async def _launch(self) -> int:
        """The node's process started and listening: its port. OSError if it cannot listen."""
        settings = {**self._settings, "port": self.port}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.inclusion.node_process", json.dumps(settings),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode(errors="replace").strip()
        if not line.startswith("port "):
            await self._end(process)
            why = line.removeprefix("error ") or f"its process ended ({process.returncode})"
            raise OSError(f"the DICOM node cannot listen on {self.host}:{self.port}: {why}")
        self._process = process
        return int(line.split()[1])

    async def _keep_running(self) -> None:
        """Wakes the sweeper for each study the node closed; starts the node again if its
        process ends while the server runs (a PACS sending meanwhile is refused a moment,
        and sends again as it does after any network fault)."""
        while True:
            process = self._process
            assert process is not None and process.stdout is not None
            while line := await process.stdout.readline():
                if line.startswith(b"closed"):
                    self._wake.set()
            code = await process.wait()
            LOG.error("the DICOM node's process ended (exit status %s): started again", code)
            while True:
                try:
                    await self._launch()
                    break
                except OSError as exc:
                    LOG.error("%s; trying again in a second", exc)
                    await asyncio.sleep(1)
            self._wake.set()  # studies it closed before it ended

    async def _end_process(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            await self._end(process)

    @staticmethod
    async def _end(process: asyncio.subprocess.Process) -> None:
        """Its standard input closed: the node stops (associations ended) and exits."""
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            LOG.warning("the DICOM node's process did not stop within 10 s: killed")
            process.kill()
            await process.wait()

    # -- on the event loop ----------------------------------------------------------------

    async def _sweep(self) -> None:
        while True:
            # Cleared before looking: a study closed while the spool is read wakes the next
            # round instead of being missed until the timeout.
            self._wake.clear()
            for folder in await asyncio.to_thread(closed_folders, self.spool):
                if folder not in self._handing:
                    self._handing.add(folder)
                    task = asyncio.create_task(self._hand(folder), name="dicom-hand-over")
                    self._handovers.add(task)
                    task.add_done_callback(self._handovers.discard)
            # Woken by a study closed; otherwise look again now and then (a hand-over that
            # failed, say with the database away, is tried again).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(self.quiet_s, 5))

    async def _hand(self, folder: Path) -> None:
        try:
            center = self.by_id.get(int(folder.parent.name))
            if center is None:
                LOG.warning("study %s: its center %s is no longer in the event; left in the "
                            "spool", folder.name, folder.parent.name)
                return
            study = await asyncio.to_thread(read_study, folder)
            choice = choose_question(center.questions, study.series)
            key = source_key(self.keys, center.id, study.study_uid)
            earlier = await asyncio.to_thread(_handing, folder)
            async with self.pool.acquire() as conn:
                # The study sent before (its late instances after the quiet period, or the
                # whole study again): the same question, so the new exam replaces that one
                # (a few late slices alone could look like another question's study).
                before = await conn.fetchval(
                    """SELECT c.slug FROM exam e JOIN challenge c ON c.id = e.challenge_id
                       WHERE e.center_id = $1 AND e.source_key = $2
                       ORDER BY e.id DESC LIMIT 1""", center.id, key)
                if before is not None and before != choice.challenge and \
                        before in dict(center.questions):
                    choice = Choice(before, f"this study was sent before for {before}: the "
                                    "new exam replaces that one")
                if earlier is None:
                    since = await conn.fetchval("SELECT coalesce(max(id), 0) FROM exam")
                else:
                    # Handed before a crash. The pipeline commits the exam, then moves the
                    # linked folder in: an exam above `since` whose linked folder is gone
                    # has its files, and the hand-over is done.
                    since, linked = earlier
                    done = await conn.fetchval(
                        "SELECT id FROM exam WHERE center_id = $1 AND source_key = $2 "
                        "AND id > $3 ORDER BY id DESC LIMIT 1", center.id, key, since)
                    if done is not None and not (self.handover / linked).exists():
                        await asyncio.to_thread(self._release, folder, None)
                        self.handed.append((folder.name, done))
                        LOG.info("study %s of %s was exam %d already; its spool copy is "
                                 "removed", folder.name, center.name, done)
                        return
                    await asyncio.to_thread(_remove_tree, self.handover / linked)
            name = f"{folder.parent.name}-{folder.name}-{uuid.uuid4().hex[:8]}"
            await asyncio.to_thread(_note_handing, folder, since, name)
            handed, files = await asyncio.to_thread(self._link, folder, name)
            # Not removed if this fails: its presence tells the next attempt that the
            # pipeline did not take the files (an exam it committed without them is
            # replaced by the next one).
            exam_id = await self.receiver.receive(
                center_id=center.id, challenge=choice.challenge, channel=CHANNEL,
                label=study.label, source_key=key, folder=handed)
            await asyncio.to_thread(self._release, folder, files)
            self.handed.append((folder.name, exam_id))
            LOG.info("study from %s (%d instances) is exam %d of %s: %s", center.name,
                     len(files), exam_id, choice.challenge, choice.why)
        except Exception:
            LOG.exception("study %s could not be handed to the pipeline; tried again later",
                          folder)
        finally:
            self._handing.discard(folder)

    def _link(self, folder: Path, name: str) -> tuple[Path, list[Path]]:
        """The study's instances linked (not copied) into a folder of their own, which the
        pipeline takes: until it has committed the exam, the spool keeps the originals."""
        files = sorted(folder.glob(f"*{INSTANCE_SUFFIX}"))
        handed = self.handover / name
        handed.mkdir(parents=True)
        for f in files:
            os.link(f, handed / f.name)
        fsync_dir(handed)
        fsync_dir(handed.parent)
        return handed, files

    def _sweep_handover(self) -> None:
        """Linked folders no study in the spool names: left by a crash before their
        study's `handing.json` named them."""
        if not self.handover.exists():
            return
        named = {h[1] for f in closed_folders(self.spool) if (h := _handing(f))}
        for entry in self.handover.iterdir():
            if entry.name not in named:
                _remove_tree(entry)

    def _release(self, folder: Path, files: list[Path] | None) -> None:
        """The spool's copy of a study the pipeline owns now. Only the instances handed are
        removed: one that arrived since (the study opened again) stays, and makes a new
        exam when it closes."""
        for f in files if files is not None else folder.glob(f"*{INSTANCE_SUFFIX}"):
            f.unlink(missing_ok=True)
        for name in (MARKER, HANDING):
            (folder / name).unlink(missing_ok=True)
        fsync_dir(folder)
        with contextlib.suppress(OSError):  # not empty: an instance arrived meanwhile
            folder.rmdir()
            fsync_dir(folder.parent)


def _handing(folder: Path) -> tuple[int, str] | None:
    """(the highest exam id before the hand-over, the linked folder's name), if handed."""
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        noted = json.loads((folder / HANDING).read_text())
        return int(noted["after_exam"]), str(noted["linked"])
    return None


def _note_handing(folder: Path, since: int, linked: str) -> None:
    """Durably, before the hand-over: any exam of this study committed after it has an id
    above `since` (ids only grow), and `linked` is the folder the pipeline is given."""
    target = folder / HANDING
    tmp = folder / f".{HANDING}.{uuid.uuid4().hex}{TEMP_SUFFIX}"  # the node's recovery drops it
    with open(tmp, "w") as f:
        json.dump({"after_exam": since, "linked": linked}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    fsync_dir(folder)


def _remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
        fsync_dir(path.parent)


async def open_node(pool: asyncpg.Pool, event: EventSpec, config: Config,
                    receiver: Receiver, storage: Storage | None = None) -> Node:
    """The node of `config` (`dicom_port` set) for the event's centers, started. Instances
    are refused (0xA700) below the free-space reserve of `storage` (the app's)."""
    assert config.dicom_port is not None
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, name FROM center WHERE in_event")
    centers = centers_of(event, rows)
    if not centers:
        LOG.warning("the DICOM node is on but no center of the event has an ae_title: "
                    "every instance sent to it will be refused")
    keys = await asyncio.to_thread(load_keys, config.data_dir)
    node = Node(pool=pool, spool=config.data_dir / SPOOL, centers=centers, receiver=receiver,
                keys=keys, ae_title=config.dicom_ae_title, host=config.host,
                port=config.dicom_port, quiet_s=config.dicom_quiet_s,
                storage=storage or _storage_of(config))
    await node.start()
    return node


def _storage_of(config: Config) -> Storage:
    from server.storage import Storage

    return Storage.from_config(config)


def reserve_check(storage: Storage) -> Callable[[int], str | None]:
    """The node's `admit`: why an instance of `size` bytes cannot be kept (the data dir's
    free-space reserve), or None."""
    def admit(size: int) -> str | None:
        refused = storage.below_reserve(size)
        if refused is None:
            return None
        LOG.warning("a DICOM instance refused (0xA700): %s", refused.message)
        return refused.message
    return admit


def centers_of(event: EventSpec, rows: Iterable[Mapping[str, Any]]) -> list[Center]:
    """The centers that may send by DICOM: those of the event with an AE title, with their
    database ids (`rows`: id and name of table center) and their questions' criteria."""
    ids = {str(r["name"]).lower(): int(r["id"]) for r in rows}
    criteria = {c.slug: (c.inclusion.criteria if c.inclusion is not None else None)
                for c in event.challenges}
    found = []
    for spec in event.centers:
        if not spec.ae_title or spec.name.lower() not in ids:
            continue
        questions = tuple((slug, criteria.get(slug)) for slug in spec.challenges
                          if slug in criteria)
        if questions:
            found.append(Center(ids[spec.name.lower()], spec.name, spec.ae_title, questions))
    return found
