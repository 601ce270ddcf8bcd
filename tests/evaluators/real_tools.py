"""A corpus written by the tools teams use, generated at test time into a temporary folder.

Three released exams with full geometry (ImageOrientationPatient, ImagePositionPatient,
PixelSpacing, FrameOfReferenceUID, the blanked patient and study attributes of an anonymized
release): square and axial, non-square with unequal spacing, and square with a prone patient
(rows and columns running the other way). Each mask writer saves a prediction per exam the way
its users do; `MASK_WRITERS` lists them with what scoring must find. Surfaces tables come from
pandas, openpyxl and xlsxwriter.

Run it alone to keep a copy:  .venv/bin/python -m tests.evaluators.real_tools OUT_DIR
"""

from __future__ import annotations

import io
import locale
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

BoolArray = npt.NDArray[np.bool_]
UID_ROOT = "1.2.826.0.1.3680043.10.1071.13."
HU_WINDOW = (-29.0, 150.0)


@dataclass(frozen=True)
class ExamSpec:
    id: str
    shape: tuple[int, int]  # rows, columns
    spacing: tuple[float, float]  # between rows, between columns (mm)
    orientation: tuple[float, ...]  # ImageOrientationPatient
    position: tuple[float, float, float]  # ImagePositionPatient


# 64 pixels over a 400 mm field of view: coarse, but the areas are those of real L3 muscle
# (10 000–20 000 mm²), so surfaces are written with thousands separators as real ones are.
EXAMS = (
    ExamSpec("AX-SQ", (64, 64), (6.25, 6.25), (1, 0, 0, 0, 1, 0), (-196.875, -210.0, -412.5)),
    ExamSpec("AX-WIDE", (48, 64), (7.0, 6.0), (1, 0, 0, 0, 1, 0), (-189.0, -160.0, -430.0)),
    ExamSpec("PRONE", (64, 64), (6.5, 6.5), (-1, 0, 0, 0, -1, 0), (205.0, 190.0, -405.0)),
)


@dataclass(frozen=True)
class Exam:
    spec: ExamSpec
    path: Path  # the released DICOM
    hu: npt.NDArray[np.int16]
    muscle: BoolArray  # the truth mask

    @property
    def id(self) -> str:
        return self.spec.id


def phantom(shape: tuple[int, int], seed: int) -> tuple[npt.NDArray[np.int16], BoolArray]:
    """A slice whose muscle lies only in its upper right: read transposed or flipped, a mask
    falls on fat and air, outside the HU window."""
    rng = np.random.default_rng(seed)
    rows, columns = shape
    r, c = np.mgrid[0:rows, 0:columns].astype(np.float64)
    body = ((r - rows / 2) / (rows * 0.47)) ** 2 + ((c - columns / 2) / (columns * 0.47)) ** 2 < 1
    hu = np.full(shape, -1000.0)
    hu[body] = -100.0  # fat
    bar = (r >= rows * 0.12) & (r < rows * 0.30) & (c >= columns * 0.55) & (c < columns * 0.92)
    drop = (r >= rows * 0.30) & (r < rows * 0.48) & (c >= columns * 0.76) & (c < columns * 0.90)
    muscle = (bar | drop) & body
    hu[muscle] = 48.0
    hu += rng.normal(0, 8, shape)
    # Intramuscular fat: truth pixels below the window, which the HU rule removes.
    hu[muscle & (rng.random(shape) < 0.04)] = -70.0
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16), muscle


def write_exam_dicom(spec: ExamSpec, hu: npt.NDArray[np.int16], path: Path) -> None:
    """A CT slice as an anonymized release holds it, with its full geometry."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(UID_ROOT, entropy_srcs=[spec.id])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                    "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        setattr(ds, keyword, "")
    ds.StudyInstanceUID = generate_uid(UID_ROOT, entropy_srcs=[spec.id, "study"])
    ds.SeriesInstanceUID = generate_uid(UID_ROOT, entropy_srcs=[spec.id, "series"])
    ds.FrameOfReferenceUID = generate_uid(UID_ROOT, entropy_srcs=[spec.id, "frame"])
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", "1", "1"
    ds.PatientPosition = "FFP" if spec.orientation[0] < 0 else "FFS"
    ds.ImageOrientationPatient = [f"{v:g}" for v in spec.orientation]
    ds.ImagePositionPatient = [f"{v:g}" for v in spec.position]
    ds.PixelSpacing = [f"{v:g}" for v in spec.spacing]
    ds.SliceThickness = "5"
    ds.Rows, ds.Columns = spec.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ds.PixelData = (hu.astype(np.int32) + 1024).astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_truth(folder: Path) -> dict[str, Exam]:
    """truth/images/<id>.dcm (the released exams) and truth/masks/<id>.png."""
    exams = {}
    for n, spec in enumerate(EXAMS):
        hu, muscle = phantom(spec.shape, seed=100 + n)
        path = folder / "images" / f"{spec.id}.dcm"
        write_exam_dicom(spec, hu, path)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(muscle.astype(np.uint8)).save(folder / "masks" / f"{spec.id}.png")
        exams[spec.id] = Exam(spec, path, hu, muscle)
    return exams


def prediction(exam: Exam, seed: int) -> BoolArray:
    """A good model's mask: the truth with some pixels near it changed."""
    rng = np.random.default_rng(seed)
    out = exam.muscle.copy()
    rows = rng.integers(0, exam.spec.shape[0], 60)
    columns = rng.integers(0, exam.spec.shape[1], 60)
    out[rows, columns] = ~out[rows, columns]
    return out


# -- mask writers: (exam, prediction, workdir) -> (member suffix, bytes) ----------------------

Writer = Callable[[Exam, BoolArray, Path], tuple[str, bytes]]


def _sitk_nifti(image: object, work: Path) -> bytes:
    import SimpleITK as sitk

    path = work / "mask.nii.gz"
    sitk.WriteImage(image, str(path))
    return path.read_bytes()


def sitk_with_geometry(exam: Exam, pred: BoolArray, work: Path) -> tuple[str, bytes]:
    """nnU-Net's way: the label written with the image's geometry."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(exam.path))
    mask = sitk.GetImageFromArray(pred.astype(np.uint8)[np.newaxis])
    mask.CopyInformation(image)
    return ".nii.gz", _sitk_nifti(mask, work)


def sitk_without_geometry(exam: Exam, pred: BoolArray, work: Path) -> tuple[str, bytes]:
    import SimpleITK as sitk

    return ".nii.gz", _sitk_nifti(sitk.GetImageFromArray(pred.astype(np.uint8)), work)


def sitk_edited(edit: Callable[[object], None]) -> Writer:
    def write(exam: Exam, pred: BoolArray, work: Path) -> tuple[str, bytes]:
        import SimpleITK as sitk

        image = sitk.ReadImage(str(exam.path))
        mask = sitk.GetImageFromArray(pred.astype(np.uint8)[np.newaxis])
        mask.CopyInformation(image)
        edit(mask)
        return ".nii.gz", _sitk_nifti(mask, work)

    return write


def _rotate_direction(mask: object) -> None:
    angle = np.radians(10.0)
    turn = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                     [0, 0, 1]])
    direction = np.array(mask.GetDirection()).reshape(3, 3)  # type: ignore[attr-defined]
    mask.SetDirection(tuple((turn @ direction).reshape(-1)))  # type: ignore[attr-defined]


def _shift_origin(mask: object) -> None:
    x, y, z = mask.GetOrigin()  # type: ignore[attr-defined]
    mask.SetOrigin((x + 50.0, y, z))  # type: ignore[attr-defined]


SITK_EDITS: dict[str, Callable[[object], None]] = {
    "unit_spacing": lambda m: m.SetSpacing((1.0, 1.0, 1.0)),  # type: ignore[attr-defined]
    # The exam's axes with the origin at 0: indistinguishable from ITK's default, no geometry.
    "origin_zero": lambda m: m.SetOrigin((0.0, 0.0, 0.0)),  # type: ignore[attr-defined]
    "origin_shifted": _shift_origin,
    "rotated": _rotate_direction,
}

DIHEDRAL: dict[str, Callable[[npt.NDArray], npt.NDArray]] = {
    "identity": lambda a: a, "transpose": lambda a: a.T,
    "flip_rows": lambda a: a[::-1, :], "flip_columns": lambda a: a[:, ::-1],
    "rotate": lambda a: a[::-1, ::-1], "transpose_flip_rows": lambda a: a.T[::-1, :],
    "transpose_flip_columns": lambda a: a.T[:, ::-1], "anti": lambda a: a.T[::-1, ::-1],
}


@dataclass(frozen=True)
class Conversion:
    """What dcm2niix wrote for an exam: its header and how its array relates to pixel_array."""

    header: nib.Nifti1Header
    affine: npt.NDArray[np.float64]
    layout: str  # a DIHEDRAL key: dcm2niix's array[:, :, 0] == DIHEDRAL[layout](hu)


def dcm2niix(exam: Exam, work: Path) -> Conversion:
    """Run the dcm2niix converter on a series folder holding the exam."""
    series = work / "series"
    shutil.rmtree(series, ignore_errors=True)
    series.mkdir(parents=True)
    shutil.copy(exam.path, series / "slice.dcm")
    binary = shutil.which("dcm2niix", path=str(Path(sys.executable).parent)) or "dcm2niix"
    subprocess.run([binary, "-z", "n", "-b", "n", "-f", "converted", "-o", str(work),
                    str(series)], check=True, capture_output=True)
    image = nib.load(work / "converted.nii")
    data = np.asarray(image.dataobj)
    plane = data.reshape(data.shape[0], data.shape[1])
    hu = exam.hu.astype(np.float64)
    layouts = [k for k, f in DIHEDRAL.items() if f(hu).shape == plane.shape
               and np.array_equal(f(hu), plane)]
    assert len(layouts) == 1, f"dcm2niix wrote an array that is no view of the exam: {layouts}"
    return Conversion(image.header.copy(), image.affine, layouts[0])


def dcm2niix_mask(exam: Exam, pred: BoolArray, work: Path) -> tuple[str, bytes]:
    """A mask written like the image dcm2niix produced: its array layout and its affine."""
    conv = dcm2niix(exam, work)
    data = DIHEDRAL[conv.layout](pred.astype(np.uint8))[:, :, np.newaxis]
    image = nib.Nifti1Image(data, conv.affine, header=conv.header)
    image.set_data_dtype(np.uint8)
    image.header.set_slope_inter(1.0, 0.0)
    return ".nii", image.to_bytes()


def dcm2niix_affine_with_plain_transpose(exam: Exam, pred: BoolArray,
                                         work: Path) -> tuple[str, bytes]:
    """A mistake: the affine of the converted image, but the array as mask.T (dcm2niix's
    own array is also flipped, so this one reads upside down)."""
    conv = dcm2niix(exam, work)
    image = nib.Nifti1Image(pred.astype(np.uint8).T[:, :, np.newaxis], conv.affine)
    return ".nii", image.to_bytes()


def nibabel_naive(exam: Exam, pred: BoolArray, work: Path) -> tuple[str, bytes]:
    """The pixel_array-shaped array with an identity affine."""
    return ".nii.gz", _gz(nib.Nifti1Image(pred.astype(np.uint8), np.eye(4)).to_bytes())


def nibabel_transposed(exam: Exam, pred: BoolArray, work: Path) -> tuple[str, bytes]:
    """The NIfTI convention by hand: x = columns, y = rows, identity affine."""
    return ".nii.gz", _gz(nib.Nifti1Image(pred.astype(np.uint8).T, np.eye(4)).to_bytes())


def _gz(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, mtime=0)


def highdicom_seg(exam: Exam, pred: BoolArray, work: Path) -> tuple[str, bytes]:
    return ".dcm", _seg(exam, [pred])


def highdicom_two_segments(exam: Exam, pred: BoolArray, work: Path) -> tuple[str, bytes]:
    fat = (exam.hu < -29) & (exam.hu > -200)
    return ".dcm", _seg(exam, [pred, fat & ~pred])


def _seg(exam: Exam, segments: list[BoolArray]) -> bytes:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    source = pydicom.dcmread(exam.path)
    kinds = [("muscle", codes.SCT.SkeletalMuscle), ("fat", codes.SCT.AdiposeTissue)]
    descriptions = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=label, segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="team-model", version="1", family=codes.DCM.ArtificialIntelligence),
    ) for n, (label, kind) in enumerate(kinds[: len(segments)], start=1)]
    labels = np.zeros(exam.spec.shape, np.uint8)
    for n, segment in enumerate(segments, start=1):
        labels[segment] = n
    with warnings.catch_warnings():
        # highdicom says when an empty mask makes it keep the (empty) frame.
        warnings.simplefilter("ignore", UserWarning)
        seg = hd.seg.Segmentation(
            source_images=[source], pixel_array=labels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=99,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Team",
            manufacturer_model_name="model", software_versions="1", device_serial_number="1",
        )
    out = io.BytesIO()
    seg.save_as(out)
    return out.getvalue()


def dicom_copy(bits: int, *, rescaled: bool = False, keep_rescale: bool = True) -> Writer:
    """pydicom: the exam's own file with its pixels replaced by the mask."""

    def write(exam: Exam, pred: BoolArray, work: Path) -> tuple[str, bytes]:
        ds = pydicom.dcmread(exam.path)
        values = pred.astype(np.int32)
        if rescaled:  # stored so that the copied Rescale Intercept (-1024) gives back 0/1
            values = values + 1024
        ds.BitsAllocated = ds.BitsStored = bits
        ds.HighBit, ds.PixelRepresentation = bits - 1, 0
        ds.PixelData = values.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
        if not keep_rescale:
            del ds.RescaleIntercept
            del ds.RescaleSlope
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return ".dcm", out.getvalue()

    return write


def sitk_dicom_with_ct_tags(exam: Exam, pred: BoolArray, work: Path) -> tuple[str, bytes]:
    """SimpleITK int16 with the CT's tags copied: GDCM applies the copied Rescale Intercept,
    so 0/1 are stored as 1024/1025."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(exam.path))
    reader.ReadImageInformation()
    image = sitk.ReadImage(str(exam.path))
    mask = sitk.GetImageFromArray(pred.astype(np.int16)[np.newaxis])
    mask.CopyInformation(image)
    for key in reader.GetMetaDataKeys():
        mask.SetMetaData(key, reader.GetMetaData(key))
    path = work / "mask.dcm"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    # GDCM's DICOM writer switches the process's locale to "C", and leaves it: the rest of
    # the test run would then read text files as ASCII.
    saved = locale.setlocale(locale.LC_ALL)
    try:
        writer.Execute(mask)
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    return ".dcm", path.read_bytes()


def png(mode: str) -> Writer:
    """Pillow, in the modes teams save masks and overlays in."""

    def write(exam: Exam, pred: BoolArray, work: Path) -> tuple[str, bytes]:
        on = pred.astype(np.uint8)
        if mode == "L01":
            image = Image.fromarray(on)
        elif mode == "L255":
            image = Image.fromarray(on * 255)
        elif mode == "I16":
            image = Image.fromarray(pred.astype(np.uint16) * 65535)
        elif mode == "alpha":  # an overlay: black everywhere, the mask in the alpha
            rgba = np.zeros((*pred.shape, 4), np.uint8)
            rgba[..., 3] = on * 255
            image = Image.fromarray(rgba, "RGBA")
        elif mode == "LA_alpha":
            la = np.zeros((*pred.shape, 2), np.uint8)
            la[..., 1] = on * 255
            image = Image.fromarray(la, "LA")
        elif mode == "RGBA_gray":
            gray = on * 255
            image = Image.fromarray(np.dstack([gray, gray, gray, np.full_like(gray, 255)]),
                                    "RGBA")
        else:  # pragma: no cover - a typo in the table below
            raise ValueError(mode)
        out = io.BytesIO()
        image.save(out, format="PNG")
        return ".png", out.getvalue()

    return write


def sitk_probability_map(exam: Exam, pred: BoolArray, work: Path) -> tuple[str, bytes]:
    """A model's softmax, saved before thresholding."""
    import SimpleITK as sitk

    rng = np.random.default_rng(5)
    probabilities = np.clip(pred * 0.9 + rng.random(pred.shape) * 0.1, 0, 1).astype(np.float32)
    image = sitk.GetImageFromArray(probabilities[np.newaxis])
    image.CopyInformation(sitk.ReadImage(str(exam.path)))
    return ".nii.gz", _sitk_nifti(image, work)


@dataclass(frozen=True)
class MaskWriter:
    """A writer and what scoring its masks must give."""

    write: Writer
    # How the mask is read relative to the prediction, per exam id ("identity" if absent):
    # a DIHEDRAL key, for files that are read by a documented assumption.
    read_as: dict[str, str]
    warnings: frozenset[str] = frozenset()
    errors: frozenset[str] = frozenset()


SQUARE = ("AX-SQ", "PRONE")
NO_ORIENTATION = frozenset({"orientation_assumed", "orientation_from_shape"})

MASK_WRITERS: dict[str, MaskWriter] = {
    "sitk_with_geometry": MaskWriter(sitk_with_geometry, {}),
    "sitk_without_geometry": MaskWriter(sitk_without_geometry, {}, NO_ORIENTATION),
    "sitk_unit_spacing": MaskWriter(sitk_edited(SITK_EDITS["unit_spacing"]), {},
                                    frozenset({"spacing_mismatch"})),
    "sitk_origin_zero": MaskWriter(sitk_edited(SITK_EDITS["origin_zero"]), {}, NO_ORIENTATION),
    "sitk_origin_shifted": MaskWriter(sitk_edited(SITK_EDITS["origin_shifted"]), {},
                                      frozenset({"origin_mismatch"})),
    "sitk_rotated": MaskWriter(sitk_edited(SITK_EDITS["rotated"]), {},
                               errors=frozenset({"oblique_mask"})),
    "sitk_probability_map": MaskWriter(sitk_probability_map, {},
                                       errors=frozenset({"not_binary"})),
    "sitk_dicom_with_ct_tags": MaskWriter(sitk_dicom_with_ct_tags, {}),
    "dcm2niix": MaskWriter(dcm2niix_mask, {}),
    # Read upside down on every exam: the HU window shows it.
    "dcm2niix_affine_plain_transpose": MaskWriter(
        dcm2niix_affine_with_plain_transpose, {i.id: "flip_rows" for i in EXAMS},
        frozenset({"outside_hu_window", "looks_flipped"})),
    # Square exams cannot tell; read as x = columns, it is transposed there, and the HU
    # window shows it.
    "nibabel_naive": MaskWriter(nibabel_naive, dict.fromkeys(SQUARE, "transpose"),
                                NO_ORIENTATION | {"outside_hu_window", "looks_transposed"}),
    "nibabel_transposed": MaskWriter(nibabel_transposed, {}, NO_ORIENTATION),
    "highdicom_seg": MaskWriter(highdicom_seg, {}),
    "highdicom_two_segments": MaskWriter(highdicom_two_segments, {},
                                         errors=frozenset({"extra_frames"})),
    "dicom_8bit": MaskWriter(dicom_copy(8), {}),
    "dicom_8bit_no_rescale_tags": MaskWriter(dicom_copy(8, keep_rescale=False), {}),
    "dicom_16bit": MaskWriter(dicom_copy(16), {}),
    "dicom_16bit_rescaled": MaskWriter(dicom_copy(16, rescaled=True), {}),
    "png_0_1": MaskWriter(png("L01"), {}),
    "png_0_255": MaskWriter(png("L255"), {}),
    "png_16bit": MaskWriter(png("I16"), {}),
    "png_alpha_only": MaskWriter(png("alpha"), {}, frozenset({"read_from_alpha"})),
    "png_gray_alpha_only": MaskWriter(png("LA_alpha"), {}, frozenset({"read_from_alpha"})),
    "png_rgba_gray": MaskWriter(png("RGBA_gray"), {}),
}


def write_masks(writer: MaskWriter, exams: dict[str, Exam], preds: dict[str, BoolArray],
                work: Path) -> dict[str, bytes]:
    members = {}
    for exam_id, exam in exams.items():
        folder = work / exam_id
        folder.mkdir(parents=True, exist_ok=True)
        suffix, data = writer.write(exam, preds[exam_id], folder)
        members[f"masks/{exam_id}{suffix}"] = data
    return members


# -- surfaces tables -----------------------------------------------------------------------

def surfaces_pandas_csv(values: dict[str, float]) -> tuple[str, bytes]:
    import pandas as pd

    frame = pd.DataFrame({"id": list(values), "surface_mm2": list(values.values())})
    return "surfaces.csv", frame.to_csv(index=False).encode()


def surfaces_pandas_decimal_comma(values: dict[str, float]) -> tuple[str, bytes]:
    import pandas as pd

    frame = pd.DataFrame({"id": list(values), "surface_mm2": list(values.values())})
    return "surfaces.csv", frame.to_csv(index=False, sep=";", decimal=",").encode()


def surfaces_openpyxl(values: dict[str, float]) -> tuple[str, bytes]:
    import pandas as pd

    frame = pd.DataFrame({"id": list(values), "surface_mm2": list(values.values())})
    out = io.BytesIO()
    frame.to_excel(out, index=False, engine="openpyxl")
    return "surfaces.xlsx", out.getvalue()


def surfaces_xlsxwriter_grouped_format(values: dict[str, float]) -> tuple[str, bytes]:
    """Numbers shown as 12,827 by a cell format: still numbers in the file."""
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("Surfaces")
    grouped = book.add_format({"num_format": "#,##0"})
    sheet.write_row(0, 0, ["id", "surface_mm2"])
    for row, (exam_id, value) in enumerate(values.items(), start=1):
        sheet.write_string(row, 0, exam_id)
        sheet.write_number(row, 1, value, grouped)
    book.close()
    return "surfaces.xlsx", out.getvalue()


def surfaces_xlsxwriter_text(values: dict[str, float]) -> tuple[str, bytes]:
    """Whole numbers typed as text with a thousands separator ("12,827")."""
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet()
    for row, (exam_id, value) in enumerate(values.items()):
        sheet.write_string(row, 0, exam_id)
        sheet.write_string(row, 1, f"{round(value):,}")
    book.close()
    return "surfaces.xlsx", out.getvalue()


def surfaces_excel_csv_grouped(values: dict[str, float]) -> tuple[str, bytes]:
    """Excel's CSV of cells formatted #,##0: the shown text, quoted."""
    text = "id,surface_mm2\r\n" + "".join(f'{i},"{round(v):,}"\r\n' for i, v in values.items())
    return "surfaces.csv", text.encode()


def surfaces_german_grouped(values: dict[str, float]) -> tuple[str, bytes]:
    """A German locale's CSV: semicolons, and "12.827" for twelve thousand."""
    text = "id;surface_mm2\r\n" + "".join(
        f"{i};{round(v):,}\r\n".replace(",", ".") for i, v in values.items())
    return "surfaces.csv", text.encode("cp1252")


@dataclass(frozen=True)
class SurfacesWriter:
    write: Callable[[dict[str, float]], tuple[str, bytes]]
    rounded: bool  # the file holds whole numbers only
    warnings: frozenset[str] = frozenset()


SURFACE_WRITERS: dict[str, SurfacesWriter] = {
    "pandas_csv": SurfacesWriter(surfaces_pandas_csv, False),
    "pandas_decimal_comma": SurfacesWriter(surfaces_pandas_decimal_comma, False),
    "pandas_openpyxl": SurfacesWriter(surfaces_openpyxl, False),
    "xlsxwriter_grouped_format": SurfacesWriter(surfaces_xlsxwriter_grouped_format, False),
    "xlsxwriter_grouped_text": SurfacesWriter(surfaces_xlsxwriter_text, True,
                                              frozenset({"number_read_from_masks"})),
    "excel_csv_grouped": SurfacesWriter(surfaces_excel_csv_grouped, True,
                                        frozenset({"number_read_from_masks"})),
    "german_grouped": SurfacesWriter(surfaces_german_grouped, True,
                                     frozenset({"number_read_from_masks"})),
}


def main(out: Path) -> None:
    """Write the truth and every writer's masks under `out`, to look at them."""
    exams = write_truth(out / "truth")
    preds = {i: prediction(e, n) for n, (i, e) in enumerate(exams.items())}
    for name, writer in MASK_WRITERS.items():
        for member, data in write_masks(writer, exams, preds, out / "work" / name).items():
            target = out / "masks" / name / member
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    print(f"{len(MASK_WRITERS)} mask writers written under {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
