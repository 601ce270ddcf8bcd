"""Headers as vendors write them, built with pydicom, written to DICOM bytes and read back
with `stop_before_pixels=True`, as the inclusion platform's receivers will read them.

The attribute values are those the named scanners write: Siemens SOMATOM kernels (B30f,
B70f, Br40d with its iterative strength as a second value), GE LightSpeed words (STANDARD,
LUNG, BONEPLUS), Philips Brilliance letters (B, L, YC), Canon / Toshiba Aquilion numbers
(FC03, FC51, FL04); MR: Siemens SPACE dark fluid (*spcir, SE\\IR, TI 1800 ms), GE CUBE T2 FLAIR,
Philips 3D VIEW FLAIR, Siemens Prisma's axial 2-D "t2_tirm_tra_dark-fluid_FLAIR" (the values
of open-dicom's siemens_flair_0 sample: *tir2d1_16, TR 8000, TE 81, TI 2370, 4 mm), and T1
sequences that are not FLAIR (MPRAGE, a GE "Ax T1 FLAIR", a T1 spin echo after gadolinium).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
STUDY = generate_uid()


@dataclass
class Series:
    """One series' headers; `files()` gives the datasets as read back from DICOM bytes."""

    modality: str
    manufacturer: str
    model: str
    description: str
    count: int
    thickness: float | None
    spacing: float | None = None          # between slice positions; default = thickness
    orientation: tuple[float, ...] = AXIAL
    number: int = 1
    attributes: dict[str, Any] = field(default_factory=dict)
    rows: int = 8
    columns: int = 8
    _written: list[bytes] = field(default_factory=list, init=False, repr=False)

    def datasets(self) -> list[Dataset]:
        uid = generate_uid()
        step = self.spacing if self.spacing is not None else (self.thickness or 1.0)
        r, c = self.orientation[:3], self.orientation[3:]
        n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
        out = []
        for k in range(self.count):
            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            sop_class = CTImageStorage if self.modality == "CT" else MRImageStorage
            ds.file_meta.MediaStorageSOPClassUID = sop_class
            ds.SOPClassUID = sop_class
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.StudyInstanceUID = STUDY
            ds.SeriesInstanceUID = uid
            ds.SeriesNumber = self.number
            ds.InstanceNumber = k + 1
            ds.Modality = self.modality
            ds.Manufacturer = self.manufacturer
            ds.ManufacturerModelName = self.model
            ds.SeriesDescription = self.description
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if self.modality == "CT" else "M"]
            if self.thickness is not None:
                ds.SliceThickness = self.thickness
            ds.ImageOrientationPatient = list(self.orientation)
            ds.ImagePositionPatient = [round(-100.0 + k * step * n[0], 4),
                                       round(-120.0 + k * step * n[1], 4),
                                       round(-50.0 + k * step * n[2], 4)]
            ds.PixelSpacing = [0.703125, 0.703125]
            ds.Rows, ds.Columns = self.rows, self.columns
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
            ds.PixelRepresentation = 0
            ds.PixelData = bytes(2 * self.rows * self.columns)
            for key, value in self.attributes.items():
                setattr(ds, key, value)
            out.append(ds)
        return out

    def files(self) -> list[Dataset]:
        """The series' files as read back (headers only); written once, read anew each call,
        so a test may change what it gets."""
        if not self._written:
            self._written.extend(written(ds) for ds in self.datasets())
        return [read(data) for data in self._written]


def written(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def read_back(ds: Dataset) -> Dataset:
    return read(written(ds))


def ct(manufacturer: str, model: str, kernel: str | Sequence[str], description: str,
       thickness: float | None, count: int, **attributes: Any) -> Series:
    spacing = attributes.pop("spacing", None)
    number = attributes.pop("number", 2)
    attributes["ConvolutionKernel"] = kernel if isinstance(kernel, str) else list(kernel)
    attributes.setdefault("KVP", 120)
    return Series("CT", manufacturer, model, description, count, thickness, spacing,
                  attributes.pop("orientation", AXIAL), number, attributes)


def mr(manufacturer: str, model: str, description: str, count: int, thickness: float,
       orientation: tuple[float, ...], **attributes: Any) -> Series:
    spacing = attributes.pop("spacing", None)
    number = attributes.pop("number", 5)
    return Series("MR", manufacturer, model, description, count, thickness, spacing,
                  orientation, number, attributes)


SIEMENS, GE, PHILIPS, TOSHIBA, CANON = ("SIEMENS", "GE MEDICAL SYSTEMS", "Philips",
                                        "TOSHIBA", "CANON_MEC")

# --- CT ----------------------------------------------------------------------------------
# Sarcopenia: one axial slice at L3, soft kernel, 1.25-7 mm.
SIEMENS_L3_B30F = ct(SIEMENS, "SOMATOM Definition AS+", "B30f", "Abdomen 5.0 B30f", 5.0, 1,
                     ContrastBolusAgent="Iomeron 350", ContrastBolusRoute="IV")
GE_L3_STANDARD = ct(GE, "LightSpeed VCT", "STANDARD", "ABD PELVIS C+", 2.5, 1)
PHILIPS_L3_B = ct(PHILIPS, "Brilliance 64", "B", "TAP sans injection", 3.0, 1)
CANON_L3_FC03 = ct(TOSHIBA, "Aquilion ONE", "FC03", "Abdomen 5.0", 5.0, 1)
GE_L3_BONEPLUS = ct(GE, "LightSpeed VCT", "BONEPLUS", "L3 os", 2.5, 1)
SIEMENS_L3_TOO_THIN = ct(SIEMENS, "SOMATOM Definition AS+", "B30f", "Abdomen 1.0 B30f", 1.0, 1)
SIEMENS_L3_TOO_THICK = ct(SIEMENS, "SOMATOM Definition AS+", "B31f", "Abdomen 8.0 B31f", 8.0,
                          1)
# A whole abdomen sent where one slice is asked.
GE_ABDOMEN_SERIES = ct(GE, "LightSpeed VCT", "STANDARD", "ABDOMEN 5mm", 5.0, 24)

# Nodules: a thin (< 1.25 mm) chest volume, mostly hard kernels.
SIEMENS_CHEST_B70F = ct(SIEMENS, "SOMATOM Definition AS+", "B70f", "Thorax 1.0 B70f", 1.0, 24,
                        spacing=0.7, number=3)
SIEMENS_FORCE_BR40D = ct("Siemens Healthineers", "SOMATOM Force", ["Br40d", "3"],
                         "Thorax 1.0 Br40 3", 1.0, 24, number=4)
GE_CHEST_LUNG = ct(GE, "LightSpeed VCT", "LUNG", "1.25mm Lung", 0.625, 24, number=5)
GE_CHEST_LUNG_125 = ct(GE, "LightSpeed VCT", "LUNG", "1.25mm Lung", 1.25, 24, number=6)
PHILIPS_CHEST_L = ct("Philips Medical Systems", "Brilliance 64", "L", "Thorax 1mm L", 0.9, 24,
                     spacing=0.45, number=7)
PHILIPS_CHEST_YC = ct(PHILIPS, "Brilliance 64", "YC", "Thorax 0.67 YC", 0.67, 24, number=8)
CANON_CHEST_FC51 = ct(TOSHIBA, "Aquilion ONE", "FC51", "Chest 1.0 FC51", 1.0, 24, number=9)
CANON_CHEST_FL04 = ct(CANON, "Aquilion Prime SP", "FL04", "LUNG 0.5", 0.5, 24, number=10)
CANON_CHEST_UNKNOWN = ct(CANON, "Aquilion Prime SP", "FC43", "Chest 1.0", 1.0, 24, number=11)
GE_CHEST_THICK = ct(GE, "LightSpeed VCT", "LUNG", "Chest 5mm", 5.0, 24, number=12)
# 1 mm slices 5 mm apart: the volume resolves 5 mm.
SIEMENS_CHEST_GAPS = ct(SIEMENS, "SOMATOM Definition AS+", "B70f", "Thorax 1.0 B70f", 1.0, 24,
                        spacing=5.0, number=13)
SIEMENS_TOPOGRAM = ct(SIEMENS, "SOMATOM Definition AS+", "T80f", "Topogram  0.6  T80f", 0.6, 1,
                      number=1, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER", "CT_SOM5 TOP"])

# --- MR ----------------------------------------------------------------------------------
SIEMENS_SPACE_FLAIR = mr(
    SIEMENS, "Prisma", "t2_space_dark-fluid_sag_p2_iso", 24, 1.0, SAGITTAL,
    ScanningSequence=["SE", "IR"], SequenceVariant=["SK", "SP", "MP"], SequenceName="*spcir_278ns",
    MRAcquisitionType="3D", RepetitionTime=5000, EchoTime=387, InversionTime=1800,
    ProtocolName="t2_space_dark-fluid_sag_p2_iso")
GE_CUBE_FLAIR = mr(
    GE, "DISCOVERY MR750", "Cube T2 FLAIR", 24, 1.2, SAGITTAL, spacing=0.6,
    ScanningSequence=["SE", "IR"], SequenceVariant=["SK", "SS"], MRAcquisitionType="3D",
    RepetitionTime=6000, EchoTime=128.6, InversionTime=1796, ProtocolName="BRAIN MS")
PHILIPS_VIEW_FLAIR = mr(
    "Philips Medical Systems", "Ingenia", "3D_Brain_VIEW_FLAIR", 24, 1.12, SAGITTAL,
    spacing=0.56, ScanningSequence=["SE", "IR"], SequenceVariant=["SK"],
    MRAcquisitionType="3D", RepetitionTime=4800, EchoTime=340, InversionTime=1650,
    ProtocolName="3D_Brain_VIEW_FLAIR SENSE")
SIEMENS_AXIAL_FLAIR = mr(
    SIEMENS, "Prisma", "t2_tirm_tra_dark-fluid_FLAIR", 24, 4.0, AXIAL, spacing=4.4,
    ScanningSequence=["SE", "IR"], SequenceVariant=["SK", "SP", "MP"], ScanOptions=["IR", "FS"],
    SequenceName="*tir2d1_16", MRAcquisitionType="2D", RepetitionTime=8000, EchoTime=81,
    InversionTime=2370)
SIEMENS_SAGITTAL_2D_FLAIR = mr(
    SIEMENS, "Prisma", "t2_tirm_sag_dark-fluid", 24, 4.0, SAGITTAL,
    ScanningSequence=["SE", "IR"], SequenceVariant=["SK", "SP", "MP"],
    SequenceName="*tir2d1_16", MRAcquisitionType="2D", RepetitionTime=8000, EchoTime=81,
    InversionTime=2370)
SIEMENS_MPRAGE = mr(
    SIEMENS, "Skyra", "t1_mprage_sag_p2_iso", 24, 1.0, SAGITTAL,
    ScanningSequence=["GR", "IR"], SequenceVariant=["SK", "SP", "MP", "OSP"],
    SequenceName="*tfl3d1_16ns", MRAcquisitionType="3D", RepetitionTime=2300, EchoTime=2.98,
    InversionTime=900)
GE_T1_FLAIR = mr(
    GE, "SIGNA HDxt", "Ax T1 FLAIR", 24, 5.0, AXIAL, spacing=6.5,
    ScanningSequence=["SE", "IR"], SequenceVariant=["SK", "SS"], MRAcquisitionType="2D",
    RepetitionTime=2200, EchoTime=9.1, InversionTime=860)
SIEMENS_T1_SE_GADO = mr(
    SIEMENS, "Avanto", "t1_se_tra +Gd", 24, 5.0, AXIAL, spacing=6.5,
    ScanningSequence=["SE"], SequenceVariant=["SP"], SequenceName="*se2d1",
    MRAcquisitionType="2D", RepetitionTime=550, EchoTime=8.7)
# A FLAIR whose descriptions an anonymizer removed: only the timing says FLAIR.
ANONYMIZED_FLAIR = mr(
    "", "", "", 24, 1.0, SAGITTAL, ScanningSequence=["SE", "IR"], SequenceVariant=["SK", "SP"],
    MRAcquisitionType="3D", RepetitionTime=5000, EchoTime=390, InversionTime=1800)
# An inversion recovery with no time and no name: FLAIR or not cannot be told.
BARE_IR = mr("", "", "", 24, 1.0, SAGITTAL, ScanningSequence=["SE", "IR"],
             MRAcquisitionType="3D")

CT_SERIES = {name: value for name, value in globals().items()
             if isinstance(value, Series) and value.modality == "CT"}
MR_SERIES = {name: value for name, value in globals().items()
             if isinstance(value, Series) and value.modality == "MR"}
