"""The demo's 3-D chest CT exams with pulmonary nodules: volumes, masks and nodule lists.

Each exam is a small synthetic chest CT (a body ellipse, two lungs, vessels as noise) with 1 to
5 spherical nodules of 3–12 mm, stored as a DICOM series of axial slices with its full
geometry (ImageOrientationPatient, ImagePositionPatient, PixelSpacing), so that SimpleITK,
dcm2niix and highdicom read it as a scanner's series. The truth is the nodules' mask (label 1)
and their centres (world coordinates of the DICOM patient system, LPS, in mm) and diameters;
the seed's benign/malignant threshold (100 mm³) applies to the masks' volumes.
Nothing here is a person's data.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

BoolMask = npt.NDArray[np.bool_]
Rng = np.random.Generator

UID_PREFIX = "1.2.826.0.1.3680043.10.1071."
SHAPE = (40, 80, 80)            # slices, rows, columns
PIXEL_MM = 1.0                  # in-plane spacing
SLICE_MM = 1.25                 # between slice positions, as thin-slice nodule CT
MALIGNANT_MM3 = 100.0           # the seed's threshold: probably malignant at or above


@dataclass(frozen=True)
class Nodule:
    centre: tuple[float, float, float]   # x, y, z in mm (DICOM patient coordinates, LPS)
    diameter_mm: float


@dataclass(frozen=True)
class VolumeExam:
    id: str
    hu: npt.NDArray[np.int16]            # slices x rows x columns
    mask: BoolMask                       # the nodules, same grid
    nodules: tuple[Nodule, ...]
    origin: tuple[float, float, float]   # ImagePositionPatient of the first slice

    @property
    def voxel_mm3(self) -> float:
        return PIXEL_MM * PIXEL_MM * SLICE_MM

    @property
    def volume_mm3(self) -> float:
        return float(np.count_nonzero(self.mask)) * self.voxel_mm3

    @property
    def malignant(self) -> bool:
        """The seed's rule on the exam: a nodule of 100 mm³ or more (the largest counts)."""
        return max(_sphere_volume(n, self) for n in self.nodules) >= MALIGNANT_MM3

    def world(self, k: float, r: float, c: float) -> tuple[float, float, float]:
        """Voxel (slice, row, column) to patient coordinates in mm."""
        x0, y0, z0 = self.origin
        return (x0 + c * PIXEL_MM, y0 + r * PIXEL_MM, z0 + k * SLICE_MM)

    def affine_ras(self) -> npt.NDArray[np.float64]:
        """The NIfTI affine (RAS) of an array indexed [column, row, slice], as dcm2niix and
        nibabel users write it from the series' geometry."""
        x0, y0, z0 = self.origin
        return np.array([[-PIXEL_MM, 0, 0, -x0], [0, -PIXEL_MM, 0, -y0],
                         [0, 0, SLICE_MM, z0], [0, 0, 0, 1]], dtype=np.float64)


def _sphere_volume(nodule: Nodule, exam: VolumeExam) -> float:
    """The nodule's volume as its mask counts it (voxels inside its sphere)."""
    return float(np.count_nonzero(sphere(exam, nodule.centre, nodule.diameter_mm / 2))
                 ) * exam.voxel_mm3


def chest_volume(exam_id: str, rng: Rng) -> VolumeExam:
    """A chest CT volume with 1 to 5 nodules inside the lungs, about half the exams with a
    probably malignant one."""
    slices, rows, cols = SHAPE
    origin = (-(cols - 1) / 2 * PIXEL_MM, -(rows - 1) / 2 * PIXEL_MM, -120.0)
    k, r, c = np.mgrid[0:slices, 0:rows, 0:cols].astype(np.float64)
    hu = np.full(SHAPE, -1000.0)
    hu[((r - rows / 2) / (rows * 0.42)) ** 2 + ((c - cols / 2) / (cols * 0.47)) ** 2 < 1] = 40.0
    lungs = np.zeros(SHAPE, dtype=bool)
    for cx in (cols * 0.3, cols * 0.7):
        lungs |= (((r - rows * 0.48) / (rows * 0.3)) ** 2 + ((c - cx) / (cols * 0.16)) ** 2
                  + ((k - slices / 2) / (slices * 0.62)) ** 2) < 1
    hu[lungs] = -850.0
    exam = VolumeExam(exam_id, np.zeros(SHAPE, np.int16), np.zeros(SHAPE, bool), (), origin)
    malignant = bool(rng.random() < 0.5)
    nodules: list[Nodule] = []
    mask = np.zeros(SHAPE, dtype=bool)
    for n in range(int(rng.integers(1, 6))):
        big = malignant and n == 0
        diameter = round(float(rng.uniform(6.5, 12.0) if big else rng.uniform(3.0, 5.2)), 2)
        # Apart from the nodules already placed (by 3 voxels), inside a lung.
        taken = ndimage.binary_dilation(mask, iterations=3) if mask.any() else mask
        for _ in range(200):
            at = (float(rng.uniform(4, slices - 5)), float(rng.uniform(10, rows - 10)),
                  float(rng.uniform(8, cols - 8)))
            x, y, z = exam.world(*at)
            centre = (round(x, 2), round(y, 2), round(z, 2))
            ball = sphere(exam, centre, diameter / 2)
            if lungs[round(at[0]), round(at[1]), round(at[2])] and not (taken & ball).any():
                break
        nodules.append(Nodule(centre, diameter))
        mask |= ball
    hu[mask] = 25.0
    hu += rng.normal(0, 18, SHAPE)
    hu_int = np.clip(np.round(hu), -1024, 3071).astype(np.int16)
    return VolumeExam(exam_id, hu_int, mask, tuple(nodules), origin)


def sphere(exam: VolumeExam, centre: tuple[float, float, float], radius_mm: float) -> BoolMask:
    """The voxels whose centre lies within `radius_mm` of `centre` (mm, patient coordinates)."""
    slices, rows, cols = SHAPE
    x0, y0, z0 = exam.origin
    z = z0 + np.arange(slices) * SLICE_MM
    y = y0 + np.arange(rows) * PIXEL_MM
    x = x0 + np.arange(cols) * PIXEL_MM
    d2 = ((z[:, None, None] - centre[2]) ** 2 + (y[None, :, None] - centre[1]) ** 2
          + (x[None, None, :] - centre[0]) ** 2)
    return np.asarray(d2 <= radius_mm ** 2)


def dicom_series(exam: VolumeExam) -> dict[str, bytes]:
    """The exam as a scanner's series: one CT file per slice, named by instance number in the
    order a PACS export gives (not the slices' order in space: readers sort by position)."""
    slices = exam.hu.shape[0]
    study = generate_uid(UID_PREFIX, entropy_srcs=[exam.id, "study"])
    series = generate_uid(UID_PREFIX, entropy_srcs=[exam.id, "series"])
    frame = generate_uid(UID_PREFIX, entropy_srcs=[exam.id, "frame"])
    files: dict[str, bytes] = {}
    for number, k in enumerate(range(slices - 1, -1, -1), start=1):  # head first: top down
        sop = generate_uid(UID_PREFIX, entropy_srcs=[exam.id, "slice", str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                        "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                        "ReferringPhysicianName"):
            setattr(ds, keyword, "")
        ds.Modality = "CT"
        ds.SeriesNumber, ds.InstanceNumber = "1", str(number)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ConvolutionKernel = "B70f"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = exam.hu.shape[1], exam.hu.shape[2]
        ds.PixelSpacing = [f"{PIXEL_MM:.4f}", f"{PIXEL_MM:.4f}"]
        ds.SliceThickness = f"{SLICE_MM}"
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        x, y, z = exam.world(k, 0, 0)
        ds.ImagePositionPatient = [f"{x:.4f}", f"{y:.4f}", f"{z:.4f}"]
        ds.SliceLocation = f"{z:.4f}"
        ds.PatientPosition = "HFS"
        ds.KVP = "120"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
        ds.WindowCenter, ds.WindowWidth = "-600", "1500"
        ds.PixelData = np.clip(exam.hu[k].astype(np.int32) + 1024, 0, 4095
                               ).astype(np.uint16).tobytes()
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files[f"{number:04d}.dcm"] = out.getvalue()
    return files


def nifti(exam: VolumeExam, volume: npt.NDArray[np.generic], *, affine: bool = True
          ) -> bytes:
    """A NIfTI-1 (.nii.gz) of `volume` on the exam's grid, indexed [column, row, slice] with
    the series' affine (as dcm2niix and nibabel users write it), or with no orientation at
    all (`affine=False`: the identity, as a script that forgot it writes)."""
    data = np.ascontiguousarray(np.transpose(volume, (2, 1, 0)))
    image = nib.Nifti1Image(data, exam.affine_ras() if affine else np.eye(4))
    if affine:
        image.header.set_sform(exam.affine_ras(), code=1)
        image.header.set_qform(exam.affine_ras(), code=1)
    else:
        image.header.set_sform(np.eye(4), code=0)
        image.header.set_qform(np.eye(4), code=0)
    raw = image.to_bytes()
    return gzip.compress(raw, compresslevel=6, mtime=0)


# --- what teams send ---------------------------------------------------------------------

@dataclass(frozen=True)
class Prediction:
    """One team's answer for one exam: its mask, its candidates (x, y, z in mm, probability),
    the volume it measured and its probability of a probably malignant nodule."""

    mask: BoolMask
    candidates: tuple[tuple[float, float, float, float], ...]
    volume_mm3: float
    probability: float


def predict(exam: VolumeExam, rng: Rng, *, skill: float, miss_below_mm: float = 0.0,
            false_positives: float = 1.0) -> Prediction:
    """A model's answer of some `skill` (0 to 1): nodules under `miss_below_mm` missed,
    the others found with their size and centre off by an error that shrinks with skill,
    about `false_positives` false candidates per exam, and the malignancy probability from
    the measured volume."""
    mask = np.zeros(SHAPE, dtype=bool)
    candidates: list[tuple[float, float, float, float]] = []
    largest = 0.0
    for nodule in exam.nodules:
        if nodule.diameter_mm < miss_below_mm:
            continue
        error = 1.0 - skill
        centre = tuple(float(v + rng.normal(0, 0.6 * error + 0.1)) for v in nodule.centre)
        radius = nodule.diameter_mm / 2 * float(1 + rng.normal(0, 0.25 * error))
        ball = sphere(exam, (centre[0], centre[1], centre[2]), max(radius, 0.6))
        mask |= ball
        largest = max(largest, float(np.count_nonzero(ball)) * exam.voxel_mm3)
        candidates.append((round(centre[0], 2), round(centre[1], 2), round(centre[2], 2),
                           round(float(np.clip(rng.normal(0.55 + 0.4 * skill, 0.08), 0.05,
                                               0.99)), 3)))
    for _ in range(int(rng.poisson(false_positives))):
        at = exam.world(float(rng.uniform(2, SHAPE[0] - 3)), float(rng.uniform(8, SHAPE[1] - 8)),
                        float(rng.uniform(8, SHAPE[2] - 8)))
        candidates.append((round(at[0], 2), round(at[1], 2), round(at[2], 2),
                           round(float(np.clip(rng.normal(0.55 - 0.3 * skill, 0.15), 0.01,
                                               0.95)), 3)))
    volume = float(np.count_nonzero(mask)) * exam.voxel_mm3
    logit = (np.log(max(largest, 1.0)) - np.log(MALIGNANT_MM3)) * (1 + 3 * skill)
    probability = round(float(1 / (1 + np.exp(-logit + rng.normal(0, 1.0 + 6 * (1 - skill)))
                                    )), 4)
    return Prediction(mask, tuple(candidates), round(volume, 1), probability)


def voxel_candidates(exam: VolumeExam, prediction: Prediction
                     ) -> tuple[tuple[float, float, float, float], ...]:
    """The classic mistake: candidates given as voxel indices (column, row, slice), not mm."""
    x0, y0, z0 = exam.origin
    return tuple((round((x - x0) / PIXEL_MM, 1), round((y - y0) / PIXEL_MM, 1),
                  round((z - z0) / SLICE_MM, 1), p) for x, y, z, p in prediction.candidates)


def nifti_slices_first(exam: VolumeExam, mask: BoolMask) -> bytes:
    """The classic mistake: a slices × rows × columns array saved by nibabel as it is, with the
    series' affine (which is meant for columns × rows × slices)."""
    image = nib.Nifti1Image(np.ascontiguousarray(mask.astype(np.uint8)), exam.affine_ras())
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)
