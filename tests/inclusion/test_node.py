"""The DICOM node inside the server: the question a study is for (pure, on the vendor corpus
and the seed's Table 1), then real senders — DCMTK's storescu and pynetdicom — against a
running server, and a server killed with SIGKILL in the middle of an association.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE

from server.inclusion.criteria import Criteria
from server.inclusion.headers import SeriesSummary
from server.inclusion.node import choose_question, study_label
from tests.helpers import ServerProcess, run, wait_for
from tests.inclusion.scu import associate

from . import corpus

SEED_ORDER = ("sarcopenia", "nodules", "multiple-sclerosis")


def questions(criteria: Mapping[str, Criteria], *slugs: str) -> list[tuple[str, Criteria | None]]:
    return [(s, criteria[s]) for s in slugs]


@pytest.mark.parametrize(("series", "expected", "why"), [
    ("SIEMENS_L3_B30F", "sarcopenia", "meets"),           # one soft slice at L3
    ("SIEMENS_L3_TOO_THICK", "sarcopenia", "fewest"),     # one slice, 8 mm: still the 2-D one
    ("GE_ABDOMEN_SERIES", "nodules", "fewest"),           # a CT volume: the 3-D CT question
    ("SIEMENS_CHEST_B70F", "nodules", "meets"),
    ("SIEMENS_SPACE_FLAIR", "multiple-sclerosis", "meets"),
    ("SIEMENS_MPRAGE", "multiple-sclerosis", "fewest"),   # MR, not FLAIR: still the MR one
])
def test_a_study_goes_to_the_question_whose_modality_and_dimension_it_fits(
        criteria: dict[str, Criteria], summaries: dict[str, SeriesSummary], series: str,
        expected: str, why: str) -> None:
    choice = choose_question(questions(criteria, *SEED_ORDER), [summaries[series]])
    assert choice.challenge == expected
    assert why in choice.why


def test_the_choice_ignores_a_localizer_and_the_order_breaks_ties(
        criteria: dict[str, Criteria], summaries: dict[str, SeriesSummary]) -> None:
    study = [summaries["SIEMENS_TOPOGRAM"], summaries["SIEMENS_CHEST_B70F"]]
    assert choose_question(questions(criteria, *SEED_ORDER), study).challenge == "nodules"
    # Two questions the study fits alike: the one the center lists first.
    same = [("nodules", criteria["nodules"]), ("nodules-again", criteria["nodules"])]
    assert choose_question(same, study).challenge == "nodules"
    assert choose_question(same[::-1], study).challenge == "nodules-again"


def test_a_study_no_question_takes_goes_to_the_first_and_one_question_is_that_one(
        criteria: dict[str, Criteria], summaries: dict[str, SeriesSummary]) -> None:
    ct_only = questions(criteria, "nodules", "sarcopenia")
    choice = choose_question(ct_only, [summaries["SIEMENS_SPACE_FLAIR"]])
    assert choice.challenge == "nodules" and "no question takes this modality" in choice.why
    only = choose_question(questions(criteria, "sarcopenia"), [summaries["SIEMENS_CHEST_B70F"]])
    assert only.challenge == "sarcopenia" and only.why == "the center's only question"
    with pytest.raises(ValueError, match="without questions"):
        choose_question([], [summaries["SIEMENS_CHEST_B70F"]])


def test_the_label_says_date_modality_description_never_the_patient() -> None:
    ds = corpus.read_back(corpus.SIEMENS_CHEST_B70F.datasets()[0])
    ds.StudyDate, ds.StudyDescription = "20190314", "THORAX SANS INJ"
    ds.PatientName, ds.PatientID = "Dupont^Jean", "123456"
    label = study_label(ds)
    assert label == "2019-03-14 CT THORAX SANS INJ"
    assert "Dupont" not in label and "123456" not in label


# -- real senders against a running server ---------------------------------------------------

LYON, BORDEAUX = ("CHU de Lyon", "CHULYON"), ("CHU de Bordeaux", "CHUBDX")
QUIET = "0.3"  # seconds: the node's ticker looks every second, so a study closes within ~1 s
DONE = ("checked", "review", "kept", "excluded")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ct_study(folder: Path, slices: int, patient: str) -> list[Path]:
    """`slices` 16×16 axial CT slices of one new study (kernel B70f, 1 mm), by pydicom."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    folder.mkdir(parents=True)
    files = []
    for i in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.PatientBirthDate = patient, "Martin^Claire", "19480312"
        ds.StudyDate, ds.StudyDescription, ds.Modality = "20190301", "THORAX", "CT"
        ds.Manufacturer, ds.ConvolutionKernel = "SIEMENS", "B70f"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesNumber, ds.InstanceNumber, ds.SliceThickness = 3, i + 1, 1.0
        ds.ImagePositionPatient = [0.0, 0.0, -float(i)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.Rows = ds.Columns = 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (np.arange(256, dtype=np.uint16).reshape(16, 16) * (i + 1)).tobytes()
        path = folder / f"{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


@pytest.fixture
def dicom_event(example_event: Path) -> Path:
    # A volume of 4 slices is enough for the nodules question here: the series stay tiny.
    text = example_event.read_text()
    assert "min_slices = 20" in text
    example_event.write_text(text.replace("min_slices = 20", "min_slices = 4"))
    return example_event


def dicom_server(event: Path, data_dir: Path, database_url: str, port: int) -> ServerProcess:
    return ServerProcess(event, data_dir, database_url,
                         extra_args=["--scoring-workers", "0", "--dicom-port", str(port),
                                     "--dicom-quiet", QUIET])


def exams_of(server: ServerProcess, center: str) -> list[dict[str, Any]]:
    status, body = server.json("GET", "/api/v1/center/exams", server.tokens()[center])
    assert status == 200, body
    return list(body["exams"])


def settled(server: ServerProcess, center: str, count: int) -> list[dict[str, Any]]:
    return wait_for(lambda: (lambda e: e if len(e) == count and all(
        x["stage"] in DONE for x in e) else None)(exams_of(server, center)),
        what=f"{count} exam(s) of {center} checked")


def stored(database_url: str, exam_id: int) -> asyncpg.Record:
    async def read() -> asyncpg.Record:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchrow("SELECT * FROM exam WHERE id = $1", exam_id)
        finally:
            await conn.close()
    return run(read())


def pynetdicom_send(port: int, files: list[Path], calling: str) -> list[int | None]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = associate(ae, port)
    assert assoc.is_established
    statuses = [assoc.send_c_store(f).get("Status") for f in files]
    assoc.release()
    return statuses


def storescu() -> str:
    found = shutil.which("storescu")
    if found is None:
        if os.environ.get("PODIUM_REQUIRE_DICOM") == "1":
            pytest.fail("DCMTK's storescu is required (PODIUM_REQUIRE_DICOM=1) but missing")
        pytest.skip("DCMTK's storescu is not installed (Debian package dcmtk)")
    return found


def test_an_instance_sent_after_its_study_closed_gives_an_exam_that_replaces_the_first(
        dicom_event: Path, database_url: str, tmp_path: Path) -> None:
    """docs/inclusion.md, "Grouping and the quiet period", with pynetdicom against a running
    server: four slices of a CT volume become an exam of the 3-D question; a fifth slice of the
    same study, sent after the quiet period, becomes a new exam that replaces it — of the same
    question, though one slice alone would be taken for the 2-D one."""
    data = tmp_path / "data"
    port = free_port()
    server = dicom_server(dicom_event, data, database_url, port).start()
    try:
        slices = ct_study(tmp_path / "late", 5, "LYON-0123")
        assert pynetdicom_send(port, slices[:4], LYON[1]) == [0x0000] * 4
        [first] = settled(server, LYON[0], 1)
        assert (first["challenge"], first["files"], first["replaces"]) == ("nodules-3d", 4, None)

        assert pynetdicom_send(port, slices[4:], LYON[1]) == [0x0000]
        exams = {e["id"]: e for e in settled(server, LYON[0], 2)}
        [late] = [e for e in exams.values() if e["id"] != first["id"]]
        assert (late["challenge"], late["channel"], late["files"], late["replaces"]) == (
            "nodules-3d", "dicom", 1, first["id"])
        assert exams[first["id"]]["exclusion"] == "resent"
        wait_for(lambda: not [p for p in (data / "dicom-spool").rglob("*") if p.is_file()],
                 what="the spool emptied")
    finally:
        server.stop()


def test_the_node_runs_in_its_own_process_started_again_if_it_dies_and_gone_with_the_server(
        dicom_event: Path, database_url: str, tmp_path: Path) -> None:
    """docs/inclusion.md, "The DICOM node": its association threads do not share the server's
    interpreter; killed, it is started again on the same port; the server killed, it dies."""
    port = free_port()
    server = dicom_server(dicom_event, tmp_path / "data", database_url, port).start()
    try:
        first = server.dicom_node()
        assert first is not None
        first.kill()
        first.wait(30)
        again = wait_for(server.dicom_node, what="the DICOM node started again")
        assert again.pid != first.pid
        slices = ct_study(tmp_path / "after", 4, "LYON-0777")
        listening = f"DICOM node PODIUM listening on 127.0.0.1:{port}"
        wait_for(lambda: server.stderr().count(listening) == 2, what="the node listening again")
        assert pynetdicom_send(port, slices, LYON[1]) == [0x0000] * 4
        [exam] = settled(server, LYON[0], 1)
        assert (exam["challenge"], exam["files"]) == ("nodules-3d", 4)
        assert "the DICOM node's process ended" in server.stderr()
        server.stop(signal.SIGKILL)
        again.wait(30)  # the parent-death signal: no node left listening without its server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()


@pytest.mark.slow  # a server process killed twice with SIGKILL and restarted
def test_studies_sent_by_storescu_and_pynetdicom_survive_kill_9_and_are_processed_once(
        dicom_event: Path, database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    server = dicom_server(dicom_event, data, database_url, port).start()
    try:
        assert any(f"DICOM node PODIUM at 127.0.0.1:{port}" in line for line in server.banner)
        volume = ct_study(tmp_path / "volume", 4, "LYON-0042")
        sent = subprocess.run([storescu(), "-aet", LYON[1], "-aec", "PODIUM", "127.0.0.1",
                               str(port), *map(str, volume)],
                              capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        one_slice = ct_study(tmp_path / "slice", 1, "BDX-0007")
        assert pynetdicom_send(port, one_slice, BORDEAUX[1]) == [0x0000]
        stranger = AE(ae_title="STRANGER")
        stranger.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        assert associate(stranger, port).is_rejected
        settled(server, BORDEAUX[0], 1)

        # Another study of Lyon: the server is killed while its association is open.
        killed = ct_study(tmp_path / "killed", 5, "LYON-0099")
        ae = AE(ae_title=LYON[1])
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        assoc = associate(ae, port)
        assert assoc.is_established
        acknowledged = []
        for i, f in enumerate(killed):
            if i == 4:  # the association is still open, the study not closed
                server.stop(signal.SIGKILL)
            try:
                status = assoc.send_c_store(f).get("Status")
            except RuntimeError:  # pynetdicom already saw the association aborted
                status = None
            if status == 0x0000:
                acknowledged.append(f)
        assert acknowledged == killed[:4]
        assoc.abort()

        # Restarted: each study is one exam, with every instance acknowledged and no other.
        server.start()
        exams = sorted(settled(server, LYON[0], 2), key=lambda e: e["id"])
        assert [(e["challenge"], e["channel"], e["files"], e["replaces"]) for e in exams] == \
            [("nodules-3d", "dicom", 4, None)] * 2
        [bordeaux] = exams_of(server, BORDEAUX[0])
        # The volume goes to the 3-D CT question, the single slice to the 2-D one.
        assert (bordeaux["challenge"], bordeaux["files"]) == ("sarcopenia", 1)
        lyon, second = exams  # storescu's, then the one the kill interrupted
        assert lyon["label"] == "2019-03-01 CT THORAX"
        assert "deidentified" in [t["kind"] for t in lyon["timeline"]]
        row = stored(database_url, lyon["id"])
        assert row["pseudonym"].startswith("PSEUDO-")
        kept = sorted(Path(row["folder"]).rglob("*.dcm"))
        assert len(kept) == 4
        original = dcmread(volume[0], stop_before_pixels=True)
        for path in kept:
            ds = dcmread(path, stop_before_pixels=True)
            assert ds.PatientID == row["pseudonym"] and "Martin" not in str(ds.PatientName)
            assert ds.StudyInstanceUID == row["study_uid"] != original.StudyInstanceUID
            assert ds.get("PatientBirthDate", "") in ("", None)
        assert [p for p in (data / "dicom-spool").rglob("*") if p.is_file()] == []
        assert not any((data / "dicom-handover").iterdir())

        # A crash after an exam was committed, before the spool's copy was removed: the study's
        # folder is there, marked closed and being handed. At the next start it is known as that
        # exam and removed; no second exam is made.
        server.stop(signal.SIGKILL)
        center_id = stored(database_url, second["id"])["center_id"]
        folder = data / "dicom-spool" / str(center_id) / str(
            dcmread(killed[0], stop_before_pixels=True).StudyInstanceUID)
        folder.mkdir(parents=True)
        for f in acknowledged:
            shutil.copyfile(f, folder / f"{dcmread(f, stop_before_pixels=True).SOPInstanceUID}.dcm")
        (folder / "study.json").write_text(json.dumps({"instances": 4}))
        (folder / "handing.json").write_text(json.dumps(
            {"after_exam": second["id"] - 1, "linked": "taken-by-the-pipeline"}))
        # And one whose exam was committed but whose linked folder the pipeline never took
        # (still there): handed again, the new exam replacing that one.
        untaken = data / "dicom-spool" / str(center_id) / str(original.StudyInstanceUID)
        untaken.mkdir()
        for f in volume:
            shutil.copyfile(f, untaken / f"{dcmread(f, stop_before_pixels=True).SOPInstanceUID}"
                                         ".dcm")
        (untaken / "study.json").write_text(json.dumps({"instances": 4}))
        (untaken / "handing.json").write_text(json.dumps(
            {"after_exam": lyon["id"] - 1, "linked": "never-taken"}))
        (data / "dicom-handover" / "never-taken").mkdir()
        server.start()
        wait_for(lambda: not folder.exists() and not untaken.exists(),
                 what="the spool's copies to be removed")
        after = {e["id"]: e for e in settled(server, LYON[0], 3)}
        assert after[second["id"]]["files"] == 4 and after[second["id"]]["replaces"] is None
        assert after[lyon["id"]]["exclusion"] == "resent"
        [new] = [e for e in after.values() if e["id"] not in (lyon["id"], second["id"])]
        assert (new["replaces"], new["files"]) == (lyon["id"], 4)
        assert not (data / "dicom-handover" / "never-taken").exists()
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()
    log = server.stderr()
    refused = [line for line in log.splitlines() if "refused" in line and "STRANGER" in line]
    assert len(refused) == 1, log
    assert "no center's" in refused[0]
