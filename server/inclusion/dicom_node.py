"""The DICOM node: a Storage SCP the inclusion centers' PACS (or any `storescu`) send exams to.

Each center is known by its calling AE title; an association from any other title, or to
another called title than the node's, is refused. Every C-STORE is streamed to disk by
pynetdicom (`STORE_RECV_CHUNKED_DATASET`: the dataset is never decoded nor held whole in
memory), copied into the spool as a temporary file, fsynced, linked to its final name
`spool/<center>/<StudyInstanceUID>/<SOPInstanceUID>.dcm` and the directory fsynced; only
then is 0x0000 answered. A study is closed when none of its instances arrived for `quiet_s`
seconds: `on_study` hears of it, then a `study.json` marker is written durably. On start the
spool is recovered: temporary files (never acknowledged) are removed, and studies without a
marker are armed again, so a restart after a crash loses nothing that was acknowledged.

This is a library: no database, no server. docs/inclusion.md "The DICOM node" is the
contract.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from server.durable import fsync_dir
from server.inclusion.headers import StudyBuilder, study_label, summary_to_json

LOG = logging.getLogger(__name__)

MARKER = "study.json"
TEMP_SUFFIX = ".tmp"
INSTANCE_SUFFIX = ".dcm"

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # the disk failed us: the sender may try again later
CANNOT_UNDERSTAND = 0xC000  # the instance itself is unusable (no UIDs, not DICOM, a conflict)

# The largest PDU the node reads. pynetdicom reads whatever length a PDU's header claims, and
# before any association is accepted: a peer announcing 4 GB and sending would grow the node's
# memory without bound. The node announces pynetdicom's 16 kB maximum for P-DATA; an
# association request of a few hundred presentation contexts is tens of kB.
MAX_PDU_READ = 1 << 20

# Associations at once: in all (pynetdicom's default is 10, fewer than the seed's 24 centers),
# and per center, so that a PACS opening many in parallel — or one that never lets go — leaves
# room for the others. Beyond either, a request is refused as transient ("local limit
# exceeded"): the sender tries again later.
MAX_ASSOCIATIONS = 64
MAX_ASSOCIATIONS_PER_CENTER = 8

# A DICOM UID: digits and dots, at most 64 characters (PS3.5 §9). Checked before a UID
# becomes a path, so nothing a sender writes can leave the spool.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class ClosedStudy:
    """A study that was quiet for the quiet period: its folder and its instances, sorted."""

    center: str
    study_uid: str
    folder: Path
    files: tuple[Path, ...]


@dataclass
class _Open:
    """A study receiving instances: when the last one arrived, how many are in flight, and
    the series summaries of those kept since it opened (read from the header each C-STORE
    reads anyway: the hand-over does not read the files again). `study` None: a header it
    could not summarise."""

    last: float
    in_flight: int = 0
    study: StudyBuilder | None = field(default_factory=StudyBuilder)
    names: set[str] = field(default_factory=set)
    label: str = ""

    def add(self, name: str, header: Any) -> None:
        if self.study is None:
            return
        try:
            self.study.add(header)
        except Exception:  # a value the summary cannot read: the hand-over reads the files
            LOG.warning("instance %s: header not summarised; the study's files will be read "
                        "again when it closes", name, exc_info=True)
            self.study = None
            return
        self.names.add(name)
        if not self.label:
            self.label = study_label(header)


class StoreRefused(Exception):
    """An instance the node will not keep, with the C-STORE status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _make_dirs(path: Path) -> None:
    """Create `path` and its missing parents, each new entry made durable in its parent."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        fsync_dir(d.parent)


def _valid_uid(value: object) -> str | None:
    text = str(value).strip().rstrip("\x00") if value is not None else ""
    return text if len(text) <= 64 and _UID.match(text) else None


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def closed_folders(spool: Path) -> list[Path]:
    """The folders of the studies closed (marker written) and still in `spool`: what another
    process sees (a marker is written whole, by a rename, after the study's files)."""
    if not spool.exists():
        return []
    return sorted(m.parent for m in spool.glob(f"*/*/{MARKER}"))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _cap_reads(event: evt.Event) -> None:
    """EVT_CONN_OPEN, before the association's first read: a PDU whose header claims more
    than MAX_PDU_READ bytes drops the connection instead of being read (pynetdicom reads a
    PDU's body in one call, after its 6-byte header)."""
    transport = event.assoc.dul.socket
    if transport is None:
        return
    read = transport.recv
    info = event.assoc.requestor.address_info
    peer = f"{info.address}:{info.port}" if info is not None else "?"

    def recv(nr_bytes: int) -> bytearray:
        if nr_bytes > MAX_PDU_READ:
            LOG.warning("DICOM peer %s announced a PDU of %d bytes, over the %d the node "
                        "reads: connection dropped", peer, nr_bytes, MAX_PDU_READ)
            raise OSError(f"a PDU of {nr_bytes} bytes announced")
        return read(nr_bytes)

    transport.recv = recv  # type: ignore[method-assign]  # this connection's only


def _calling(assoc: Any) -> str:
    """An acceptor's calling AE title, from its request before pynetdicom has negotiated."""
    primitive = assoc.requestor.primitive
    title = primitive.calling_ae_title if primitive is not None else assoc.requestor.ae_title
    return str(title or "").strip()


class DicomNode:
    """A Storage SCP writing each center's studies into `spool`, closing them when quiet.

    `centers` maps a calling AE title to the center's name (its folder in the spool).
    `clock` (monotonic seconds) and `close_quiet(now)` make the quiet period testable
    without waiting; `tick_s` is how often a background ticker calls `close_quiet` (None:
    never, the caller does). `on_study` runs in the ticker's thread (or the caller's) with
    the node's lock held: it should hand the study off quickly.
    """

    def __init__(self, spool: Path, *, centers: Mapping[str, str], quiet_s: float,
                 on_study: Callable[[ClosedStudy], None], ae_title: str = "PODIUM",
                 clock: Callable[[], float] = time.monotonic,
                 tick_s: float | None = 1.0,
                 admit: Callable[[int], str | None] | None = None) -> None:
        if not 0 < len(ae_title) <= 16:
            raise ValueError(f"AE title {ae_title!r}: 1 to 16 characters")
        for ae, center in centers.items():
            if not 0 < len(ae) <= 16:
                raise ValueError(f"calling AE title {ae!r}: 1 to 16 characters")
            if center in ("", ".", "..") or "/" in center or "\\" in center \
                    or center.startswith("."):
                raise ValueError(f"center {center!r} (AE title {ae!r}) cannot name a folder")
        self.spool = Path(spool)
        self.ae_title = ae_title
        self.centers = dict(centers)
        self.quiet_s = quiet_s
        self.on_study = on_study
        self.clock = clock
        self.tick_s = tick_s
        # `admit(size)`: why an instance of `size` bytes cannot be kept now (the data dir's
        # free-space reserve, server/storage.py), or None. A refusal is 0xA700.
        self.admit = admit
        self._lock = threading.RLock()
        self._admitting = threading.Lock()
        self._open: dict[tuple[str, str], _Open] = {}
        self._server: Any = None
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- life --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the node listens on (after `start`)."""
        if self._server is None:
            raise RuntimeError("the DICOM node is not started")
        return int(self._server.server_address[1])

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Recover the spool, then listen (port 0: a free port); return the port."""
        if self._server is not None:
            raise RuntimeError("the DICOM node is already started")
        _make_dirs(self.spool)
        self.recover()
        # Process-wide: received datasets are written to a temporary file as they arrive
        # instead of being decoded in memory (pynetdicom writes it, then removes it).
        _config.STORE_RECV_CHUNKED_DATASET = True
        ae = AE(ae_title=self.ae_title)
        for cx in StoragePresentationContexts:
            assert cx.abstract_syntax is not None
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.require_calling_aet = list(self.centers)
        ae.require_called_aet = True
        ae.maximum_associations = MAX_ASSOCIATIONS
        self._server = ae.start_server((host, port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, self._on_store),
                                                     (evt.EVT_REQUESTED, self._on_requested),
                                                     (evt.EVT_REJECTED, self._on_rejected),
                                                     (evt.EVT_CONN_OPEN, _cap_reads)])
        self._stopping.clear()
        if self.tick_s is not None:
            self._ticker = threading.Thread(target=self._tick, name="dicom-node-ticker",
                                            daemon=True)
            self._ticker.start()
        LOG.info("DICOM node %s listening on %s:%d", self.ae_title, host, self.port)
        return self.port

    def stop(self) -> None:
        """Stop listening (open associations are ended); open studies stay in the spool
        without a marker and are armed again at the next start."""
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._server is not None:
            server, self._server = self._server, None
            server.shutdown()  # stop accepting
            for assoc in server.active_associations:  # a C-STORE not answered is not kept
                assoc.abort()

    def _tick(self) -> None:
        assert self.tick_s is not None
        while not self._stopping.wait(self.tick_s):
            try:
                self.close_quiet()
            except Exception:
                LOG.exception("closing quiet studies failed; trying again at the next tick")

    # -- recovery -----------------------------------------------------------------------

    def recover(self) -> None:
        """Remove temporary files (never acknowledged) and arm every study without a marker,
        as if its last instance had just arrived."""
        now = self.clock()
        for center_dir in sorted(p for p in self.spool.iterdir() if p.is_dir()):
            for folder in sorted(p for p in center_dir.iterdir() if p.is_dir()):
                temps = list(folder.glob(f"*{TEMP_SUFFIX}"))  # pathlib's * matches dot files
                for tmp in temps:
                    tmp.unlink(missing_ok=True)
                if temps:
                    fsync_dir(folder)
                if not any(folder.glob(f"*{INSTANCE_SUFFIX}")):
                    if not any(folder.iterdir()):
                        folder.rmdir()
                        fsync_dir(center_dir)
                    continue
                if not (folder / MARKER).exists():
                    with self._lock:
                        self._open[(center_dir.name, folder.name)] = _Open(last=now)
                    LOG.info("study %s of %s was not closed: armed again", folder.name,
                             center_dir.name)

    def closed_folders(self) -> list[Path]:
        """The folders of the studies closed (marker written) and still in the spool. Taken
        under the node's lock, so a study whose `on_study` has just run is seen with its
        marker."""
        with self._lock:
            return closed_folders(self.spool)

    def open_studies(self) -> list[tuple[str, str]]:
        """(center, study UID) of the studies not closed yet."""
        with self._lock:
            return sorted(self._open)

    def _on_requested(self, event: Any) -> None:
        """EVT_REQUESTED, before pynetdicom negotiates: a center already holding
        MAX_ASSOCIATIONS_PER_CENTER associations is refused, as transient, so that it cannot
        take every slot from the others. (A request with an unknown calling AE title is left
        to pynetdicom, which refuses it.)"""
        assoc = event.assoc
        calling = _calling(assoc)
        server = self._server
        if calling not in self.centers or server is None:
            return
        with self._admitting:
            held = sum(1 for other in server.active_associations
                       if other is not assoc and not other.is_rejected
                       and _calling(other) == calling)
            if held < MAX_ASSOCIATIONS_PER_CENTER:
                return
            assoc.acse.send_reject(0x02, 0x03, 0x02)  # transient; local limit exceeded
        requestor = assoc.requestor
        LOG.warning("DICOM association from %s:%s (%s) refused for now: that center has %d "
                    "open already, the most it may hold at once; its PACS tries again later",
                    requestor.address, requestor.port, calling, held)
        assoc.kill()  # as pynetdicom's own refusals: its DUL sends the answer, then ends

    def _on_rejected(self, event: Any) -> None:
        # One line per refused association, saying what to fix (pynetdicom's own lines are
        # at INFO, and many per association).
        requestor = event.assoc.requestor
        calling = str(requestor.ae_title).strip()
        peer = f"{requestor.address}:{requestor.port}"
        answer = event.assoc.acceptor.primitive
        if answer is not None and (answer.result_source, answer.diagnostic) == (0x03, 0x02):
            LOG.warning("DICOM association from %s (%s) refused for now: the node has %d "
                        "associations open, its limit; the sender tries again later", peer,
                        calling, MAX_ASSOCIATIONS)
        elif calling not in self.centers:
            LOG.warning("DICOM association from %s refused: the calling AE title %r is no "
                        "center's (give it as the ae_title of its [[centers]] entry)", peer,
                        calling)
        else:
            LOG.warning("DICOM association from %s (%s) refused: it called an AE title other "
                        "than %s", peer, calling, self.ae_title)

    # -- C-STORE ------------------------------------------------------------------------

    def _on_store(self, event: Any) -> int:
        try:
            return self._store(event)
        except StoreRefused as refused:
            LOG.warning("C-STORE refused (0x%04X): %s", refused.status, refused)
            return refused.status
        except OSError:
            LOG.exception("C-STORE failed writing to the spool")
            return OUT_OF_RESOURCES
        except Exception:
            LOG.exception("C-STORE failed")
            return CANNOT_UNDERSTAND

    def _store(self, event: Any) -> int:
        calling = str(event.assoc.requestor.ae_title).strip()
        center = self.centers.get(calling)
        if center is None:  # the association is refused first; never trust that alone
            raise StoreRefused(CANNOT_UNDERSTAND, f"unknown calling AE title {calling!r}")
        received: Path = event.dataset_path
        try:
            header = dcmread(received, stop_before_pixels=True, defer_size="4 KB")
        except (InvalidDicomError, ValueError, EOFError) as exc:
            raise StoreRefused(CANNOT_UNDERSTAND, f"{calling}: not a readable dataset "
                                                  f"({exc})") from exc
        study = _valid_uid(header.get("StudyInstanceUID"))
        sop = _valid_uid(header.get("SOPInstanceUID"))
        if study is None or sop is None:
            raise StoreRefused(CANNOT_UNDERSTAND, f"{calling}: the instance has no valid "
                                                  "Study or SOP Instance UID")
        affected = _valid_uid(event.request.AffectedSOPInstanceUID)
        if affected != sop:
            raise StoreRefused(CANNOT_UNDERSTAND, f"{calling}: SOP Instance UID {sop} is "
                                                  f"not the request's {affected}")
        if self.admit is not None:
            refusal = self.admit(received.stat().st_size)
            if refusal is not None:  # nothing kept: the sender tries again later
                raise StoreRefused(OUT_OF_RESOURCES, f"{calling}: {refusal}")
        key = (center, study)
        folder = self.spool / center / study
        with self._lock:
            state = self._open.setdefault(key, _Open(last=self.clock()))
            state.in_flight += 1
            _make_dirs(folder)
            marker = folder / MARKER
            if marker.exists():  # a closed study receives more: it is open again
                marker.unlink()
                fsync_dir(folder)
        try:
            name = f"{sop}{INSTANCE_SUFFIX}"
            if self._keep(received, folder, sop):
                with self._lock:
                    state.add(name, header)
            return SUCCESS
        finally:
            with self._lock:
                state.in_flight -= 1
                state.last = self.clock()

    def _keep(self, received: Path, folder: Path, sop: str) -> bool:
        """The instance made durable as `folder/<sop>.dcm`: True, or False when that very
        instance was kept already."""
        target = folder / f"{sop}{INSTANCE_SUFFIX}"
        tmp = folder / f".{sop}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
        try:
            try:
                # pynetdicom's own copy, linked rather than copied when it is on the same
                # filesystem (it removes its name after the C-STORE; the inode stays ours).
                os.link(received, tmp)
                with open(tmp, "rb") as kept:
                    os.fsync(kept.fileno())
            except OSError:
                tmp.unlink(missing_ok=True)
                with open(received, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, _COPY_CHUNK)
                    dst.flush()
                    os.fsync(dst.fileno())
            new = True
            try:
                os.link(tmp, target)  # atomic, and never replaces a kept instance
            except FileExistsError:
                new = False
                # The same instance again is kept once (and made durable below, in case
                # another association linked it a moment ago); other content is refused.
                if not filecmp.cmp(tmp, target, shallow=False):
                    raise StoreRefused(
                        CANNOT_UNDERSTAND,
                        f"SOP Instance {sop} was already received with other content") from None
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(folder)
        return new

    # -- quiet period -------------------------------------------------------------------

    def close_quiet(self, now: float | None = None) -> list[ClosedStudy]:
        """Close every study none of whose instances arrived for the quiet period (by the
        node's clock, or at `now`): `on_study`, then its marker. A study whose `on_study`
        raised is kept open and tried again a quiet period later."""
        now = self.clock() if now is None else now
        closed = []
        with self._lock:
            quiet = [key for key, state in self._open.items()
                     if state.in_flight == 0 and now - state.last >= self.quiet_s]
            for key in sorted(quiet):
                center, study = key
                folder = self.spool / center / study
                files = tuple(sorted(folder.glob(f"*{INSTANCE_SUFFIX}")))
                if not files:  # every instance of it was refused: nothing to close
                    del self._open[key]
                    with contextlib.suppress(OSError):
                        folder.rmdir()
                    continue
                done = ClosedStudy(center, study, folder, files)
                try:
                    self.on_study(done)
                except Exception:
                    LOG.exception("on_study failed for study %s of %s", study, center)
                    self._open[key].last = now
                    continue
                self._write_marker(done, self._open[key])
                del self._open[key]
                closed.append(done)
        return closed

    def _write_marker(self, study: ClosedStudy, state: _Open) -> None:
        stats = [f.stat() for f in study.files]
        mtimes = [s.st_mtime for s in stats]
        marker = {
            "center": study.center,
            "study_uid": study.study_uid,
            "instances": len(study.files),
            "bytes": sum(s.st_size for s in stats),
            "first_received": _iso(min(mtimes)) if mtimes else None,
            "last_received": _iso(max(mtimes)) if mtimes else None,
            "closed": _iso(time.time()),
        }
        # The series, when every instance in the folder was summarised as it arrived (not
        # after a restart, nor when the study opened again with files of before).
        if state.study is not None and state.names == {f.name for f in study.files}:
            marker["label"] = state.label
            marker["series"] = [summary_to_json(s) for s in state.study.series()]
        _write_durably(study.folder / MARKER, (json.dumps(marker, indent=1) + "\n").encode())
