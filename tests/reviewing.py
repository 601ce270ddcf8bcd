"""Exams ready for the experts, built as the intake leaves them (the folder contract of
docs/inclusion.md): a CT series written by pydicom with its full geometry, a mask written by
nibabel with its affine, nodule positions in mm in the summary, and the exam's rows moved to
`review` through server/store/exams.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from server.store import exams as exam_store

SLICES, SIZE = 24, 32
ORIGIN = (-16.0, -16.0, 100.0)      # the first slice's first pixel, LPS mm
BETWEEN = 2.0                        # mm between slices; 1 mm pixels
NODULE = (12, 10, 20)                # (slice, row, column) of the nodule's centre
NODULE_MM = 6.0


@dataclass(frozen=True)
class WrittenExam:
    hu: np.ndarray               # (slices, rows, columns), as the reader should find it
    mask: np.ndarray             # the same grid
    summary: dict[str, Any]


def _slice(pixels: np.ndarray, k: int, series: str, study: str, pixel: float,
           frame: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Modality = "CT"
    ds.BodyPartExamined = "CHEST"
    ds.ConvolutionKernel = "B60f"
    ds.SeriesDescription = "THORAX 1.0 B60f"
    ds.PatientID = "PODIUM-REVIEW"
    ds.PatientName = "PODIUM^REVIEW"
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20190101", "090000", "1", ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.FrameOfReferenceUID = frame
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + BETWEEN * k]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [pixel, pixel]
    ds.SliceThickness = 1.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = (pixels + 1024).astype(np.uint16).tobytes()
    return ds


def write_exam(folder: Path, *, seed: int = 0, scale: int = 1) -> WrittenExam:
    """A chest CT (24 slices of 32×32 pixels of 1 mm; `scale` times finer in-plane for the
    screenshots): a body, two lungs, a nodule; the mask labels the lungs 1 and the nodule 2.
    Written in `folder`/series/0 and `folder`/annotation/mask.nii.gz."""
    rng = np.random.default_rng(seed)
    n = SIZE * scale
    k, r, c = np.mgrid[0:SLICES, 0:n, 0:n].astype(np.float64)
    r, c = r / scale, c / scale           # in mm from the first pixel
    hu = np.full((SLICES, n, n), -1000, dtype=np.int32)
    body = ((r - 16) / 14) ** 2 + ((c - 16) / 15) ** 2 <= 1
    hu[body] = 40
    lungs = body & (((r - 15) / 9) ** 2 + ((np.abs(c - 16) - 7) / 5) ** 2 <= 1)
    hu[lungs] = -800
    hu[((r - 26) / 2.5) ** 2 + ((c - 16) / 2.5) ** 2 <= 1] = 700      # a vertebra
    distance = np.sqrt(((k - NODULE[0]) * BETWEEN) ** 2 + (r - NODULE[1]) ** 2
                       + (c - NODULE[2]) ** 2)
    nodule = distance <= NODULE_MM / 2
    hu[nodule] = 30
    hu = hu + rng.integers(-10, 10, size=hu.shape)
    mask = np.zeros(hu.shape, dtype=np.uint8)
    mask[lungs] = 1
    mask[nodule] = 2
    series = folder / "series" / "0"
    series.mkdir(parents=True)
    study, uid, frame = generate_uid(), generate_uid(), generate_uid()
    for i in range(SLICES):
        ds = _slice(hu[i], i, uid, study, 1 / scale, frame)
        ds.save_as(series / f"{i}.dcm", enforce_file_format=True)
    annotation = folder / "annotation"
    annotation.mkdir()
    # NIfTI voxel (i, j, k) = (column, row, slice); RAS = (-x, -y, z) of DICOM's LPS.
    affine = np.array([[-1.0 / scale, 0, 0, -ORIGIN[0]], [0, -1.0 / scale, 0, -ORIGIN[1]],
                       [0, 0, BETWEEN, ORIGIN[2]], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(mask.transpose(2, 1, 0).copy(), affine),
             str(annotation / "mask.nii.gz"))
    centre_mm = {"x": ORIGIN[0] + NODULE[2], "y": ORIGIN[1] + NODULE[1],
                 "z": ORIGIN[2] + BETWEEN * NODULE[0]}
    summary = {"series": "series/0", "modality": "CT", "slices": SLICES, "rows": n,
               "columns": n, "thickness_mm": 1.0, "kernel": "B60f",
               "mask": "annotation/mask.nii.gz",
               "nodules": [{**centre_mm, "diameter_mm": NODULE_MM, "volume_mm3": 113.1,
                            "density": "solid"}],
               "clinical": None}
    return WrittenExam(hu.astype(np.float32), mask, summary)


async def exam_in_review(conn: asyncpg.Connection, data_dir: Path, *, center: str,
                         challenge: str, label: str, seed: int = 0, scale: int = 1,
                         warnings: list[dict[str, Any]] | None = None
                         ) -> tuple[int, WrittenExam]:
    """An exam of `center` for `challenge`, its files written, at stage review."""
    center_id = await conn.fetchval("SELECT id FROM center WHERE name = $1", center)
    exam_id = await exam_store.create(conn, center_id=center_id, challenge=challenge,
                                      channel="web", label=label, source_key=f"{label}-{seed}",
                                      message=f"received by the web: {label}")
    folder = data_dir / "exams" / str(exam_id)
    written = write_exam(folder, seed=seed, scale=scale)
    await exam_store.deidentified(conn, exam_id, folder=folder, files=SLICES + 1, size=1,
                                  pseudonym=f"P-{exam_id}", study_uid=generate_uid(),
                                  message="de-identified")
    stage = await exam_store.checked(conn, exam_id, warnings or [], written.summary,
                                     "the criteria are met")
    assert stage is exam_store.Stage.REVIEW
    return exam_id, written
