"""The review viewer's slices: windows against a hand table and pydicom, a synthetic sphere,
reformats of a pydicom-written series read by SimpleITK, the mask and the marks, refusals."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_voi_lut, apply_windowing
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from server.inclusion.render import (
    AUTO,
    PRESETS,
    Mark,
    Window,
    apply_window,
    auto_window,
    preset_for,
    render_slice,
    volume_from_datasets,
    window_values,
)

AIR, SPHERE = -1000.0, 60.0      # HU; 60 is inside soft tissue's window (-160 .. 240)
SHAPE = (12, 20, 24)             # slices, rows, columns
SPACING = (2.0, 1.0, 1.0)        # mm between slices, rows, columns
CENTRE = (6, 10, 12)
RADIUS_MM = 6.0


def png(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.mode == "RGB"
    return np.asarray(image)


@pytest.fixture(scope="module")
def sphere() -> tuple[np.ndarray, np.ndarray]:
    """A sphere of 60 HU in air, 6 mm radius in mm (anisotropic voxels), and its mask."""
    z, y, x = np.indices(SHAPE, dtype=np.float64)
    mm = (((z - CENTRE[0]) * SPACING[0]) ** 2 + ((y - CENTRE[1]) * SPACING[1]) ** 2
          + ((x - CENTRE[2]) * SPACING[2]) ** 2)
    inside = mm <= RADIUS_MM ** 2
    return np.where(inside, SPHERE, AIR).astype(np.float32), inside.astype(np.uint8)


# --- the window -----------------------------------------------------------------------------

def test_window_against_a_hand_table() -> None:
    # soft tissue L 40 W 400: black at or below -160, (x + 160) / 399 * 255 up to 239, white
    w = PRESETS["soft_tissue"]
    hu = np.array([-1000, -160, -159, 39.5, 40, 60, 238, 239, 239.5, 240, 3000])
    expected = np.array([0, 0, 255 / 399, 127.5, 255 * 200 / 399, 255 * 220 / 399,
                         255 * 398 / 399, 255, 255, 255, 255])
    assert np.allclose(window_values(hu, w), expected, atol=1e-9)
    assert apply_window(hu, w).tolist() == [0, 0, 1, 128, 128, 141, 254, 255, 255, 255, 255]
    # lung L -600 W 1500: -1350 black, 149 white, -600.5 mid-grey
    lung = PRESETS["lung"]
    assert window_values(np.array([-1350.0, -600.5, 149.5]), lung).tolist() == [0.0, 127.5,
                                                                               255.0]
    assert (PRESETS["bone"].level, PRESETS["bone"].width) == (400, 1800)
    assert (PRESETS["brain"].level, PRESETS["brain"].width) == (40, 80)


def _windowed_dataset(centre: float, width: float) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = 8          # pydicom's output range is then 0 .. 255
    ds.PixelRepresentation = 0
    ds.WindowCenter = centre
    ds.WindowWidth = width
    ds.VOILUTFunction = "LINEAR"
    return ds


@pytest.mark.parametrize("name", ["soft_tissue", "lung", "bone", "brain"])
def test_window_matches_pydicoms_windowing(name: str) -> None:
    w = PRESETS[name]
    hu = np.linspace(-1500, 2500, 4001)
    hu = np.concatenate([hu, [w.level - w.width / 2, w.level + w.width / 2,
                              w.level - 0.5, w.level + w.width / 2 - 1]])
    ds = _windowed_dataset(w.level, w.width)
    reference = apply_windowing(hu, ds)
    assert np.allclose(window_values(hu, w), reference, atol=1e-6)
    assert np.allclose(window_values(hu, w), apply_voi_lut(hu, ds), atol=1e-6)


def test_custom_and_auto_windows() -> None:
    hu = np.arange(-50.0, 51.0)
    ds = _windowed_dataset(7.0, 33.0)
    assert np.allclose(window_values(hu, Window("custom", 7, 33)), apply_windowing(hu, ds),
                       atol=1e-6)
    mr = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    auto = auto_window(mr)
    low, high = np.percentile(mr, [1, 99])
    assert auto.level == pytest.approx((low + high) / 2)
    assert auto.width == pytest.approx(high - low)
    grey = apply_window(mr, auto)
    assert grey[mr <= low].max() == 0 and grey[mr >= high].min() == 255


# --- the synthetic sphere -------------------------------------------------------------------

def test_axial_slice_of_the_sphere(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    volume, _ = sphere
    image = png(render_slice(volume, CENTRE[0], "axial", "soft_tissue", spacing=SPACING))
    assert image.shape == (20, 24, 3)
    inside = volume[CENTRE[0]] == SPHERE
    grey = round(255 * ((SPHERE - 39.5) / 399 + 0.5))
    assert (image[inside] == grey).all()
    assert (image[~inside] == 0).all()
    # in the lung window (-1350 .. 149) air is a dark grey and the sphere a light one
    lung = png(render_slice(volume, CENTRE[0], "axial", "lung", spacing=SPACING))
    assert (lung[~inside] == round(255 * 350 / 1499)).all()
    assert (lung[inside] == round(255 * ((SPHERE + 600.5) / 1499 + 0.5))).all()
    # a window whose top is below 60 HU shows the sphere white
    white = png(render_slice(volume, CENTRE[0], "axial", (0, 100), spacing=SPACING))
    assert (white[inside] == 255).all() and (white[~inside] == 0).all()


def test_reformats_are_mm_true(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    volume, _ = sphere
    coronal = png(render_slice(volume, CENTRE[1], "coronal", spacing=SPACING))
    sagittal = png(render_slice(volume, CENTRE[2], "sagittal", spacing=SPACING))
    # 12 slices of 2 mm shown as 24 rows of 1 mm
    assert coronal.shape == (24, 24, 3) and sagittal.shape == (24, 20, 3)
    for image, across in ((coronal, 24), (sagittal, 20)):
        lit = image[:, :, 0] > 0
        rows = np.flatnonzero(lit.any(axis=1))
        columns = np.flatnonzero(lit.any(axis=0))
        # the sphere is 12 mm across both ways: as many pixels down as across (one pixel
        # of bilinear edge either way)
        assert abs((rows[-1] - rows[0]) - (columns[-1] - columns[0])) <= 2
        assert across in image.shape


def test_max_side_downscales(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    volume, _ = sphere
    image = png(render_slice(volume, CENTRE[1], "coronal", spacing=SPACING, max_side=12))
    assert image.shape == (12, 12, 3)
    image = png(render_slice(volume, CENTRE[2], "sagittal", spacing=SPACING, max_side=12))
    assert image.shape == (12, 10, 3)


def test_mask_overlay(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    volume, mask = sphere
    colour = (0, 255, 0)
    image = png(render_slice(volume, CENTRE[0], "axial", (0, 100), spacing=SPACING,
                             mask=mask * 3, labels_colours={3: colour}))
    inside = mask[CENTRE[0]].astype(bool)
    # outside the mask the grey is untouched: air black
    assert (image[~inside] == 0).all()
    # inside: white blended 40 % with green (interior) or green itself (outline)
    blend = np.rint(np.array([255.0] * 3) * 0.6 + np.array(colour) * 0.4).astype(np.uint8)
    interior = inside.copy()
    interior[1:-1, 1:-1] &= (inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2]
                             & inside[1:-1, 2:])
    edge = inside & ~interior
    assert edge.any() and interior.any()
    assert (image[interior] == blend).all()
    assert (image[edge] == colour).all()
    # a slice the mask misses has no colour at all
    empty = png(render_slice(volume, 0, "axial", (0, 100), spacing=SPACING, mask=mask * 3,
                             labels_colours={3: colour}))
    assert (empty[:, :, 0] == empty[:, :, 1]).all()


def test_nodule_circle_on_the_slices_it_crosses(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    volume, _ = sphere
    mark = Mark((6.0, 10.0, 12.0), 5.0)     # 5 mm: slices 4 to 8 (2 mm apart) cross it
    yellow = (255, 255, 0)

    def yellow_pixels(index: int) -> np.ndarray:
        image = png(render_slice(volume, index, "axial", "soft_tissue", spacing=SPACING,
                                 marks=[mark]))
        return np.all(image == yellow, axis=2)

    for index in range(SHAPE[0]):
        found = yellow_pixels(index)
        if 4 <= index <= 8:
            assert found.any(), index
        else:
            assert not found.any(), index
    centre = yellow_pixels(6)
    rows, columns = np.nonzero(centre)
    # a circle of 5 mm around (10, 12): its pixels about 5 px away, the centre free
    distance = np.hypot(rows - 10, columns - 12)
    assert distance.min() >= 3 and distance.max() <= 6.5
    assert not centre[10, 12]
    # the sagittal plane through its centre shows it too, off-centre planes do not
    sagittal = png(render_slice(volume, 12, "sagittal", spacing=SPACING, marks=[mark]))
    assert np.all(sagittal == yellow, axis=2).any()
    far = png(render_slice(volume, 20, "sagittal", spacing=SPACING, marks=[mark]))
    assert not np.all(far == yellow, axis=2).any()


def test_marks_follow_the_head_up_reformat(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    volume, _ = sphere
    mark = Mark((2.0, 10.0, 12.0), 3.0)     # low in the stack: near the bottom of a coronal
    yellow = (255, 255, 0)
    image = png(render_slice(volume, 10, "coronal", spacing=SPACING, marks=[mark]))
    rows, columns = np.nonzero(np.all(image == yellow, axis=2))
    # 12 slices on 24 rows, slice 2 upside down is row (11 - 2 + 0.5) * 2 - 0.5 = 18.5
    assert abs((rows.min() + rows.max()) / 2 - 18.5) <= 0.5
    assert abs((columns.min() + columns.max()) / 2 - 12) <= 0.5
    assert rows.max() - rows.min() == pytest.approx(6, abs=1)    # 6 mm across, 1 mm pixels
    down = png(render_slice(volume, 10, "coronal", spacing=SPACING, marks=[mark],
                            slices_upward=False))
    rows, _ = np.nonzero(np.all(down == yellow, axis=2))
    assert abs((rows.min() + rows.max()) / 2 - 4.5) <= 0.5


def test_no_value_is_black() -> None:
    hu = np.array([np.nan, 40.0])
    assert apply_window(hu, PRESETS["soft_tissue"]).tolist() == [0, 128]
    assert apply_window(hu, Window("step", 0, 1)).tolist() == [0, 255]


def test_deterministic(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    volume, mask = sphere
    args = dict(spacing=SPACING, mask=mask, marks=[Mark((6.0, 10.0, 12.0), 4.0)], max_side=16)
    first = render_slice(volume, 5, "coronal", "lung", **args)  # type: ignore[arg-type]
    again = render_slice(volume.copy(), 5, "coronal", "lung", **args)  # type: ignore[arg-type]
    assert first == again
    assert first != render_slice(volume, 6, "coronal", "lung", **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(index=12), r"axial slice 12 is out of range: the volume has 12 axial slices \(0 to 11\)"),
    (dict(index=-1), r"axial slice -1 is out of range"),
    (dict(index=20, axis="coronal"), r"coronal slice 20 is out of range.*20 coronal"),
    (dict(index=24, axis="sagittal"), r"sagittal slice 24 is out of range.*24 sagittal"),
    (dict(index=0, axis="oblique"), r"unknown axis 'oblique'"),
    (dict(index=1.5), r"must be an integer"),
    (dict(index=0, window="liver"), r"unknown window 'liver'"),
    (dict(index=0, window=(40, 0)), r"width must be a number of at least 1"),
    (dict(index=0, spacing=(1.0, 0.0, 1.0)), r"spacing must be three positive numbers"),
    (dict(index=0, mask=np.zeros((12, 20, 23))), r"mask's shape \(12, 20, 23\)"),
    (dict(index=0, max_side=0), r"max_side must be at least 1"),
])
def test_refusals(sphere: tuple[np.ndarray, np.ndarray], kwargs: dict, message: str) -> None:
    volume, _ = sphere
    with pytest.raises(ValueError, match=message):
        render_slice(volume, **kwargs)


def test_refuses_a_flat_array() -> None:
    with pytest.raises(ValueError, match=r"must be 3-D .* not 2-D"):
        render_slice(np.zeros((4, 4)), 0)


# --- a series written by pydicom, read by SimpleITK -----------------------------------------

def _ct_slice(pixels: np.ndarray, z: float, number: int, series: str, study: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.Modality = "CT"
    ds.BodyPartExamined = "CHEST"
    ds.ConvolutionKernel = "B30f"
    ds.PatientID = "render"
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [-10.0, -12.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 2.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -1024
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory,
           sphere: tuple[np.ndarray, np.ndarray]) -> tuple[Path, np.ndarray]:
    volume, _ = sphere
    rng = np.random.default_rng(17)
    hu = volume + rng.integers(-20, 20, size=volume.shape)      # not symmetric any more
    hu[:, :3, :5] = 400                                         # a corner marks orientation
    folder = tmp_path_factory.mktemp("series")
    study, uid = generate_uid(), generate_uid()
    # written in a shuffled order: the reader sorts by position
    for number, k in enumerate(rng.permutation(SHAPE[0]), start=1):
        ds = _ct_slice(hu[k] + 1024, 100.0 + 2.0 * k, number, uid, study)
        ds.save_as(folder / f"{number:03d}.dcm", enforce_file_format=True)
    return folder, hu


def test_hu_and_spacing_from_datasets(series: tuple[Path, np.ndarray]) -> None:
    folder, hu = series
    datasets = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    volume, spacing = volume_from_datasets(datasets)
    assert spacing == (2.0, 1.0, 1.0)
    assert np.array_equal(volume, hu)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    assert np.array_equal(sitk.GetArrayFromImage(image), volume)
    assert image.GetSpacing() == pytest.approx((1.0, 1.0, 2.0))
    assert preset_for(datasets[0]) == PRESETS["lung"]     # BodyPartExamined CHEST


@pytest.mark.parametrize(("axis", "index"), [("axial", 6), ("coronal", 1), ("coronal", 10),
                                             ("sagittal", 2), ("sagittal", 12)])
def test_reformats_match_simpleitk(series: tuple[Path, np.ndarray], axis: str,
                                   index: int) -> None:
    folder, _ = series
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    array = sitk.GetArrayFromImage(image).astype(np.float64)     # (slices, rows, columns)
    # SimpleITK's slice 0 is the lowest along the normal (the feet); the viewer shows the head
    # at the top of a reformat, the last slice first
    if axis == "axial":
        cut = array[index]
    elif axis == "coronal":
        cut = array[::-1, index, :]
    else:
        cut = array[::-1, :, index]
    ds = _windowed_dataset(40, 400)
    expected = np.rint(apply_windowing(cut, ds)).astype(np.uint8)
    datasets = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    volume, _ = volume_from_datasets(datasets)
    # isotropic spacing: the image is the cut itself, pixel for pixel
    shown = png(render_slice(volume, index, axis, "soft_tissue",  # type: ignore[arg-type]
                             spacing=(1.0, 1.0, 1.0)))
    assert shown.shape[:2] == cut.shape
    assert np.array_equal(shown[:, :, 0], expected)
    assert np.array_equal(shown[:, :, 1], expected) and np.array_equal(shown[:, :, 2], expected)
    if axis != "axial":      # the array's own order on request
        down = png(render_slice(volume, index, axis, "soft_tissue",  # type: ignore[arg-type]
                                spacing=(1.0, 1.0, 1.0), slices_upward=False))
        assert np.array_equal(down[:, :, 0], expected[::-1])
    # with the true 2 mm slices a reformat shows each slice on two rows
    if axis != "axial":
        tall = png(render_slice(volume, index, axis, "soft_tissue",  # type: ignore[arg-type]
                                spacing=(2.0, 1.0, 1.0)))
        assert tall.shape[:2] == (2 * cut.shape[0], cut.shape[1])
        sitk_mm = sitk.GetArrayFromImage(image).shape[0] * image.GetSpacing()[2]
        assert tall.shape[0] == sitk_mm


def _header(**keywords: object) -> Dataset:
    ds = Dataset()
    for k, v in keywords.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize(("keywords", "expected"), [
    (dict(Modality="CT", BodyPartExamined="CHEST"), "lung"),
    (dict(Modality="CT", SeriesDescription="Thorax 1.25 mm"), "lung"),
    (dict(Modality="CT", BodyPartExamined="ABDOMEN", ConvolutionKernel="LUNG"), "lung"),
    (dict(Modality="CT", ConvolutionKernel=["Bl57d", "3"]), "lung"),
    (dict(Modality="CT", BodyPartExamined="HEAD"), "brain"),
    (dict(Modality="CT", SeriesDescription="Brain routine"), "brain"),
    (dict(Modality="CT", BodyPartExamined="ABDOMEN", ConvolutionKernel="B30f"), "soft_tissue"),
    (dict(Modality="CT"), "soft_tissue"),
    (dict(Modality="MR", BodyPartExamined="BRAIN"), AUTO),
    (dict(Modality="MR", BodyPartExamined="KNEE"), AUTO),
])
def test_preset_from_headers(keywords: dict, expected: str) -> None:
    chosen = preset_for(_header(**keywords))
    assert chosen == (AUTO if expected == AUTO else PRESETS[expected])


def test_in_plane_aspect_and_a_mask_on_a_reformat(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    volume, mask = sphere
    # rows 2 mm apart, columns 1 mm: an axial image of 40 rows by 24 columns
    image = png(render_slice(volume, 6, "axial", (0, 100), spacing=(1.0, 2.0, 1.0)))
    assert image.shape == (40, 24, 3)
    # the mask on a coronal image: coloured only where the (head-up, row-doubled) mask is
    coronal = png(render_slice(volume, CENTRE[1], "coronal", (0, 100), spacing=SPACING,
                               mask=mask, labels_colours={1: (0, 0, 255)}))
    shown = np.repeat(mask[::-1, CENTRE[1], :], 2, axis=0).astype(bool)
    coloured = coronal[:, :, 0] != coronal[:, :, 2]
    assert np.array_equal(coloured, shown)


def test_reading_refuses_what_is_not_one_stack(series: tuple[Path, np.ndarray]) -> None:
    folder, _ = series
    datasets = [pydicom.dcmread(p) for p in sorted(folder.iterdir())[:3]]
    with pytest.raises(ValueError, match="no slice to read"):
        volume_from_datasets([])
    small = _ct_slice(np.zeros((4, 4)), 500.0, 9, generate_uid(), generate_uid())
    with pytest.raises(ValueError, match=r"is 4×4, the first 20×24: not one stack"):
        volume_from_datasets([*datasets, small])
    twin = pydicom.dcmread(sorted(folder.iterdir())[0])
    with pytest.raises(ValueError, match="share a position"):
        volume_from_datasets([datasets[0], twin])
    with pytest.raises(ValueError, match="share a position"):
        volume_from_datasets([*datasets, twin])
