"""Tiny 3-D exams and label masks, written by the tools teams and organisers use: pydicom (a
CT series, slices in shuffled file order), nibabel, SimpleITK and highdicom (DICOM SEG).

Volumes are indexed (i, j, k) = (column, row, slice), the exam grid's order; a DICOM slice's
pixel_array is [row, column], so slice k of a volume `v` is `v[:, :, k].T`.
"""

from __future__ import annotations

import gzip
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

UID_ROOT = "1.2.826.0.1.3680043.10.1071.16."
SHAPE = (20, 24, 16)  # columns, rows, slices
LabelVolume = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class SeriesSpec:
    """A CT series' geometry: ImageOrientationPatient (row then column cosines), the first
    slice's ImagePositionPatient, PixelSpacing (between rows, between columns), the step
    between slices along the normal."""

    orientation: tuple[float, ...] = (1, 0, 0, 0, 1, 0)
    position: tuple[float, float, float] = (-80.0, -95.0, -300.0)
    pixel_spacing: tuple[float, float] = (0.9, 0.7)
    step: float = 1.25
    shape: tuple[int, int, int] = SHAPE

    @property
    def normal(self) -> npt.NDArray[np.float64]:
        return np.cross(np.array(self.orientation[:3]), np.array(self.orientation[3:]))

    @property
    def spacing(self) -> tuple[float, float, float]:
        return (self.pixel_spacing[1], self.pixel_spacing[0], self.step)

    def lps_affine(self) -> npt.NDArray[np.float64]:
        out = np.eye(4)
        out[:3, 0] = np.array(self.orientation[:3]) * self.pixel_spacing[1]
        out[:3, 1] = np.array(self.orientation[3:]) * self.pixel_spacing[0]
        out[:3, 2] = self.normal * self.step
        out[:3, 3] = self.position
        return out

    def ras_affine(self) -> npt.NDArray[np.float64]:
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.lps_affine()


def ellipsoid(shape: Sequence[int], centre: Sequence[float], radii: Sequence[float]
              ) -> npt.NDArray[np.bool_]:
    grid = np.indices(tuple(shape), dtype=np.float64)
    return sum(((grid[a] - centre[a]) / radii[a]) ** 2 for a in range(3)) <= 1.0  # type: ignore[no-any-return]


def labels_phantom(seed: int, shape: Sequence[int] = SHAPE, labels: int = 2) -> LabelVolume:
    """A lobe-sized structure (label 1) and a nodule-sized one (label 2), with ragged edges."""
    rng = np.random.default_rng(seed)
    out = np.zeros(tuple(shape), dtype=np.uint8)
    big = ellipsoid(shape, [s / 2 + rng.uniform(-1, 1) for s in shape],
                    [s / 3.2 + rng.uniform(-0.5, 0.5) for s in shape])
    out[big & (rng.random(tuple(shape)) > 0.04)] = 1
    if labels >= 2:
        small = ellipsoid(shape, [3.5 + rng.uniform(0, 1), 4.5, 3.5], (2.2, 1.8, 1.6))
        out[small] = 2
    return out


def perturbed(labels: LabelVolume, seed: int, shift: int = 1) -> LabelVolume:
    """A prediction: the truth moved by `shift` voxels along i, with voxels flipped."""
    rng = np.random.default_rng(seed)
    out = np.roll(labels, shift, axis=0).copy()
    flip = rng.random(out.shape) < 0.02
    out[flip & (out == 0)] = 1
    out[flip & (out == 1)] = 0
    return out


def write_series(folder: Path, spec: SeriesSpec, volume: npt.NDArray[np.generic], *,
                 seed: int = 0, study: str = "exam", mask: bool = False) -> list[Path]:
    """One single-frame DICOM file per slice of `volume` (i, j, k), written with pydicom in
    a shuffled order under names that do not follow the slices."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(spec.shape[2])
    frame = generate_uid(UID_ROOT, entropy_srcs=[study, "frame"])
    series = generate_uid(UID_ROOT, entropy_srcs=[study, "series", str(mask)])
    paths = []
    for n, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid(UID_ROOT, entropy_srcs=[series, str(k)])
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.StudyDate, ds.StudyTime = "", "", "", ""
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "", "", ""
        ds.PatientBirthDate, ds.PatientSex = "", ""
        ds.StudyInstanceUID = generate_uid(UID_ROOT, entropy_srcs=[study, "study"])
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", "1", str(n + 1)
        ds.PatientPosition = "HFS"
        ds.ImageOrientationPatient = [f"{v:g}" for v in spec.orientation]
        position = np.array(spec.position) + k * spec.step * spec.normal
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.PixelSpacing = [f"{v:g}" for v in spec.pixel_spacing]
        ds.SliceThickness = f"{spec.step:g}"
        ds.Rows, ds.Columns = spec.shape[1], spec.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        if mask:
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
            pixels = np.ascontiguousarray(volume[:, :, k].T.astype(np.uint8))
        else:
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
            pixels = np.ascontiguousarray((volume[:, :, k].T.astype(np.int32) + 1024)
                                          .astype(np.uint16))
        ds.PixelData = pixels.tobytes()
        path = folder / f"IM{n:04d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def ct_volume(spec: SeriesSpec, seed: int) -> npt.NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 400, spec.shape).astype(np.int16)


def nifti_bytes(volume: npt.NDArray[np.generic], affine: npt.NDArray[np.float64] | None, *,
                gz: bool = True, qform_only: bool = False) -> bytes:
    """A NIfTI-1 file written by nibabel (affine None: no orientation, codes 0)."""
    image = nib.Nifti1Image(np.asarray(volume), affine)
    if affine is None:
        image.header.set_sform(None, code=0)
        image.header.set_qform(None, code=0)
    elif qform_only:
        image.header.set_sform(None, code=0)
    data = image.to_bytes()
    return gzip.compress(data, mtime=0) if gz else data


def sitk_copy_information(volume: npt.NDArray[np.generic], exam: Path, work: Path) -> bytes:
    """A mask written by SimpleITK with the exam's geometry (CopyInformation), the exam read
    the way SimpleITK users read it (a DICOM series folder, or a NIfTI file)."""
    import SimpleITK as sitk

    if exam.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(exam)))
        image = reader.Execute()
    else:
        image = sitk.ReadImage(str(exam))
    # SimpleITK's arrays are [k, j, i].
    mask = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(volume, (2, 1, 0))))
    mask.CopyInformation(image)
    out = work / "sitk-mask.nii.gz"
    sitk.WriteImage(mask, str(out))
    return out.read_bytes()


def highdicom_seg(series: Sequence[Path], volume: LabelVolume, *,
                  labels: Sequence[int] = (1, 2), omit_empty: bool = True) -> bytes:
    """A DICOM SEG of `volume`'s labels (one segment per label) on the series' slices."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(p) for p in series]
    normal = np.cross(np.array(sources[0].ImageOrientationPatient[:3], dtype=float),
                      np.array(sources[0].ImageOrientationPatient[3:], dtype=float))
    sources.sort(key=lambda ds: float(np.array(ds.ImagePositionPatient, dtype=float) @ normal))
    descriptions = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=f"structure {n}",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="team-model", version="1", family=codes.DCM.ArtificialIntelligence),
    ) for n in labels]
    frames = np.ascontiguousarray(np.transpose(volume, (2, 1, 0)))  # [slice, row, column]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=frames,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=99,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Team",
            manufacturer_model_name="model", software_versions="1", device_serial_number="1",
            omit_empty_frames=omit_empty,
        )
    out = io.BytesIO()
    seg.save_as(out)
    return out.getvalue()
