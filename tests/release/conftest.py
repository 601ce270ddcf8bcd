"""Real DICOM files and release folders, written with pydicom the way scanners lay them out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from server.cli import main

ROWS, COLUMNS = 32, 40


def write_dicom(path: Path, seed: int = 0, **attributes: Any) -> Path:
    """A CT slice with geometry, UIDs and pixel data, plus whatever `attributes` add.

    Extra attributes are keywords with values; a value that is a Dataset list becomes a sequence.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[path.name, str(seed)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study", str(seed)])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series", str(seed)])
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=["frame", str(seed)])
    ds.Modality = "CT"
    # Type 2 attributes present but empty, as anonymised releases carry them.
    ds.PatientName = ""
    ds.PatientID = ""
    ds.StudyDate = ""
    ds.AccessionNumber = ""
    ds.PatientSex = "O"
    ds.PatientAge = "063Y"
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.PixelSpacing = ["0.78125", "0.8"]
    ds.SliceThickness = "5"
    ds.ImagePositionPatient = ["-200", "-180", "12.5"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    rng = np.random.default_rng(seed)
    ds.PixelData = rng.integers(0, 4096, (ROWS, COLUMNS), dtype=np.uint16).tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def add_private(path: Path, creator: str = "ACME CT 1.0") -> Path:
    ds = pydicom.dcmread(path)
    block = ds.private_block(0x0009, creator, create=True)
    block.add_new(0x01, "LO", "scanner room 3, Hôpital Nord")
    ds.save_as(path)
    return path


@pytest.fixture()
def clean_release(tmp_path: Path) -> Path:
    """A release folder as organisers ship it: slices, a labels table, a readme."""
    root = tmp_path / "release"
    for index in range(3):
        write_dicom(root / "images" / f"{index:04d}.dcm", seed=index)
    # Scanners' own naming: no extension, recognised by the DICM preamble.
    write_dicom(root / "images" / "IM000099", seed=99)
    (root / "README.txt").write_text("Validation set, 4 slices.\n" * 50, encoding="utf-8")
    (root / "ids.csv").write_text("id\n0000\n0001\n0002\nIM000099\n", encoding="utf-8")
    return root


@pytest.fixture()
def podium() -> Callable[..., int]:
    """Runs a release command as `podium ...` would: `server.cli.main`, its argparse wiring,
    usage errors and exit codes."""

    def run(*argv: str) -> int:
        return main(list(argv))

    return run
