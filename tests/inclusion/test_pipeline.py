"""server/inclusion/pipeline.py on a real server and PostgreSQL: studies written by pydicom
(with a nibabel mask, a highdicom SEG, nodule positions) go through `Intake.receive`; every kept
file is de-identified, UIDs replaced consistently, the findings recorded, the review viewer reads
the folder; a burned-in file excludes the exam; a restart takes up what was left."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from server.inclusion.pipeline import EXAMS, INCOMING, WORKER_NICENESS, Intake
from server.inclusion.viewer import load_exam
from server.keys import CONFIG, EVENT, INTAKE, POOL
from server.store import exams as store
from tests.helpers import EXAMPLE_DIR, AppServer, new_database

PATIENT_ID, PATIENT_NAME = "IPP-0042-LYON", "DUPONT^MARIE"
SIZE = 16


@dataclass
class Study:
    folder: Path
    study_uid: str
    sop_uids: list[str]
    datasets: list[Dataset]


def write_study(folder: Path, *, slices: int = 1, thickness: float = 5.0,
                kernel: str = "B30f", burned_in: int | None = None) -> Study:
    """A CT study of `slices` 16×16 slices with the identifying attributes a PACS exports."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(slices)
    out = Study(folder, study, [], [])
    for k in range(slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame
        ds.PatientID, ds.PatientName = PATIENT_ID, PATIENT_NAME
        ds.PatientBirthDate, ds.PatientSex = "19610412", "F"
        ds.InstitutionName = "CHU de Lyon, Hopital Edouard Herriot"
        ds.ReferringPhysicianName = "MARTIN^PAUL"
        ds.AccessionNumber = "ACC778812"
        ds.StudyDate = ds.SeriesDate = "20190314"
        ds.StudyTime = "101500"
        ds.StudyID = "EXAM-778812"
        ds.Modality, ds.Manufacturer = "CT", "SIEMENS"
        ds.ManufacturerModelName = "SOMATOM Definition AS"
        ds.SeriesNumber, ds.InstanceNumber = 2, k + 1
        ds.SeriesDescription = f"Abdomen {thickness:g} {kernel}"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ConvolutionKernel = kernel
        ds.SliceThickness = thickness
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-8.0, -8.0, k * thickness]
        ds.PixelSpacing = [1.0, 1.0]
        ds.Rows = ds.Columns = SIZE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        if burned_in == k:
            ds.BurnedInAnnotation = "YES"
        ds.PixelData = rng.integers(-100, 200, (SIZE, SIZE), dtype=np.int16).tobytes()
        ds.save_as(folder / f"IM{k:04d}", enforce_file_format=True)
        out.sop_uids.append(ds.SOPInstanceUID)
        out.datasets.append(ds)
    return out


def nifti_mask(path: Path, slices: int = 1) -> None:
    import nibabel as nib

    mask = np.zeros((SIZE, SIZE, slices), dtype=np.uint8)   # columns, rows, slices
    mask[4:12, 5:10, :] = 1
    nib.save(nib.Nifti1Image(mask, np.eye(4)), str(path))


def seg_of(study: Study, path: Path) -> None:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(study.folder / f"IM{k:04d}") for k in range(len(study.sop_uids))]
    labels = np.zeros((len(sources), SIZE, SIZE), dtype=np.uint8)
    labels[:, 3:9, 2:12] = 1
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="muscle", segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Muscle,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[segment],
        series_instance_uid=hd.UID(), series_number=9, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="Lyon", manufacturer_model_name="3D Slicer",
        software_versions="5", device_serial_number="1")
    seg.save_as(path)


@pytest.fixture(scope="module")
def intake_server(pg_cluster: str, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[AppServer]:
    """One server for the module (each test sends its own exams): starting one costs more
    than everything these tests do."""
    folder = tmp_path_factory.mktemp("intake")
    shutil.copytree(EXAMPLE_DIR, folder / "event", ignore=shutil.ignore_patterns("submissions"))
    with new_database(pg_cluster) as url:
        app = AppServer(folder / "event" / "event.toml", folder / "data", url,
                        scoring_workers=0).start()
        yield app
        app.stop()


def receive(server: AppServer, folder: Path, challenge: str, key: str) -> store.Exam:
    intake: Intake = server.app[INTAKE]

    async def go() -> store.Exam:
        exam_id = await intake.receive(center_id=await _center(server), challenge=challenge,
                                       channel="web", label=f"{key}.zip", source_key=key,
                                       folder=folder)
        await intake.idle()
        async with server.app[POOL].acquire() as conn:
            exam = await store.exam(conn, exam_id)
        assert exam is not None
        return exam
    return server.call(go())


async def _center(server: AppServer, name: str = "CHU de Lyon") -> int:
    async with server.app[POOL].acquire() as conn:
        found: int = await conn.fetchval("SELECT id FROM center WHERE name = $1", name)
        return found


def findings(server: AppServer, exam_id: int) -> list[store.Finding]:
    async def go() -> list[store.Finding]:
        async with server.app[POOL].acquire() as conn:
            return (await store.findings(conn, [exam_id]))[exam_id]
    return server.call(go())


def data_dir(server: AppServer) -> Path:
    return Path(server.app[CONFIG].data_dir)


def assert_deidentified(path: Path, study: Study, exam: store.Exam) -> Dataset:
    ds = pydicom.dcmread(path)
    assert ds.PatientID == exam.pseudonym and str(ds.PatientName) == exam.pseudonym
    assert exam.pseudonym and exam.pseudonym.startswith("PSEUDO-")
    text = str(ds)
    for original in (PATIENT_ID, "DUPONT", "Herriot", "MARTIN", "ACC778812", "19610412"):
        assert original not in text, original
    for keyword in ("InstitutionName", "ReferringPhysicianName", "AccessionNumber",
                    "PatientBirthDate"):
        assert str(ds.get(keyword) or "") in ("", "ANONYMIZED"), keyword
    assert ds.StudyInstanceUID == exam.study_uid != study.study_uid
    assert ds.StudyInstanceUID.startswith("2.25.")
    assert ds.SOPInstanceUID not in study.sop_uids
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.PatientSex == "F"            # patient characteristics kept: a criterion may need it
    return ds


def test_a_slice_and_its_nifti_mask_go_through_deidentified(intake_server: AppServer,
                                                            tmp_path: Path) -> None:
    study = write_study(tmp_path / "upload-1")
    nifti_mask(study.folder / "mask.nii.gz")
    (study.folder / "__MACOSX").mkdir()
    (study.folder / "__MACOSX" / "._IM0000").write_bytes(b"junk")
    (study.folder / "notes.txt").write_text("patient DUPONT, see report")
    exam = receive(intake_server, study.folder, "sarcopenia", "lyon-1")

    assert not study.folder.exists()                       # moved in, then removed
    assert not (data_dir(intake_server) / INCOMING / str(exam.id)).exists()
    assert exam.stage in (store.Stage.CHECKED, store.Stage.REVIEW), exam.outcome
    assert exam.folder == data_dir(intake_server) / EXAMS / str(exam.id)
    kept = sorted(p.relative_to(exam.folder).as_posix() for p in exam.folder.rglob("*")
                  if p.is_file())
    assert kept == ["annotation/mask.nii.gz", "series/0/1.dcm"]
    ds = assert_deidentified(exam.folder / "series/0/1.dcm", study, exam)
    # Shifted dates (the question's default), the pixels untouched.
    assert ds.StudyDate != "20190314" and len(ds.StudyDate) == 8
    assert ds.PixelData == study.datasets[0].PixelData
    assert exam.files == 1 and exam.bytes > 0
    assert exam.summary["series"] == "series/0" and exam.summary["mask"] == "annotation/mask.nii.gz"
    assert (exam.summary["slices"], exam.summary["thickness_mm"]) == (1, 5.0)
    assert findings(intake_server, exam.id) == []
    # The review viewer reads the folder as the pipeline left it.
    view = load_exam(exam.folder, exam.summary)
    assert view.shape == (1, SIZE, SIZE) and view.mask is not None and view.mask.any()

    async def timeline() -> list[str]:
        async with intake_server.app[POOL].acquire() as conn:
            return [t.message for t in (await store.timeline(conn, [exam.id]))[exam.id]]
    messages = intake_server.call(timeline())
    assert messages[1] == "1 DICOM file(s) de-identified; 1 file(s) that are not DICOM " \
                          "ignored: notes.txt"


def test_a_seg_shares_the_replaced_uids_and_a_violation_is_recorded(
        intake_server: AppServer, tmp_path: Path) -> None:
    study = write_study(tmp_path / "upload-2", thickness=0.625)
    seg_of(study, study.folder / "seg.dcm")
    exam = receive(intake_server, study.folder, "sarcopenia", "lyon-2")

    assert exam.stage == store.Stage.CHECKED
    found = findings(intake_server, exam.id)
    assert [(f.code, f.severity, f.state) for f in found] == [
        ("slice_thickness", "violation", "open")]
    assert "0.625 mm" in found[0].message and "1.25 to 7 mm" in found[0].message
    image = assert_deidentified(exam.folder / "series/0/1.dcm", study, exam)
    seg = assert_deidentified(exam.folder / exam.summary["mask"], study, exam)
    assert exam.summary["mask"] == "annotation/seg.dcm"
    referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert referenced.ReferencedSOPInstanceUID == image.SOPInstanceUID
    original = study.datasets[0].FrameOfReferenceUID
    assert seg.FrameOfReferenceUID == image.FrameOfReferenceUID != original
    assert int(seg.NumberOfFrames) == 1


def test_nodule_positions_are_checked_and_kept_in_mm(intake_server: AppServer,
                                                     tmp_path: Path) -> None:
    study = write_study(tmp_path / "upload-3", slices=20, thickness=1.0, kernel="B70f")
    (study.folder / "nodules.json").write_text(json.dumps({"malignant": 1, "nodules": [
        {"x": 0.5, "y": -1.0, "z": 9.0, "diameter_mm": 8},
        {"x": 40.0, "y": 0.0, "z": 9.0, "diameter_mm": 4}]}))
    exam = receive(intake_server, study.folder, "nodules-3d", "lyon-3")

    assert exam.stage == store.Stage.CHECKED
    assert [f.code for f in findings(intake_server, exam.id)] == ["nodule_outside"]
    assert [(n["x"], n["z"], n["diameter_mm"]) for n in exam.summary["nodules"]] == [
        (0.5, 9.0, 8.0), (40.0, 9.0, 4.0)]
    assert (exam.summary["slices"], exam.summary["kernel"]) == (20, "B70f")
    assert exam.files == 20 and len(list((exam.folder / "series/0").glob("*.dcm"))) == 20


def test_a_burned_in_file_excludes_the_exam_and_nothing_is_kept(intake_server: AppServer,
                                                                 tmp_path: Path) -> None:
    study = write_study(tmp_path / "upload-4", burned_in=0)
    nifti_mask(study.folder / "mask.nii.gz")
    exam = receive(intake_server, study.folder, "sarcopenia", "lyon-4")

    assert (exam.stage, exam.exclusion) == (store.Stage.EXCLUDED, store.Exclusion.DEIDENTIFICATION)
    assert exam.outcome is not None and exam.outcome.startswith(
        "rejected at de-identification: IM0000: ")
    assert "burned" in exam.outcome.lower()
    assert exam.folder is None and exam.pseudonym is None
    root = data_dir(intake_server)
    assert not (root / EXAMS / str(exam.id)).exists()
    assert not (root / EXAMS / f"{exam.id}.partial").exists()
    assert not (root / INCOMING / str(exam.id)).exists()


def test_a_restart_takes_up_what_was_left(intake_server: AppServer, tmp_path: Path) -> None:
    """An exam at received with its raw folder is processed again (its half-written copy
    dropped); a raw folder without a committed exam is removed; an exam at received whose
    files are gone is excluded, never left hanging."""
    root = data_dir(intake_server)
    study = write_study(tmp_path / "left")

    async def go() -> tuple[store.Exam, store.Exam]:
        pool = intake_server.app[POOL]
        center = await _center(intake_server)
        async with pool.acquire() as conn:
            left = await store.create(conn, center_id=center, challenge="sarcopenia",
                                      channel="web", label="left.zip", source_key="left",
                                      message="received")
            lost = await store.create(conn, center_id=center, challenge="sarcopenia",
                                      channel="web", label="lost.zip", source_key="lost",
                                      message="received")
        nifti_mask(study.folder / "mask.nii.gz")
        study.folder.rename(root / INCOMING / str(left))
        (root / EXAMS / f"{left}.partial" / "series" / "0").mkdir(parents=True)
        (root / EXAMS / f"{left}.partial" / "series" / "0" / "1.dcm").write_bytes(b"half")
        (root / INCOMING / "999999").mkdir()
        intake = Intake(pool, intake_server.app[EVENT], root)
        await intake.start()
        await intake.idle()
        await intake.close()
        async with pool.acquire() as conn:
            a, b = await store.exam(conn, left), await store.exam(conn, lost)
        assert a is not None and b is not None
        return a, b
    left, lost = intake_server.call(go())

    assert left.stage == store.Stage.REVIEW
    assert (root / EXAMS / str(left.id)).is_dir()
    assert not (root / EXAMS / f"{left.id}.partial").exists()
    assert not (root / INCOMING / str(left.id)).exists()
    assert not (root / INCOMING / "999999").exists()
    assert_deidentified(root / EXAMS / str(left.id) / "series/0/1.dcm", study, left)
    assert (lost.stage, lost.exclusion) == (store.Stage.EXCLUDED,
                                            store.Exclusion.DEIDENTIFICATION)


def test_dates_kept_for_the_question_that_needs_them_and_the_clinical_row_checked(
        tmp_path: Path) -> None:
    """`prepare` alone (no server): the MS question keeps the exam date (dates = "keep"), reads
    the clinical row a French spreadsheet writes (semicolons, a decimal comma) and refuses a
    date after today."""
    from datetime import date

    from server.deid import Keys
    from server.event import parse_event
    from server.inclusion.pipeline import prepare
    from tests.helpers import EXAMPLE_EVENT

    inclusion = parse_event(EXAMPLE_EVENT).challenge("edss").inclusion
    assert inclusion is not None
    study = write_study(tmp_path / "raw")
    (study.folder / "clinical.csv").write_text(
        "exam;age;sex;edss_2y;exam_date\nE-1;41;F;3,5;14/03/2031\n", encoding="utf-8")
    prepared = prepare(study.folder, tmp_path / "work", inclusion, Keys(b"k" * 16),
                       date(2026, 12, 2))
    assert prepared.rejected is None
    ds = pydicom.dcmread(tmp_path / "work" / "series/0/1.dcm")
    assert (ds.StudyDate, ds.LongitudinalTemporalInformationModified) == ("20190314",
                                                                          "UNMODIFIED")
    assert ds.PatientID == prepared.pseudonym != PATIENT_ID
    codes = [f["code"] for f in prepared.findings]
    assert codes[0] == "modality"                       # a CT sent for an MR question
    clinical = [f for f in prepared.findings if f["rule"].startswith("clinical")]
    assert [(f["code"], f["rule"]) for f in clinical] == [
        ("clinical_range", "clinical.exam_date")]       # 2031: in the future; 3,5 read as 3.5
    assert prepared.summary["clinical"]["edss_2y"] == "3,5"


def _dies(*_args: object) -> None:
    """A `prepare` that kills its worker process (run in the spawned child)."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_mid_exam_loses_nothing_and_the_exam_is_prepared_again(
        intake_server: AppServer, tmp_path: Path) -> None:
    """`prepare` runs in spawned processes: one killed (SIGKILL) while it writes an exam's
    de-identified copy breaks the pool; the exam stays at received with its raw files, the pool
    is recreated and the exam prepared whole."""
    root = data_dir(intake_server)
    slices = 300
    study = write_study(tmp_path / "killed", slices=slices)
    nifti_mask(study.folder / "mask.nii.gz", slices=slices)

    async def go() -> tuple[store.Exam, list[int], list[int], int]:
        pool = intake_server.app[POOL]
        intake = Intake(pool, intake_server.app[EVENT], root, workers=1)
        await intake.start()
        try:
            exam_id = await intake.receive(
                center_id=await _center(intake_server), challenge="sarcopenia",
                channel="web", label="killed.zip", source_key="killed", folder=study.folder)
            written = root / EXAMS / f"{exam_id}.partial" / "series" / "0"
            async with asyncio.timeout(60):
                for _ in iter(lambda: written.is_dir() and len(os.listdir(written)) >= 5, True):
                    await asyncio.sleep(0.005)      # the child is writing the copy
            first = intake.worker_pids()
            assert first
            for pid in first:  # below the server, which answers the centers' PACS and pages
                assert os.getpriority(os.PRIO_PROCESS, pid) == \
                    os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS
            async with pool.acquire() as conn:
                during = await store.exam(conn, exam_id)
            assert during is not None and during.stage == store.Stage.RECEIVED
            assert (root / INCOMING / str(exam_id)).is_dir()
            for pid in first:
                os.kill(pid, signal.SIGKILL)
            kept = len(list((root / INCOMING / str(exam_id)).rglob("IM*")))
            await intake.idle()
            second = intake.worker_pids()
            async with pool.acquire() as conn:
                exam = await store.exam(conn, exam_id)
        finally:
            await intake.close()
        assert exam is not None
        return exam, first, second, kept
    exam, first, second, kept = intake_server.call(go())

    assert kept == slices                   # the raw files stayed in incoming/ meanwhile
    assert second and not set(second) & set(first)      # a new pool
    assert exam.stage in (store.Stage.CHECKED, store.Stage.REVIEW), exam.outcome
    assert exam.files == slices
    assert len(list((root / EXAMS / str(exam.id) / "series/0").glob("*.dcm"))) == slices
    assert not (root / EXAMS / f"{exam.id}.partial").exists()
    assert not (root / INCOMING / str(exam.id)).exists()
    assert_deidentified(root / EXAMS / str(exam.id) / "series/0/1.dcm", study, exam)


def test_an_exam_that_kills_its_worker_twice_is_excluded_and_the_pool_lives_on(
        intake_server: AppServer, tmp_path: Path) -> None:
    root = data_dir(intake_server)
    study = write_study(tmp_path / "deadly")
    healthy = write_study(tmp_path / "healthy")
    nifti_mask(healthy.folder / "mask.nii.gz")

    async def go() -> tuple[store.Exam, store.Exam]:
        pool = intake_server.app[POOL]
        center = await _center(intake_server)
        deadly = Intake(pool, intake_server.app[EVENT], root, prepare_fn=_dies)
        await deadly.start()
        try:
            exam_id = await deadly.receive(center_id=center, challenge="sarcopenia",
                                           channel="web", label="deadly.zip",
                                           source_key="deadly", folder=study.folder)
            await deadly.idle()
        finally:
            await deadly.close()
        intake: Intake = intake_server.app[INTAKE]
        other = await intake.receive(center_id=center, challenge="sarcopenia", channel="web",
                                     label="healthy.zip", source_key="healthy",
                                     folder=healthy.folder)
        await intake.idle()
        async with pool.acquire() as conn:
            a, b = await store.exam(conn, exam_id), await store.exam(conn, other)
        assert a is not None and b is not None
        return a, b
    excluded, fine = intake_server.call(go())

    assert (excluded.stage, excluded.exclusion) == (store.Stage.EXCLUDED,
                                                    store.Exclusion.DEIDENTIFICATION)
    assert excluded.outcome is not None and "worker process died 2 times" in excluded.outcome
    assert not (root / INCOMING / str(excluded.id)).exists()
    assert not (root / EXAMS / f"{excluded.id}.partial").exists()
    assert fine.stage == store.Stage.REVIEW


@pytest.mark.parametrize(("name", "table"), [
    ("nodules.csv", "x,y,z,diameter_mm,volume_mm3,malignant\n"
                    "0.5,-1.0,9.0,3,14,1\n-2.0,2.0,12.0,4.5,,1\n"),
    ("nodules.json", json.dumps({"malignant": "1", "nodules": [
        {"x": 0.5, "y": -1.0, "z": 9.0, "diameter_mm": 3, "volume_mm3": 14},
        {"x": -2.0, "y": 2.0, "z": 12.0, "diameter_mm": 4.5}]})),
])
def test_a_malignant_label_on_small_nodules_is_a_label_disagrees_violation(
        intake_server: AppServer, tmp_path: Path, name: str, table: str) -> None:
    """Through the intake: the exam's table says malignant (1) but no nodule is above the
    question's bounds (volume > 100 mm³ or diameter > 6 mm)."""
    study = write_study(tmp_path / "labelled", slices=20, thickness=1.0, kernel="B70f")
    (study.folder / name).write_text(table)
    exam = receive(intake_server, study.folder, "nodules-3d", f"label-{name}")

    assert exam.stage == store.Stage.CHECKED
    found = findings(intake_server, exam.id)
    assert [f.code for f in found] == ["label_disagrees"]
    assert found[0].rule == "nodules.malignant"
    assert "labelled malignant (1) but no nodule has volume > 100 mm³ or diameter > 6 mm" in \
        found[0].message
    assert len(exam.summary["nodules"]) == 2
