"""Synthetic exams, truths and submissions, written with the tools teams use.

Shared by the tests, tests/corpus/make_corpus.py and bench/score_masks.py.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

FIXED_DATE = (2019, 10, 4, 11, 58, 0)
BoolArray = npt.NDArray[np.bool_]


def synthetic_slice(shape: tuple[int, int], seed: int) -> tuple[npt.NDArray[np.int16], BoolArray]:
    """An axial CT-like slice in HU and its muscle mask: air, fat, a muscle ring, organs."""
    rng = np.random.default_rng(seed)
    rows, columns = shape
    y, x = np.mgrid[0:rows, 0:columns]
    cy, cx = rows / 2 + rng.uniform(-2, 2), columns / 2 + rng.uniform(-2, 2)
    a, b = rows * rng.uniform(0.36, 0.42), columns * rng.uniform(0.40, 0.46)
    r = np.sqrt(((y - cy) / a) ** 2 + ((x - cx) / b) ** 2)
    hu = np.full(shape, -1000.0)
    hu[r < 1.0] = -100.0  # subcutaneous fat
    muscle = (r < 0.86) & (r > 0.66 + 0.04 * np.sin(6 * np.arctan2(y - cy, x - cx)))
    hu[muscle] = 45.0
    hu[r <= 0.66] = 30.0  # viscera, outside the truth mask
    hu += rng.normal(0, 25, shape)
    # Fat infiltration: some truth-mask pixels fall outside the [-29, 150] HU window.
    infiltrated = muscle & (rng.random(shape) < 0.05)
    hu[infiltrated] = -80.0
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16), muscle


def write_exam(path: Path, hu: npt.NDArray[np.int16], spacing: tuple[float, float],
               seed: int = 0) -> None:
    """A CT slice as scanners store it: uint16 values with RescaleIntercept -1024."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path.name), str(seed)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows, ds.Columns = hu.shape
    ds.PixelSpacing = [f"{spacing[0]:.6g}", f"{spacing[1]:.6g}"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.PixelData = (hu.astype(np.int32) + 1024).astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def dicom_mask(exam: Path, mask: npt.NDArray[np.generic], *, bits: int = 8,
               syntax: str | None = None) -> bytes:
    """A mask written as teams do it from the exam's own DICOM: Rescale* tags kept."""
    ds = pydicom.dcmread(exam)
    values = np.asarray(mask)
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if bits == 1:
        from pydicom.pixels import pack_bits

        ds.PixelData = pack_bits(values.astype(np.uint8))
    else:
        ds.PixelData = values.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    if syntax is not None:
        ds.compress(syntax, values.astype(np.uint8 if bits == 8 else np.uint16))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def png_mask(mask: npt.NDArray[np.generic], *, mode: str = "L", value: int = 255) -> bytes:
    values = np.asarray(mask)
    buffer = io.BytesIO()
    if mode == "1":
        image = Image.fromarray(values.astype(bool))
    elif mode == "I;16":
        image = Image.fromarray((values != 0).astype(np.uint16) * value)
    elif mode == "P":
        # Palette index 1 is drawn red: the raw index, not the color, is the label.
        image = Image.frombytes("P", values.shape[::-1], (values != 0).astype(np.uint8).tobytes())
        image.putpalette([0, 0, 0, 255, 0, 0])
    else:
        image = Image.fromarray((values != 0).astype(np.uint8) * value)
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def npy_mask(mask: npt.NDArray[np.generic], dtype: str = "uint8") -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(mask).astype(dtype), allow_pickle=False)
    return buffer.getvalue()


def nifti_mask(mask: npt.NDArray[np.generic], *, gz: bool = False, slab: bool = False) -> bytes:
    """As nibabel users save a 2-D slice: array axes (x, y) = (columns, rows)."""
    import gzip

    import nibabel as nib

    data = np.asarray(mask).astype(np.uint8).T
    if slab:
        data = data[:, :, np.newaxis]
    image = nib.Nifti1Image(data, np.eye(4))
    raw = image.to_bytes()
    return gzip.compress(raw, mtime=0) if gz else raw


def table_csv(rows: Mapping[str, float] | list[tuple[str, str]], *, delimiter: str = ",",
              header: tuple[str, str] | None = ("id", "value"), decimal: str = ".",
              encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    if header:
        writer.writerow(header)
    items = rows.items() if isinstance(rows, Mapping) else rows
    for key, value in items:
        text = repr(float(value)) if not isinstance(value, str) else value
        writer.writerow([key, text.replace(".", decimal)])
    return buffer.getvalue().encode(encoding)


def write_zip(path: Path, members: Mapping[str, bytes],
              compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip with fixed timestamps, so generated files are byte-for-byte reproducible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, FIXED_DATE)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return path


def make_segmentation_truth(
    folder: Path, ids: list[str], shape: tuple[int, int] = (64, 64),
    spacing: tuple[float, float] = (0.78125, 0.78125), surfaces_csv: bool = False,
) -> dict[str, BoolArray]:
    """images/<id>.dcm and masks/<id>.png; returns the masks by id."""
    masks: dict[str, BoolArray] = {}
    surfaces: dict[str, float] = {}
    for n, exam_id in enumerate(ids):
        hu, mask = synthetic_slice(shape, seed=n)
        write_exam(folder / "images" / f"{exam_id}.dcm", hu, spacing, seed=n)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        (folder / "masks" / f"{exam_id}.png").write_bytes(png_mask(mask))
        masks[exam_id] = mask
        surfaces[exam_id] = float(np.count_nonzero(mask)) * spacing[0] * spacing[1]
    if surfaces_csv:
        (folder / "surfaces.csv").write_bytes(
            table_csv(surfaces, header=("id", "surface_mm2"))
        )
    return masks


def perturb(mask: BoolArray, seed: int, flips: int = 40) -> BoolArray:
    """A plausible prediction: the truth with some pixels flipped."""
    rng = np.random.default_rng(seed)
    out = mask.copy()
    rows = rng.integers(0, mask.shape[0], flips)
    columns = rng.integers(0, mask.shape[1], flips)
    out[rows, columns] = ~out[rows, columns]
    return out
