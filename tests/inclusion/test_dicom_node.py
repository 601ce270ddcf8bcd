"""The DICOM node, driven by real senders: pynetdicom's SCU and DCMTK's storescu.

Files are pydicom's test data and a small CT series pydicom writes; what the node keeps is
compared byte for byte with what was sent (the dataset after the file meta, which is what a
C-STORE carries). The quiet period runs on an injected clock, so no test waits for it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.dsutils import split_dataset

from server.inclusion.dicom_node import (
    CANNOT_UNDERSTAND,
    MARKER,
    OUT_OF_RESOURCES,
    SUCCESS,
    TEMP_SUFFIX,
    ClosedStudy,
    DicomNode,
)
from server.inclusion.headers import SeriesSummary, study_label, summary_from_json
from server.inclusion.node import read_study
from tests.helpers import ROOT, wait_for
from tests.inclusion.scu import associate

CENTERS = {"CENTER_A": "center-a", "CENTER_B": "center-b"}
QUIET_S = 30.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four 16×16 axial slices of one study, one series, written by pydicom."""
    folder = tmp_path_factory.mktemp("ct-series")
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    files = []
    for i in range(4):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientID, ds.PatientName = "CT", "NODE-TEST", "Node^Test"
        ds.InstanceNumber, ds.SliceThickness = i + 1, 1.0
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.Rows = ds.Columns = 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (np.arange(256, dtype=np.uint16).reshape(16, 16) * (i + 1)).tobytes()
        path = folder / f"slice{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def pydicom_file(name: str) -> Path:
    path = get_testdata_file(name)
    assert isinstance(path, str)
    return Path(path)


def dataset_bytes(path: Path) -> bytes:
    """The encoded dataset after the file meta: what travels in a C-STORE."""
    _, offset = split_dataset(path)
    return path.read_bytes()[offset:]


def without_group_lengths(ds: Dataset) -> list[tuple[int, bytes | str]]:
    """Every element but group lengths and trailing padding, which DCMTK leaves out."""
    return [(int(e.tag), e.value if isinstance(e.value, bytes) else repr(e.value))
            for e in ds.iterall() if e.tag.element != 0 and e.tag != 0xFFFCFFFC]


def uids(path: Path) -> tuple[str, str]:
    ds = dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)


def send(port: int, files: list[Path], calling: str = "CENTER_A",
         called: str = "PODIUM") -> list[int | None]:
    """C-STORE each file as its raw bytes in one association; the statuses answered."""
    ae = AE(ae_title=calling)
    for f in files:
        ds = dcmread(f, stop_before_pixels=True)
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = associate(ae, port, called)
    assert assoc.is_established, "association not accepted"
    statuses = [assoc.send_c_store(f).get("Status") for f in files]
    assoc.release()
    return statuses


@pytest.fixture
def raw_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """pynetdicom's SCU sends a file's bytes as they are instead of re-encoding them."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)


class Node:
    def __init__(self, spool: Path) -> None:
        self.clock = Clock()
        self.closed: list[ClosedStudy] = []
        self.node = DicomNode(spool, centers=CENTERS, quiet_s=QUIET_S,
                              on_study=self.closed.append, clock=self.clock, tick_s=None)


@pytest.fixture
def node(tmp_path: Path):
    n = Node(tmp_path / "spool")
    n.node.start()
    yield n
    n.node.stop()


def spool_files(spool: Path, pattern: str) -> list[Path]:
    return sorted(p for p in spool.rglob(pattern) if p.is_file())


def test_a_series_and_pydicom_files_are_kept_as_sent_and_closed_when_quiet(
        node: Node, ct_series: list[Path], raw_send: None) -> None:
    sent = [*ct_series, pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")]
    assert send(node.node.port, sent) == [SUCCESS] * len(sent)
    spool = node.node.spool
    for f in sent:
        study, sop = uids(f)
        kept = spool / "center-a" / study / f"{sop}.dcm"
        assert dataset_bytes(kept) == dataset_bytes(f), f.name
        assert dcmread(kept).file_meta.TransferSyntaxUID == dcmread(f).file_meta.TransferSyntaxUID
    assert spool_files(spool, f"*{TEMP_SUFFIX}") == []
    assert len(node.node.open_studies()) == 3

    node.clock.now += QUIET_S - 1
    assert node.node.close_quiet() == [] and node.closed == []
    node.clock.now += 1
    closed = node.node.close_quiet()
    assert closed == node.closed and len(closed) == 3
    series = next(c for c in closed if c.study_uid == uids(ct_series[0])[0])
    assert series.center == "center-a" and len(series.files) == 4
    assert series.folder == spool / "center-a" / series.study_uid
    marker = json.loads((series.folder / MARKER).read_text())
    assert marker["center"] == "center-a" and marker["study_uid"] == series.study_uid
    assert marker["instances"] == 4
    assert marker["bytes"] == sum(f.stat().st_size for f in series.files)
    assert marker["first_received"] <= marker["last_received"]
    # The series as the headers read at each C-STORE said, for the hand-over: the files are
    # not read again (server/inclusion/node.py `read_study`).
    [summary] = [summary_from_json(s) for s in marker["series"]]
    read = SeriesSummary.from_datasets(dcmread(f) for f in series.files)
    # The same, whatever the order the slices came in (as they arrived; as the files sort).
    def by_instance(s: SeriesSummary) -> SeriesSummary:
        return dataclasses.replace(s, slices=tuple(sorted(s.slices, key=lambda x: x.instance or 0)))
    assert by_instance(summary) == by_instance(read)
    assert summary.stack == read.stack
    assert summary.files == 4 and marker["label"] == study_label(dcmread(ct_series[0]))
    assert read_study(series.folder).series == (summary,)
    assert node.node.open_studies() == []

    # A closed study that receives one more instance opens again and closes with it.
    extra = dcmread(ct_series[0])
    extra.SOPInstanceUID = extra.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    extra_path = node.node.spool.parent / "extra.dcm"
    extra.save_as(extra_path, enforce_file_format=True)
    assert send(node.node.port, [extra_path]) == [SUCCESS]
    assert not (series.folder / MARKER).exists()
    node.clock.now += QUIET_S
    [again] = node.node.close_quiet()
    assert again.study_uid == series.study_uid and len(again.files) == 5
    reopened = json.loads((series.folder / MARKER).read_text())
    # Its first four files arrived before it opened again: their headers were not kept, so
    # the marker has no series and the hand-over reads the five files.
    assert reopened["instances"] == 5 and "series" not in reopened
    assert [s.files for s in read_study(series.folder).series] == [5]


def test_storescu_sends_a_series_to_its_centers_folder(
        node: Node, ct_series: list[Path]) -> None:
    storescu = shutil.which("storescu")
    if storescu is None:
        if os.environ.get("PODIUM_REQUIRE_DICOM") == "1":
            pytest.fail("DCMTK's storescu is required (PODIUM_REQUIRE_DICOM=1) but missing")
        pytest.skip("DCMTK's storescu is not installed (Debian package dcmtk)")
    sent = [*ct_series, pydicom_file("CT_small.dcm")]
    result = subprocess.run([storescu, "-aet", "CENTER_B", "-aec", "PODIUM", "127.0.0.1",
                             str(node.node.port), *map(str, sent)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for f in ct_series:
        study, sop = uids(f)
        assert dataset_bytes(node.node.spool / "center-b" / study / f"{sop}.dcm") \
            == dataset_bytes(f), f.name
    # DCMTK re-encodes CT_small on the way, leaving out its group lengths (gggg,0000) and
    # its trailing padding (FFFC,FFFC):
    # the node keeps what DCMTK sent, every other element as in the file.
    study, sop = uids(sent[-1])
    kept = dcmread(node.node.spool / "center-b" / study / f"{sop}.dcm")
    original = dcmread(sent[-1])
    assert without_group_lengths(kept) == without_group_lengths(original)
    assert not (node.node.spool / "center-a").exists()

    unknown = subprocess.run([storescu, "-aet", "STRANGER", "-aec", "PODIUM", "127.0.0.1",
                              str(node.node.port), str(sent[0])],
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode != 0
    assert "reject" in (unknown.stdout + unknown.stderr).lower()


def test_unknown_calling_or_wrong_called_ae_title_is_rejected(node: Node) -> None:
    for calling, called in [("STRANGER", "PODIUM"), ("CENTER_A", "OTHER")]:
        assoc = AE(ae_title=calling)
        assoc.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        a = associate(assoc, node.node.port, called)
        assert a.is_rejected, (calling, called)
    echo = AE(ae_title="CENTER_A")
    echo.add_requested_context("1.2.840.10008.1.1")
    a = associate(echo, node.node.port)
    assert a.is_established
    assert a.send_c_echo().Status == SUCCESS
    a.release()
    assert spool_files(node.node.spool, "*") == []


def test_a_duplicate_is_kept_once_and_a_conflicting_or_unusable_one_not_at_all(
        node: Node, tmp_path: Path, raw_send: None) -> None:
    ct = pydicom_file("CT_small.dcm")
    study, sop = uids(ct)
    assert send(node.node.port, [ct, ct]) == [SUCCESS, SUCCESS]
    kept = node.node.spool / "center-a" / study / f"{sop}.dcm"
    before = kept.read_bytes()

    changed = dcmread(ct)
    changed.PatientName = "Someone^Else"
    changed_path = tmp_path / "changed.dcm"
    changed.save_as(changed_path)
    no_study = dcmread(ct)
    del no_study.StudyInstanceUID
    no_study.SOPInstanceUID = no_study.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    no_study_path = tmp_path / "no-study.dcm"
    no_study.save_as(no_study_path)
    assert send(node.node.port, [changed_path, no_study_path]) == [CANNOT_UNDERSTAND] * 2
    assert kept.read_bytes() == before
    assert spool_files(node.node.spool, "*.dcm") == [kept]
    assert spool_files(node.node.spool, f"*{TEMP_SUFFIX}") == []


def test_a_spool_that_cannot_be_written_answers_out_of_resources(
        node: Node, raw_send: None) -> None:
    ct = pydicom_file("CT_small.dcm")
    study, _ = uids(ct)
    blocked = node.node.spool / "center-a" / study
    blocked.parent.mkdir(parents=True)
    blocked.write_bytes(b"a file where the study's folder should be")
    assert send(node.node.port, [ct]) == [OUT_OF_RESOURCES]
    assert spool_files(node.node.spool, "*") == [blocked]
    node.clock.now += QUIET_S
    assert node.node.close_quiet() == [] and node.closed == []
    assert node.node.open_studies() == []


def test_a_study_whose_on_study_failed_is_closed_a_quiet_period_later(
        tmp_path: Path, raw_send: None) -> None:
    calls: list[ClosedStudy] = []

    def on_study(study: ClosedStudy) -> None:
        calls.append(study)
        if len(calls) == 1:
            raise RuntimeError("the database is away")

    clock = Clock()
    node = DicomNode(tmp_path / "spool", centers=CENTERS, quiet_s=QUIET_S, on_study=on_study,
                     clock=clock, tick_s=None)
    node.start()
    try:
        assert send(node.port, [pydicom_file("MR_small.dcm")]) == [SUCCESS]
        clock.now += QUIET_S
        assert node.close_quiet() == [] and len(calls) == 1
        [folder] = [p for p in (tmp_path / "spool" / "center-a").iterdir()]
        assert not (folder / MARKER).exists()
        clock.now += QUIET_S - 1
        assert node.close_quiet() == []
        clock.now += 1
        [closed] = node.close_quiet()
        assert closed == calls[1] and (folder / MARKER).exists()
    finally:
        node.stop()


def test_the_ticker_closes_a_study_sent_by_two_associations_at_once(
        tmp_path: Path, ct_series: list[Path], raw_send: None) -> None:
    clock = Clock()
    closed: list[ClosedStudy] = []
    heard = threading.Event()

    def on_study(study: ClosedStudy) -> None:
        closed.append(study)
        heard.set()

    node = DicomNode(tmp_path / "spool", centers=CENTERS, quiet_s=QUIET_S, on_study=on_study,
                     clock=clock, tick_s=0.01)
    node.start()
    try:
        halves: list[list[int | None]] = []
        senders = [threading.Thread(target=lambda part=part: halves.append(send(node.port, part)))
                   for part in (ct_series[:2], ct_series[2:])]
        for t in senders:
            t.start()
        for t in senders:
            t.join(timeout=30)
        assert halves == [[SUCCESS, SUCCESS]] * 2
        assert not heard.is_set()
        clock.now += QUIET_S
        assert heard.wait(timeout=30), "the ticker did not close the quiet study"
        [study] = closed
        assert [f.name for f in study.files] == sorted(f"{uids(f)[1]}.dcm" for f in ct_series)
        node.stop()  # joins the ticker, which writes the marker after on_study
        assert json.loads((study.folder / MARKER).read_text())["instances"] == 4
    finally:
        node.stop()


def test_recovery_removes_temporary_files_and_arms_unclosed_studies(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    ct = pydicom_file("CT_small.dcm")
    unclosed = spool / "center-a" / "1.2.3"
    closed = spool / "center-a" / "1.2.4"
    emptied = spool / "center-b" / "1.2.5"
    for folder in (unclosed, closed, emptied):
        folder.mkdir(parents=True)
    shutil.copy(ct, unclosed / "1.2.3.1.dcm")
    (unclosed / f".1.2.3.2.0a1b{TEMP_SUFFIX}").write_bytes(b"half a copy")
    shutil.copy(ct, closed / "1.2.4.1.dcm")
    (closed / MARKER).write_text("{}")
    (emptied / f".1.2.5.1.ff{TEMP_SUFFIX}").write_bytes(b"half")

    n = Node(spool)
    n.node.recover()
    assert spool_files(spool, f"*{TEMP_SUFFIX}") == []
    assert not emptied.exists()
    assert n.node.open_studies() == [("center-a", "1.2.3")]
    n.clock.now += QUIET_S
    [study] = n.node.close_quiet()
    assert study.files == (unclosed / "1.2.3.1.dcm",)


RUNNER = """
import re, sys
from pathlib import Path
from server.inclusion.dicom_node import DicomNode
node = DicomNode(Path(sys.argv[1]), centers={"CENTER_A": "center-a"}, quiet_s=3600,
                 on_study=lambda study: None, tick_s=None)
print(node.start(), flush=True)
for line in sys.stdin:  # "reset": forget the peak resident memory; "peak": it, in KiB
    if line.strip() == "reset":
        Path("/proc/self/clear_refs").write_text("5")
        print("ok", flush=True)
    else:
        status = Path("/proc/self/status").read_text()
        print(re.search(r"VmHWM:\\s*(\\d+) kB", status).group(1), flush=True)
"""


def test_kill_9_mid_association_loses_nothing_acknowledged(
        tmp_path: Path, ct_series: list[Path], raw_send: None) -> None:
    spool = tmp_path / "spool"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", RUNNER, str(spool)], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        ae = AE(ae_title="CENTER_A")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        assoc = associate(ae, port)
        assert assoc.is_established
        acknowledged = []
        for i, f in enumerate(ct_series):
            if i == 3:  # the association is still open
                os.kill(child.pid, signal.SIGKILL)
                child.wait(timeout=30)
            try:
                status = assoc.send_c_store(f).get("Status")
            except RuntimeError:  # pynetdicom already saw the association aborted
                status = None
            if status == SUCCESS:
                acknowledged.append(f)
        assert acknowledged == ct_series[:3]
        # The association's own thread notices the dead peer soon after the failed send.
        wait_for(lambda: not assoc.is_established, what="the association to end")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()

    n = Node(spool)
    n.node.start()
    try:
        assert spool_files(spool, f"*{TEMP_SUFFIX}") == []
        study = uids(ct_series[0])[0]
        folder = spool / "center-a" / study
        for f in acknowledged:
            assert dataset_bytes(folder / f"{uids(f)[1]}.dcm") == dataset_bytes(f)
        assert (folder / f"{uids(ct_series[3])[1]}.dcm").exists() is False
        assert n.node.open_studies() == [("center-a", study)]
        n.clock.now += QUIET_S
        [closed] = n.node.close_quiet()
        assert len(closed.files) == len(acknowledged)
        marker = json.loads((folder / MARKER).read_text())
        assert marker["instances"] == len(acknowledged) and "series" not in marker  # read again
    finally:
        n.node.stop()


def test_a_sender_whose_peer_resets_the_connection_has_its_socket_closed() -> None:
    """tests/inclusion/scu.py: a peer that resets the connection (here as it gets the
    association request) leaves pynetdicom's socket open unless the handler closes it."""
    listener = socket.create_server(("127.0.0.1", 0))

    def reset() -> None:
        peer, _ = listener.accept()
        with peer:
            peer.recv(65536)  # the A-ASSOCIATE-RQ
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    resetter = threading.Thread(target=reset)
    resetter.start()
    try:
        ae = AE(ae_title="CENTER_A")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = associate(ae, listener.getsockname()[1])
        assert assoc.is_aborted
        sock = assoc.dul.socket.socket if assoc.dul.socket else None
        assert sock is None or sock.fileno() == -1
    finally:
        resetter.join(timeout=30)
        listener.close()


def test_a_peer_announcing_a_huge_pdu_is_dropped_at_its_header(
        node: Node, ct_series: list[Path], raw_send: None) -> None:
    """pynetdicom would read the 1 GiB this header claims, before any association is
    accepted, into memory; the node closes the connection instead and serves the next."""
    with socket.create_connection(("127.0.0.1", node.node.port), timeout=30) as peer:
        peer.sendall(b"\x01\x00" + struct.pack(">I", 1 << 30) + bytes(4096))
        try:
            closed = peer.recv(1) == b""
        except ConnectionResetError:
            closed = True
        assert closed
    assert send(node.node.port, ct_series[:1]) == [SUCCESS]


def test_a_center_holding_its_share_of_associations_leaves_room_for_the_others(
        node: Node, ct_series: list[Path], raw_send: None) -> None:
    """A PACS that opens associations and keeps them open gets at most
    MAX_ASSOCIATIONS_PER_CENTER: the next is refused as transient (local limit exceeded,
    the sender retries later) while another center still sends; once one is released, the
    first center is admitted again."""
    from server.inclusion.dicom_node import MAX_ASSOCIATIONS_PER_CENTER

    def open_one(calling: str) -> Any:
        ae = AE(ae_title=calling)
        ae.add_requested_context("1.2.840.10008.1.1")
        return associate(ae, node.node.port)

    held = [open_one("CENTER_A") for _ in range(MAX_ASSOCIATIONS_PER_CENTER)]
    try:
        assert all(a.is_established for a in held)
        refused = open_one("CENTER_A")
        assert refused.is_rejected
        answer = refused.acceptor.primitive
        assert (answer.result, answer.result_source, answer.diagnostic) == (0x02, 0x03, 0x02)
        assert send(node.node.port, ct_series[:1], calling="CENTER_B") == [SUCCESS]
        held.pop().release()
        again = wait_for(lambda: (a if (a := open_one("CENTER_A")).is_established
                                  else None), what="CENTER_A admitted again")
        held.append(again)
    finally:
        for a in held:
            a.release()


def test_a_32_mb_instance_is_streamed_to_disk_not_held_in_memory(
        tmp_path: Path, ct_series: list[Path], raw_send: None) -> None:
    big = dcmread(ct_series[0])
    big.SOPInstanceUID = big.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    big.Rows = big.Columns = 4096
    big.PixelData = np.full((4096, 4096), 7, dtype=np.uint16).tobytes()  # 32 MiB
    big_path = tmp_path / "big.dcm"
    big.save_as(big_path, enforce_file_format=True)
    del big
    spool = tmp_path / "spool"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    with subprocess.Popen([sys.executable, "-c", RUNNER, str(spool)], env=env,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdin is not None and child.stdout is not None
        port = int(child.stdout.readline())

        def ask(command: str) -> str:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(f"{command}\n")
            child.stdin.flush()
            return child.stdout.readline().strip()

        assert ask("reset") == "ok"
        before = int(ask("peak"))
        assert send(port, [big_path]) == [SUCCESS]
        after = int(ask("peak"))
        child.stdin.close()
        child.wait(timeout=30)
    study, sop = uids(big_path)
    kept = spool / "center-a" / study / f"{sop}.dcm"
    assert dataset_bytes(kept) == dataset_bytes(big_path)
    # The node's peak resident memory (Linux's VmHWM, reset before the transfer) grows by
    # about 4 MiB; holding the instance would add its 32 MiB (measured: +37 MiB).
    assert after - before < 16 * 1024, f"the node's peak grew by {after - before} KiB"


def test_below_the_reserve_an_instance_gets_out_of_resources_and_nothing_is_kept(
        tmp_path: Path, raw_send: None) -> None:
    """The spool on a 64 MiB tmpfs filled to below the data dir's reserve (the technique of
    tests/test_storage.py), the node wired as the server wires it: 0xA700, nothing kept, no
    study opened; once space is freed the PACS's retry is kept."""
    from server.inclusion.node import reserve_check
    from server.storage import MiB, Storage
    from tests.test_storage import fill, tmpfs

    with tmpfs(tmp_path / "disk", "64m") as disk:
        clock, closed = Clock(), []
        node = DicomNode(disk / "spool", centers=CENTERS, quiet_s=QUIET_S,
                         on_study=closed.append, clock=clock, tick_s=None,
                         admit=reserve_check(Storage(disk, reserve_bytes=24 * MiB)))
        node.start()
        try:
            ct = pydicom_file("CT_small.dcm")
            filler = fill(disk, 16 * MiB)
            assert send(node.port, [ct]) == [OUT_OF_RESOURCES]
            assert spool_files(node.spool, "*.dcm") == []
            assert spool_files(node.spool, f"*{TEMP_SUFFIX}") == []
            clock.now += QUIET_S
            assert node.close_quiet() == [] and closed == []
            filler.unlink()
            assert send(node.port, [ct]) == [SUCCESS]
            clock.now += QUIET_S
            assert [c.study_uid for c in node.close_quiet()] == [uids(ct)[0]]
        finally:
            node.stop()
