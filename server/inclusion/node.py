"""The DICOM node run by `podium serve --dicom-port N`: the library Storage SCP
(server/inclusion/dicom_node.py) wired to the event's centers and to the intake pipeline.

Each center with an `ae_title` in the event file may send; its studies are spooled under
DATA_DIR/dicom-spool/<center id>/<StudyInstanceUID>/ and closed after the quiet period. A closed
study (its `study.json` marker written) is handed to the event loop, which picks the question
it is for, then calls `Intake.receive(channel="dicom", ...)`: the pipeline creates the exam row
and then takes the folder. Hand-over is driven by the spool alone — a marked folder still in
the spool has not been taken — so the same sweep serves a study just closed and one left by a
crash: a crash before the exam row exists hands it again at the next start; one after the row
but before the folder was taken finds that row (same center, same study) and hands the folder
to it instead of creating a second exam (`Receiver.resume`).

docs/inclusion.md "The DICOM node" is the contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pynetdicom import evt

from server.inclusion.check import check_series, check_study
from server.inclusion.criteria import Criteria
from server.inclusion.dicom_node import INSTANCE_SUFFIX, MARKER, ClosedStudy, DicomNode
from server.inclusion.headers import SeriesSummary, study_series

LOG = logging.getLogger(__name__)

SPOOL = "dicom-spool"
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
    """The study's label and series summaries, its files' headers read one at a time."""
    files = sorted(folder.glob(f"*{INSTANCE_SUFFIX}"))
    label = ""
    first = next(iter(_headers(files[:1])), None)
    if first is not None:
        label = study_label(first)
    return Study(folder.name, label or f"study of {len(files)} instances",
                 tuple(study_series(_headers(files))))


def study_label(ds: Any) -> str:
    """What the center calls the study: its date, modality and description as its PACS sent
    them. Never the patient's name or ID."""
    raw = str(ds.get("StudyDate", "") or "").strip()
    date = f"{raw[:4]}-{raw[4:6]}-{raw[6:8]}" if len(raw) == 8 and raw.isdigit() else raw
    parts = [date, str(ds.get("Modality", "") or "").strip(),
             str(ds.get("StudyDescription", "") or "").strip()]
    return " ".join(p for p in parts if p)[:200]


def source_key(secret: bytes, center_id: int, study_uid: str) -> str:
    """HMAC of the center and the original StudyInstanceUID under the event secret: the same
    study sent again is known without its UID being kept."""
    message = f"dicom-study\x00{center_id}\x00{study_uid}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


# -- the node in the server -----------------------------------------------------------------


class Node:
    """The DICOM node of one server process: listens while the app runs, hands each closed
    study to `receiver` on the app's event loop."""

    def __init__(self, *, spool: Path, centers: Sequence[Center], receiver: Receiver,
                 secret: bytes, ae_title: str, host: str, port: int, quiet_s: float,
                 resume: Callable[[int, str, Path], Any] | None = None) -> None:
        self.spool = spool
        self.by_id = {c.id: c for c in centers}
        self.receiver = receiver
        self.secret = secret
        self.host, self.port = host, port
        self.resume = resume
        self.library = DicomNode(spool, centers={c.ae_title: str(c.id) for c in centers},
                                 quiet_s=quiet_s, on_study=self._on_study, ae_title=ae_title)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self._handing: set[Path] = set()
        self._handovers: set[asyncio.Task[None]] = set()
        self.handed: list[tuple[str, int]] = []  # (study folder name, exam id), for tests

    async def start(self) -> int:
        """Recover the spool, listen, and hand every closed study still in the spool."""
        self._loop = asyncio.get_running_loop()
        # pynetdicom says a few lines at INFO for every association; ours say what matters.
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        port = await asyncio.to_thread(self.library.start, self.host, self.port)
        self.library._server.bind(evt.EVT_REJECTED, self._on_rejected)  # noqa: SLF001
        self._sweeper = asyncio.create_task(self._sweep(), name="dicom-node-sweeper")
        return port

    async def stop(self) -> None:
        await asyncio.to_thread(self.library.stop)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        # A hand-over under way finishes (the exam row and the folder move are short); one
        # cancelled here is handed again at the next start.
        if self._handovers:
            await asyncio.wait(self._handovers, timeout=30)

    # -- from the node's threads ----------------------------------------------------------

    def _on_rejected(self, event: Any) -> None:
        calling = str(event.assoc.requestor.ae_title).strip()
        peer = f"{event.assoc.requestor.address}:{event.assoc.requestor.port}"
        if calling not in self.library.centers:
            LOG.warning("DICOM association from %s refused: calling AE title %r is no "
                        "center's (add it as ae_title of its [[centers]] entry)", peer, calling)
        else:
            LOG.warning("DICOM association from %s (%s) refused: it called another AE title "
                        "than %s", peer, calling, self.library.ae_title)

    def _on_study(self, study: ClosedStudy) -> None:
        # Runs in the node's ticker thread, its lock held: only wake the sweeper, which
        # finds the study by its marker once the node has written it.
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._wake.set)

    # -- on the event loop ----------------------------------------------------------------

    def closed_folders(self) -> list[Path]:
        """Study folders with their marker still in the spool: closed, not yet taken."""
        if not self.spool.exists():
            return []
        return sorted(m.parent for m in self.spool.glob(f"*/*/{MARKER}"))

    async def _sweep(self) -> None:
        while True:
            for folder in await asyncio.to_thread(self.closed_folders):
                if folder not in self._handing:
                    self._handing.add(folder)
                    task = asyncio.create_task(self._hand(folder), name="dicom-hand-over")
                    self._handovers.add(task)
                    task.add_done_callback(self._handovers.discard)
            self._wake.clear()
            # Woken by a study closed; otherwise look again now and then (a hand-over that
            # failed, say with the database away, is tried again).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(self.library.quiet_s, 5))

    async def _hand(self, folder: Path) -> None:
        try:
            center = self.by_id.get(int(folder.parent.name))
            if center is None:
                LOG.warning("study %s: its center %s is no longer in the event; left in the "
                            "spool", folder.name, folder.parent.name)
                return
            study = await asyncio.to_thread(read_study, folder)
            choice = choose_question(center.questions, study.series)
            key = source_key(self.secret, center.id, study.study_uid)
            exam_id = await self.receiver.receive(
                center_id=center.id, challenge=choice.challenge, channel=CHANNEL,
                label=study.label, source_key=key, folder=folder)
            self.handed.append((folder.name, exam_id))
            LOG.info("study from %s (%d instances) is exam %d of %s: %s", center.name,
                     sum(s.files for s in study.series), exam_id, choice.challenge, choice.why)
        except Exception:
            LOG.exception("study %s could not be handed to the pipeline; tried again later",
                          folder)
        finally:
            self._handing.discard(folder)


def centers_of(event: Any, rows: Iterable[Mapping[str, Any]]) -> list[Center]:
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
