"""Masks as pydicom, Pillow, nibabel and numpy write them, read back as the same pixels."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
)

from server.evaluators.mask import binarise, mask_stem, read_mask
from server.evaluators.result import Invalid, Problem

from . import jpeg_lossless
from .factory import BoolArray, dicom_mask, nifti_mask, npy_mask, png_mask


def codes(call: object) -> list[str]:
    with pytest.raises(Invalid) as info:
        call()  # type: ignore[operator]
    return [p.code for p in info.value.problems]


@pytest.fixture()
def exam(wide_exam: tuple[Path, BoolArray]) -> tuple[Path, BoolArray]:
    return wide_exam


SHAPE = (40, 56)


@pytest.mark.parametrize("bits", [1, 8, 16])
def test_dicom_written_from_the_exam_reads_raw_values(exam: tuple[Path, BoolArray],
                                                      bits: int) -> None:
    path, mask = exam
    data = dicom_mask(path, mask, bits=bits)
    # The exam's RescaleIntercept (-1024) travels with the mask; it must not be applied.
    assert pydicom.dcmread(io.BytesIO(data)).RescaleIntercept == -1024
    assert np.array_equal(read_mask(data, "x.dcm", SHAPE), mask)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_dicom_compressed_with_pydicom(exam: tuple[Path, BoolArray], syntax: str) -> None:
    path, mask = exam
    data = dicom_mask(path, mask, syntax=syntax)
    assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(read_mask(data, "x.dcm", SHAPE), mask)


def test_dicom_jpeg_lossless(exam: tuple[Path, BoolArray]) -> None:
    path, mask = exam
    ds = pydicom.dcmread(path)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([jpeg_lossless.encode(mask.astype(np.uint8) * 255)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    buffer = io.BytesIO()
    ds.save_as(buffer)
    assert np.array_equal(read_mask(buffer.getvalue(), "x.dcm", SHAPE), mask)


def test_dicom_deflated(exam: tuple[Path, BoolArray]) -> None:
    path, mask = exam
    ds = pydicom.dcmread(io.BytesIO(dicom_mask(path, mask)))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer)
    assert np.array_equal(read_mask(buffer.getvalue(), "x.dcm", SHAPE), mask)


def test_dicom_jpeg_ls_is_decoded_losslessly() -> None:
    # No JPEG-LS encoder is installed: decode pydicom's own JPEG-LS MR slice and check it
    # is refused as not binary with exactly the uncompressed slice's number of values.
    jls = Path(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))  # type: ignore[arg-type]
    plain = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    with pytest.raises(Invalid) as info:
        read_mask(jls.read_bytes(), "mr.dcm", (64, 64))
    [problem] = info.value.problems
    assert problem.code == "not_binary"
    assert f"has {len(np.unique(plain.pixel_array))} distinct values" in problem.message
    assert "CT image itself" in problem.message


def test_dicom_undecodable_syntax_is_named(exam: tuple[Path, BoolArray]) -> None:
    path, mask = exam
    ds = pydicom.dcmread(io.BytesIO(dicom_mask(path, mask)))
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(Invalid) as info:
        read_mask(buffer.getvalue(), "x.dcm", SHAPE)
    [problem] = info.value.problems
    assert problem.code == "unsupported_compression"
    assert "MPEG2" in problem.message and "1.2.840.10008.1.2.4.100" in problem.message


@pytest.mark.parametrize(("mode", "value"), [("L", 255), ("L", 1), ("1", 1), ("I;16", 65535),
                                            ("I;16", 1), ("P", 1)])
def test_png_modes(exam: tuple[Path, BoolArray], mode: str, value: int) -> None:
    _, mask = exam
    data = png_mask(mask, mode=mode, value=value)
    assert np.array_equal(read_mask(data, "0042.png", SHAPE), mask)


def test_png_gray_stored_as_rgb(exam: tuple[Path, BoolArray]) -> None:
    _, mask = exam
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).convert("RGB").save(buffer, "PNG")
    assert np.array_equal(read_mask(buffer.getvalue(), "a.png", SHAPE), mask)


def test_png_color_is_refused(exam: tuple[Path, BoolArray]) -> None:
    _, mask = exam
    rgb = np.zeros((*SHAPE, 3), np.uint8)
    rgb[mask] = (255, 0, 0)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    assert codes(lambda: read_mask(buffer.getvalue(), "a.png", SHAPE)) == ["not_binary"]


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("slab", [False, True])
def test_nifti_as_nibabel_saves_a_slice(exam: tuple[Path, BoolArray], gz: bool,
                                        slab: bool) -> None:
    _, mask = exam
    name = "a.nii.gz" if gz else "a.nii"
    assert np.array_equal(read_mask(nifti_mask(mask, gz=gz, slab=slab), name, SHAPE), mask)


def test_nifti_without_orientation_on_a_non_square_exam_is_read_by_its_shape(
        exam: tuple[Path, BoolArray]) -> None:
    import nibabel as nib

    _, mask = exam
    for array, order in ((mask, "rows × columns"), (mask.T, "x = columns, y = rows")):
        data = nib.Nifti1Image(array.astype(np.uint8), np.eye(4)).to_bytes()
        notes: list = []
        assert np.array_equal(read_mask(data, "a.nii", SHAPE, "0042", notes), mask)
        [note] = notes
        assert note.code == "orientation_from_shape" and order in note.message
        assert note.id == "0042"


def test_nifti_scaling_is_not_applied(exam: tuple[Path, BoolArray]) -> None:
    import nibabel as nib

    _, mask = exam
    image = nib.Nifti1Image(mask.astype(np.uint8).T, np.eye(4))
    image.header.set_slope_inter(1.0, -1024.0)
    assert np.array_equal(read_mask(image.to_bytes(), "a.nii", SHAPE), mask)


def test_nifti_gzip_bomb_stops_early() -> None:
    bomb = gzip.compress(b"\x00" * (8 * 1024 * 1024), mtime=0)
    assert codes(lambda: read_mask(bomb, "a.nii.gz", (8, 8))) == ["too_large"]


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int16", "float32", "float64"])
def test_npy_dtypes(exam: tuple[Path, BoolArray], dtype: str) -> None:
    _, mask = exam
    assert np.array_equal(read_mask(npy_mask(mask, dtype), "a.npy", SHAPE), mask)


def test_npy_fortran_order_and_singleton_axes(exam: tuple[Path, BoolArray]) -> None:
    _, mask = exam
    for array in (np.asfortranarray(mask.astype(np.uint8)), mask[np.newaxis], mask[..., None]):
        buffer = io.BytesIO()
        np.save(buffer, array)
        assert np.array_equal(read_mask(buffer.getvalue(), "a.npy", SHAPE), mask)


def test_npy_pickle_is_refused() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    assert codes(lambda: read_mask(buffer.getvalue(), "a.npy", (1, 1))) == ["unsupported_format"]


def test_shape_is_checked_before_decoding(exam: tuple[Path, BoolArray]) -> None:
    with pytest.raises(Invalid) as info:
        read_mask(png_mask(np.zeros((256, 256), bool)), "0042.png", (512, 512), "0042")
    [problem] = info.value.problems
    assert problem.message == "mask 0042.png is 256×256, the exam is 512×512"
    assert problem.id == "0042"


@pytest.mark.parametrize(
    ("values", "ok"),
    [([0, 0], True), ([0, 7], True), ([7, 7], True), ([-0.0, 0.0], True), ([0.0, 0.5], True),
     ([0, 1, 2], False), ([1, 2], False), ([0.0, np.nan], False), ([-1024, -1023], False)],
)
def test_binarise_accepts_zero_and_one_other_value(values: list[float], ok: bool) -> None:
    raw = np.array(values)
    if ok:
        assert np.array_equal(binarise(raw, "m"), raw.astype(np.float64) != 0)
    else:
        assert codes(lambda: binarise(raw, "m")) == ["not_binary"]


def test_mask_stem() -> None:
    assert mask_stem("a/b/0042.nii.gz") == "0042"
    assert mask_stem("0042.PNG") == "0042"
    assert mask_stem("case.1.npy") == "case.1"
    assert mask_stem("surfaces.csv") is None


@pytest.mark.parametrize("implicit", [True, False])
def test_dicom_without_file_meta(exam: tuple[Path, BoolArray], implicit: bool) -> None:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    path, mask = exam
    ds = pydicom.dcmread(io.BytesIO(dicom_mask(path, mask)))
    bare = pydicom.Dataset({element.tag: element for element in ds})
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, implicit
    write_dataset(out, bare)
    assert np.array_equal(read_mask(out.getvalue(), "x.dcm", SHAPE), mask)


def test_deflated_dicom_bomb_stops_early(exam: tuple[Path, BoolArray]) -> None:
    path, mask = exam
    ds = pydicom.dcmread(io.BytesIO(dicom_mask(path, mask)))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.add_new(0x00091010, "OB", bytes(20 * 1024 * 1024))  # private padding: zeros deflate well
    buffer = io.BytesIO()
    ds.save_as(buffer)
    assert len(buffer.getvalue()) < 100_000
    assert codes(lambda: read_mask(buffer.getvalue(), "x.dcm", SHAPE)) == ["too_large"]


def _rescaled_dicom(exam: Path, stored: np.ndarray, intercept: str | None) -> bytes:
    ds = pydicom.dcmread(exam)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = stored.astype(np.uint16).tobytes()
    if intercept is None:
        del ds.RescaleIntercept
        del ds.RescaleSlope
    else:
        ds.RescaleIntercept = intercept
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_dicom_stored_without_zero_is_read_rescaled_when_that_gives_the_zero(
        exam: tuple[Path, BoolArray]) -> None:
    path, mask = exam
    stored = mask.astype(np.int32) + 1024
    assert np.array_equal(read_mask(_rescaled_dicom(path, stored, "-1024"), "m.dcm", SHAPE), mask)
    # An empty mask written this way is all 1024: empty once rescaled, not all muscle.
    empty = _rescaled_dicom(path, np.full(SHAPE, 1024), "-1024")
    assert not read_mask(empty, "m.dcm", SHAPE).any()


@pytest.mark.parametrize("intercept", [None, "-1000"])
def test_dicom_stored_without_zero_stays_strict_otherwise(exam: tuple[Path, BoolArray],
                                                          intercept: str | None) -> None:
    path, mask = exam
    data = _rescaled_dicom(path, mask.astype(np.int32) + 1024, intercept)
    with pytest.raises(Invalid) as info:
        read_mask(data, "m.dcm", SHAPE)
    [problem] = info.value.problems
    assert problem.code == "not_binary" and "values 1024, 1025 but no 0" in problem.message


def _png_array(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("color", [(0, 0, 0), (255, 0, 0)])
def test_png_with_the_mask_only_in_alpha_is_read_from_alpha(exam: tuple[Path, BoolArray],
                                                            color: tuple[int, int, int]) -> None:
    _, mask = exam
    rgba = np.zeros((*SHAPE, 4), np.uint8)
    rgba[..., :3] = color
    rgba[..., 3] = mask * 200
    notes: list[Problem] = []
    assert np.array_equal(read_mask(_png_array(rgba, "RGBA"), "a.png", SHAPE, "7", notes), mask)
    assert [(n.code, n.id) for n in notes] == [("read_from_alpha", "7")]


def test_png_rgba_gray_with_opaque_alpha_reads_the_gray(exam: tuple[Path, BoolArray]) -> None:
    _, mask = exam
    gray = mask.astype(np.uint8) * 255
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    notes: list[Problem] = []
    assert np.array_equal(read_mask(_png_array(rgba, "RGBA"), "a.png", SHAPE, None, notes), mask)
    assert notes == []


def test_png_whose_colour_and_alpha_both_vary_stays_strict(exam: tuple[Path, BoolArray]) -> None:
    _, mask = exam
    rgba = np.zeros((*SHAPE, 4), np.uint8)
    rgba[mask] = (255, 0, 0, 255)
    rgba[~mask] = (0, 0, 255, 80)
    assert codes(lambda: read_mask(_png_array(rgba, "RGBA"), "a.png", SHAPE)) == ["not_binary"]


def test_a_probability_map_is_told_to_threshold(exam: tuple[Path, BoolArray]) -> None:
    _, mask = exam
    probabilities = np.clip(mask * 0.8 + np.random.default_rng(0).random(SHAPE) * 0.2, 0, 1)
    with pytest.raises(Invalid) as info:
        read_mask(npy_mask(probabilities, "float32"), "p.npy", SHAPE)
    [problem] = info.value.problems
    assert "probability map: threshold it" in problem.message
    assert "CT image" not in problem.message
    soft = (mask * 255).astype(np.uint8)
    soft[np.random.default_rng(1).random(SHAPE) < 0.05] = 128  # anti-aliased edges
    soft[0, :40] = np.arange(40) * 6
    with pytest.raises(Invalid) as info:
        read_mask(_png_array(soft, "L"), "s.png", SHAPE)
    assert "threshold it" in info.value.problems[0].message


def test_a_multi_segment_dicom_seg_names_its_segments(exam: tuple[Path, BoolArray]) -> None:
    from pydicom.dataset import Dataset

    path, mask = exam
    ds = pydicom.dcmread(io.BytesIO(dicom_mask(path, mask)))
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    segments = []
    for number, label in ((1, "Muscle"), (2, "Fat")):
        item = Dataset()
        item.SegmentNumber, item.SegmentLabel = number, label
        segments.append(item)
    ds.SegmentSequence = segments
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(Invalid) as info:
        read_mask(buffer.getvalue(), "x.dcm", (32, 32))
    assert [p.code for p in info.value.problems] == ["extra_frames", "wrong_shape"]
    assert "1 'Muscle', 2 'Fat'" in info.value.problems[0].message


def test_pytorch_and_pickle_masks_are_told_what_to_save() -> None:
    for name in ("m.pt", "m.pth", "m.pkl"):
        with pytest.raises(Invalid) as info:
            read_mask(b"\x80\x02", name, SHAPE)
        [problem] = info.value.problems
        assert problem.code == "unsupported_format" and "numpy.save" in problem.message
