"""Writes the small example event's truth, release and sample submissions (deterministic).

Run from anywhere: `python examples/jfr2019/make_example.py`. The files it writes are committed;
the script documents how they were made and rebuilds them identically.
"""

from __future__ import annotations

import csv
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from server.demo_volumes import (  # noqa: E402
    VolumeExam,
    chest_volume,
    dicom_series,
    nifti,
    predict,
)

SIZE = 128
SPACING = (0.78125, 0.78125)  # mm; a 400 mm field of view on 512 pixels, scaled down
UID_PREFIX = "1.2.826.0.1.3680043.10.1071."


def ct_slice(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic abdominal slice in HU and its muscle mask (a ring around a body ellipse)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    cy, cx = SIZE / 2 + rng.normal(0, 2), SIZE / 2 + rng.normal(0, 2)
    a, b = SIZE * rng.uniform(0.38, 0.44), SIZE * rng.uniform(0.28, 0.34)
    r = np.sqrt(((yy - cy) / b) ** 2 + ((xx - cx) / a) ** 2)
    hu = np.full((SIZE, SIZE), -1000.0)
    hu[r < 1.0] = -100.0  # subcutaneous fat
    muscle = (r > 0.62) & (r < 0.80)
    hu[muscle] = 45.0
    hu[r < 0.5] = 30.0  # viscera
    hu += rng.normal(0, 8, hu.shape)
    return hu, muscle


def write_dicom(path: Path, hu: np.ndarray, exam_id: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(UID_PREFIX, entropy_srcs=[exam_id])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(UID_PREFIX, entropy_srcs=[exam_id, "study"])
    ds.SeriesInstanceUID = generate_uid(UID_PREFIX, entropy_srcs=[exam_id, "series"])
    ds.Modality = "CT"
    ds.PatientID = ""
    ds.PatientName = ""
    ds.Rows, ds.Columns = hu.shape
    ds.PixelSpacing = list(SPACING)
    ds.SliceThickness = 5.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    stored = np.clip(np.round(hu + 1024), 0, 4095).astype(np.uint16)
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


def _member(name: str) -> zipfile.ZipInfo:
    # A fixed date keeps the archive byte-identical from one run to the next.
    info = zipfile.ZipInfo(name, date_time=(2019, 10, 13, 9, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_csv(path: Path, header: tuple[str, str], rows: list[tuple[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def main() -> None:
    rng = np.random.default_rng(2019)
    truth, release, subs = HERE / "truth", HERE / "release", HERE / "submissions"
    sarc = truth / "sarcopenia"
    for folder in (sarc / "images", sarc / "masks", release / "sarcopenia", release / "nodules",
                   release / "edss", subs):
        folder.mkdir(parents=True, exist_ok=True)

    # Sarcopenia: CT slices at L3 with muscle masks; surfaces from the masks.
    sarc_ids = [f"SARC{n:03d}" for n in range(1, 7)]
    surfaces, predicted = [], io.BytesIO()
    with zipfile.ZipFile(predicted, "w", zipfile.ZIP_DEFLATED) as archive:
        for exam_id in sarc_ids:
            hu, muscle = ct_slice(rng)
            write_dicom(sarc / "images" / f"{exam_id}.dcm", hu, exam_id)
            write_dicom(release / "sarcopenia" / f"{exam_id}.dcm", hu, exam_id)
            Image.fromarray(muscle.astype(np.uint8) * 255).save(sarc / "masks" / f"{exam_id}.png")
            area = float(muscle.sum()) * SPACING[0] * SPACING[1]
            surfaces.append((exam_id, round(area, 2)))
            # A decent prediction: the mask eroded by one pixel on the right edge.
            guess = muscle.copy()
            guess[:, 1:] &= muscle[:, :-1]
            png = io.BytesIO()
            Image.fromarray(guess.astype(np.uint8)).save(png, format="PNG")
            archive.writestr(_member(f"masks/{exam_id}.png"), png.getvalue())
        rows = "".join(f"{i},{a * 0.97:.1f}\n" for i, a in surfaces)
        archive.writestr(_member("surfaces.csv"), "id,surface_mm2\n" + rows)
    write_csv(sarc / "surfaces.csv", ("id", "surface_mm2"), surfaces)
    (subs / "sarcopenia-lumbar-lab.zip").write_bytes(predicted.getvalue())

    # Pulmonary nodules: probably benign (0) or probably malignant (1) per exam.
    nod_ids = [f"NOD{n:03d}" for n in range(1, 11)]
    labels = [0, 1, 0, 0, 1, 1, 0, 1, 0, 1]
    write_csv(truth / "nodules.csv", ("id", "label"), list(zip(nod_ids, labels, strict=True)))
    for exam_id in nod_ids:
        hu, _ = ct_slice(rng)
        write_dicom(release / "nodules" / f"{exam_id}.dcm", hu, exam_id)
    probs = [round(float(np.clip(lab * 0.6 + rng.uniform(0, 0.4), 0, 1)), 3) for lab in labels]
    # As French Excel writes it: semicolons and decimal commas.
    lines = ["id;probability"] + [f"{i};{str(p).replace('.', ',')}" for i, p in
                                   zip(nod_ids, probs, strict=True)]
    (subs / "nodules-nodule-hunters.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    # EDSS at two years, 0 to 10 in half steps, skewed to mild disability.
    ms_ids = [f"MS{n:03d}" for n in range(1, 9)]
    edss = [1.0, 2.5, 3.0, 0.0, 6.5, 2.0, 4.5, 1.5]
    write_csv(truth / "edss.csv", ("id", "value"), list(zip(ms_ids, edss, strict=True)))
    for exam_id in ms_ids:
        hu, _ = ct_slice(rng)
        write_dicom(release / "edss" / f"{exam_id}.dcm", hu, exam_id)
    guesses = [(i, round(v + float(rng.normal(0, 0.8)), 1)) for i, v in
               zip(ms_ids, edss, strict=True)]
    write_csv(subs / "edss-myelin-minds.csv", ("id", "edss"),
              [(i, min(10.0, max(0.0, g))) for i, g in guesses])
    nodule_task(truth / "nodules-3d", release / "nodules-3d.zip", subs)


def nodule_task(truth: Path, release: Path, subs: Path) -> None:
    """The nodule question in full on four small 3-D chest CTs (the demo's generator): truth
    images and masks as NIfTI with nodules.csv, the series released as one zip, and a team's
    zip of masks, candidates, volumes and probabilities."""
    rng = np.random.default_rng(2019)
    exams: list[VolumeExam] = []
    while len(exams) < 4 or len({e.malignant for e in exams}) < 2:  # both classes, for an AUC
        exams.append(chest_volume(f"CT{len(exams) + 1:03d}", rng, (32, 64, 64)))
    for folder in (truth / "images", truth / "masks"):
        folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for exam in exams:
        (truth / "images" / f"{exam.id}.nii.gz").write_bytes(nifti(exam, exam.hu))
        (truth / "masks" / f"{exam.id}.nii.gz").write_bytes(
            nifti(exam, exam.mask.astype(np.uint8)))
        rows += [(exam.id, *n.centre, n.diameter_mm) for n in exam.nodules]
    (truth / "nodules.csv").write_text("id,x,y,z,diameter_mm\n" + "".join(
        ",".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")
    with zipfile.ZipFile(release, "w", zipfile.ZIP_DEFLATED) as archive:
        for exam in exams:
            for name, data in dicom_series(exam).items():
                archive.writestr(_member(f"{exam.id}/{name}"), data)
    guesses = [predict(exam, rng, skill=0.8) for exam in exams]
    members = {f"masks/{e.id}.nii.gz": nifti(e, g.mask.astype(np.uint8))
               for e, g in zip(exams, guesses, strict=True)}
    members["candidates.csv"] = ("id,x,y,z,probability\n" + "".join(
        f"{e.id},{x},{y},{z},{p}\n" for e, g in zip(exams, guesses, strict=True)
        for x, y, z, p in g.candidates)).encode()
    members["volumes.csv"] = ("id,volume_mm3\n" + "".join(
        f"{e.id},{g.volume_mm3}\n" for e, g in zip(exams, guesses, strict=True))).encode()
    members["probabilities.csv"] = ("id,probability\n" + "".join(
        f"{e.id},{g.probability}\n" for e, g in zip(exams, guesses, strict=True))).encode()
    with zipfile.ZipFile(subs / "nodules-3d-nodule-hunters.zip", "w",
                         zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(_member(name), data)


if __name__ == "__main__":
    main()
