"""3-D exams and label masks read from files real tools write, placed on the exam's grid."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest

from server.evaluators.result import Invalid, Problem
from server.evaluators.volume import (
    VolumeGrid,
    exam_grid,
    read_dicom_mask,
    read_nifti,
    read_series_mask,
)

from .volumes import (
    LabelVolume,
    SeriesSpec,
    ct_volume,
    highdicom_seg,
    labels_phantom,
    nifti_bytes,
    sitk_copy_information,
    write_series,
)

# An oblique-free but unusual series: feet-first prone (rows and columns reversed).
SPEC = SeriesSpec()
PRONE = SeriesSpec(orientation=(-1, 0, 0, 0, -1, 0), position=(80.0, 95.0, -310.0))
# A sagittal series: its axes are a turn of the patient's, not a diagonal of signs.
SAGITTAL = SeriesSpec(orientation=(0, 1, 0, 0, 0, -1), position=(40.0, -90.0, 60.0))


@dataclass(frozen=True)
class Exams:
    series: Path
    files: list[Path]
    nifti: Path
    labels: LabelVolume
    grid: VolumeGrid


@pytest.fixture(scope="module")
def exams(tmp_path_factory: pytest.TempPathFactory) -> Exams:
    root = tmp_path_factory.mktemp("volumes")
    files = write_series(root / "series", SPEC, ct_volume(SPEC, 1), seed=3)
    nifti = root / "exam.nii.gz"
    nifti.write_bytes(nifti_bytes(ct_volume(SPEC, 1), SPEC.ras_affine()))
    return Exams(root / "series", files, nifti, labels_phantom(5), exam_grid(root / "series"))


def test_a_dicom_series_is_ordered_by_position_on_the_normal_whatever_the_file_order(
        exams: Exams) -> None:
    grid = exams.grid
    assert grid.shape == (20, 24, 16)
    assert grid.spacing == pytest.approx((0.7, 0.9, 1.25))
    assert grid.origin == pytest.approx(SPEC.position)
    assert np.allclose(grid.affine, SPEC.lps_affine(), atol=1e-4)
    positions = {ds.SOPInstanceUID: float(ds.ImagePositionPatient[2])
                 for ds in (pydicom.dcmread(p) for p in exams.files)}
    assert [positions[u] for u in grid.sop_uids] == sorted(positions.values())
    # The same geometry written as NIfTI by nibabel (RAS) reads as the same grid (LPS).
    nifti = exam_grid(exams.nifti)
    assert nifti.shape == grid.shape and np.allclose(nifti.affine, grid.affine, atol=1e-4)


def test_a_series_with_a_missing_or_doubled_slice_is_refused(exams: Exams,
                                                             tmp_path: Path) -> None:
    gap = tmp_path / "gap"
    shutil.copytree(exams.series, gap)
    by_z = sorted(gap.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    by_z[5].unlink()
    with pytest.raises(Invalid, match=r"unevenly spaced: gaps from 1\.250 to 2\.500 mm"):
        exam_grid(gap)
    doubled = tmp_path / "doubled"
    shutil.copytree(exams.series, doubled)
    ds = pydicom.dcmread(by_z[3].name and doubled / by_z[3].name)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(doubled / "copy")
    with pytest.raises(Invalid, match="lie at the same position"):
        exam_grid(doubled)


def _read(data: bytes, grid: VolumeGrid, name: str = "0007.nii.gz"
          ) -> tuple[np.ndarray, list[Problem]]:
    notes: list[Problem] = []
    return read_nifti(data, name, grid, "0007", notes), notes


def test_nibabel_masks_with_the_exams_affine_read_right_in_any_axis_order(exams: Exams) -> None:
    labels, affine = exams.labels, SPEC.ras_affine()
    plain, notes = _read(nifti_bytes(labels, affine), exams.grid)
    assert np.array_equal(plain, labels) and notes == []
    # Axes permuted (k, i, j), the affine's columns with them.
    permuted = np.transpose(labels, (2, 0, 1))
    moved = affine[:, [2, 0, 1, 3]]
    got, notes = _read(nifti_bytes(permuted, moved, gz=False), exams.grid, "0007.nii")
    assert np.array_equal(got, labels) and notes == []
    # Flipped along j (as dcm2niix stores rows), the origin at the other end.
    flipped_affine = affine.copy()
    flipped_affine[:3, 1] *= -1
    flipped_affine[:3, 3] = affine[:3, 3] + (labels.shape[1] - 1) * affine[:3, 1]
    got, notes = _read(nifti_bytes(labels[:, ::-1, :], flipped_affine, qform_only=True),
                       exams.grid)
    assert np.array_equal(got, labels) and notes == []


def test_a_mask_of_another_shape_or_spacing_is_refused_showing_both(exams: Exams) -> None:
    affine = SPEC.ras_affine()
    with pytest.raises(Invalid) as shape:
        _read(nifti_bytes(exams.labels[:, :, :15], affine), exams.grid)
    assert shape.value.problems[0].code == "wrong_shape"
    assert str(shape.value) == ("mask 0007.nii.gz is 20×24×15 at 0.70×0.90×1.25 mm once placed "
                                "by its affine (exam axis 1 = file axis 1, exam axis 2 = file "
                                "axis 2, exam axis 3 = file axis 3), the exam is 20×24×16 at "
                                "0.70×0.90×1.25 mm")
    resampled = affine.copy()
    resampled[:3, 2] *= 1.2
    with pytest.raises(Invalid) as spacing:
        _read(nifti_bytes(exams.labels, resampled), exams.grid)
    assert spacing.value.problems[0].code == "wrong_spacing"
    assert "is 20×24×16 at 0.70×0.90×1.50 mm, the exam is 20×24×16 at 0.70×0.90×1.25 mm" in \
        str(spacing.value)


def test_rounded_spacing_a_shifted_origin_and_a_slight_turn_are_warnings(exams: Exams) -> None:
    affine = SPEC.ras_affine()
    rounded = affine.copy()
    rounded[:3, 0] *= 1.004
    got, notes = _read(nifti_bytes(exams.labels, rounded), exams.grid)
    assert np.array_equal(got, exams.labels) and [n.code for n in notes] == ["spacing_mismatch"]
    shifted = affine.copy()
    shifted[:3, 3] += (0.0, 0.0, 5.0)
    got, notes = _read(nifti_bytes(exams.labels, shifted), exams.grid)
    assert np.array_equal(got, exams.labels) and [n.code for n in notes] == ["origin_mismatch"]
    turned = affine.copy()
    angle = np.radians(0.3)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])
    turned[:3, :3] = rotation @ affine[:3, :3]
    got, notes = _read(nifti_bytes(exams.labels, turned), exams.grid)
    assert np.array_equal(got, exams.labels) and [n.code for n in notes] == ["direction_mismatch"]
    angle = np.radians(12)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])
    turned[:3, :3] = rotation @ affine[:3, :3]
    with pytest.raises(Invalid, match="turns it 12.0° away") as oblique:
        _read(nifti_bytes(exams.labels, turned), exams.grid)
    assert oblique.value.problems[0].code == "oblique_mask"


def test_a_nifti_without_orientation_is_read_in_the_exams_voxel_order(exams: Exams) -> None:
    for affine in (None, np.eye(4)):
        got, notes = _read(nifti_bytes(exams.labels, affine), exams.grid)
        assert np.array_equal(got, exams.labels)
        assert [n.code for n in notes] == ["orientation_assumed"]
    with pytest.raises(Invalid, match="20×16×24 .it has no orientation") as wrong:
        _read(nifti_bytes(np.transpose(exams.labels, (0, 2, 1)), np.eye(4)), exams.grid)
    assert wrong.value.problems[0].code == "wrong_shape"


def test_a_simpleitk_mask_without_copy_information_is_read_in_the_exams_voxel_order(
        exams: Exams, tmp_path: Path) -> None:
    import SimpleITK as sitk

    mask = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(exams.labels, (2, 1, 0))))
    sitk.WriteImage(mask, str(tmp_path / "default.nii.gz"))  # ITK's default: LPS, origin 0
    got, notes = _read((tmp_path / "default.nii.gz").read_bytes(), exams.grid)
    assert np.array_equal(got, exams.labels)
    assert [n.code for n in notes] == ["orientation_assumed"]
    assert "its affine is ITK's default" in notes[0].message


def test_the_nifti_dcm2niix_makes_of_the_series_lands_on_the_series_voxel_for_voxel(
        exams: Exams, tmp_path: Path) -> None:
    """dcm2niix stores the rows of a series reversed and says so in its affine; placed on the
    series' grid, its voxels are the series' stored values (Rescale not applied)."""
    binary = shutil.which("dcm2niix", path=str(Path(sys.executable).parent)) or "dcm2niix"
    subprocess.run([binary, "-z", "y", "-b", "n", "-f", "converted", "-o", str(tmp_path),
                    str(exams.series)], check=True, capture_output=True)
    data = (tmp_path / "converted.nii.gz").read_bytes()
    got, notes = _read(data, exams.grid, "converted.nii.gz")
    stored = ct_volume(SPEC, 1).astype(np.int32) + 1024
    assert np.array_equal(got.astype(np.int32), stored) and notes == []


def test_simpleitk_masks_with_copy_information_read_right_on_series_and_nifti_exams(
        exams: Exams, tmp_path: Path) -> None:
    for exam in (exams.series, exams.nifti):
        got, notes = _read(sitk_copy_information(exams.labels, exam, tmp_path), exams.grid)
        assert np.array_equal(got, exams.labels) and notes == []


def test_simpleitk_masks_resampled_or_cropped_are_refused(exams: Exams, tmp_path: Path) -> None:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(exams.nifti))
    mask = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(exams.labels, (2, 1, 0))))
    mask.CopyInformation(image)
    mask.SetSpacing((0.7, 0.9, 2.5))  # resampled to 2.5 mm slices, not back
    sitk.WriteImage(mask, str(tmp_path / "resampled.nii.gz"))
    with pytest.raises(Invalid, match="at 0.70×0.90×2.50 mm, the exam is 20×24×16 at "
                                      "0.70×0.90×1.25 mm") as resampled:
        _read((tmp_path / "resampled.nii.gz").read_bytes(), exams.grid)
    assert resampled.value.problems[0].code == "wrong_spacing"
    cropped = sitk.RegionOfInterest(mask, (20, 24, 10), (0, 0, 3))
    cropped.SetSpacing(image.GetSpacing())
    sitk.WriteImage(cropped, str(tmp_path / "cropped.nii.gz"))
    with pytest.raises(Invalid, match="is 20×24×10 at 0.70×0.90×1.25 mm") as shape:
        _read((tmp_path / "cropped.nii.gz").read_bytes(), exams.grid)
    assert shape.value.problems[0].code == "wrong_shape"


@pytest.mark.parametrize("spec", [PRONE, SAGITTAL], ids=["prone", "sagittal"])
def test_prone_and_sagittal_series_and_their_masks_read_right(spec: SeriesSpec,
                                                              tmp_path: Path) -> None:
    files = write_series(tmp_path / "exam", spec, ct_volume(spec, 2), seed=9, study="p")
    grid = exam_grid(tmp_path / "exam")
    assert np.allclose(grid.affine, spec.lps_affine(), atol=1e-4)
    labels = labels_phantom(8)
    got, notes = _read(sitk_copy_information(labels, tmp_path / "exam", tmp_path), grid)
    assert np.array_equal(got, labels) and notes == []
    got, notes = _read(nifti_bytes(labels, spec.ras_affine()), grid)
    assert np.array_equal(got, labels) and notes == []
    swapped = spec.ras_affine()[:, [1, 2, 0, 3]]
    got, notes = _read(nifti_bytes(np.transpose(labels, (1, 2, 0)), swapped), grid)
    assert np.array_equal(got, labels) and notes == []
    seg = highdicom_seg(files, labels)
    found: list[Problem] = []
    assert np.array_equal(read_dicom_mask(seg, "p.dcm", grid, "p", found), labels)
    # By positions, on the same exam as NIfTI.
    nifti = tmp_path / "exam.nii.gz"
    nifti.write_bytes(nifti_bytes(ct_volume(spec, 2), spec.ras_affine()))
    assert np.array_equal(read_dicom_mask(seg, "p.dcm", exam_grid(nifti), "p", found), labels)
    assert found == []


def test_a_series_of_mask_slices_is_ordered_by_position(exams: Exams, tmp_path: Path) -> None:
    files = write_series(tmp_path / "mask", SPEC, exams.labels, seed=11, mask=True)
    notes: list[Problem] = []
    got = read_series_mask([p.name for p in files], lambda i: files[i].read_bytes(), "0007",
                           exams.grid, "0007", notes)
    assert np.array_equal(got, exams.labels) and notes == []


def test_a_highdicom_seg_maps_by_referenced_slices_or_by_positions(exams: Exams) -> None:
    seg = highdicom_seg(exams.files, exams.labels)
    notes: list[Problem] = []
    # On the series: frames go to the slices they reference.
    assert np.array_equal(read_dicom_mask(seg, "0007.dcm", exams.grid, "0007", notes),
                          exams.labels)
    # On the NIfTI of the same exam (no SOP instance UIDs): by their positions, empty frames
    # (omitted by highdicom) left empty.
    nifti = exam_grid(exams.nifti)
    assert np.array_equal(read_dicom_mask(seg, "0007.dcm", nifti, "0007", notes), exams.labels)
    # Three frames far apart, one of them a single label: placed by position all the same.
    sparse = np.zeros_like(exams.labels)
    sparse[5:8, 6:9, 7] = 2
    sparse[2:4, 2:4, 10] = 1
    sparse[2:4, 2:4, 15] = 1
    few = highdicom_seg(exams.files, sparse)
    assert np.array_equal(read_dicom_mask(few, "0007.dcm", nifti, "0007", notes), sparse)
    assert notes == []


def test_a_dicom_that_is_not_a_seg_is_refused(exams: Exams) -> None:
    with pytest.raises(Invalid, match="not a DICOM SEG") as refused:
        read_dicom_mask(exams.files[0].read_bytes(), "0007.dcm", exams.grid, "0007", [])
    assert refused.value.problems[0].code == "unsupported_format"


def test_a_nii_gz_is_inflated_only_as_far_as_its_header_says(exams: Exams) -> None:
    """A valid mask followed by 64 MB of zeros in one gzip stream: only the mask's bytes are
    inflated (tracemalloc counts every buffer zlib and numpy allocate)."""
    import gzip
    import tracemalloc

    mask = nifti_bytes(exams.labels, SPEC.ras_affine(), gz=False)
    bomb = gzip.compress(mask + bytes(64 * 1024**2), compresslevel=1, mtime=0)
    tracemalloc.start()
    try:
        got, notes = _read(bomb, exams.grid)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.array_equal(got, exams.labels) and notes == []
    assert peak < 8 * 1024**2
    huge = bytearray(mask)
    huge[108:112] = np.float32(1e9).tobytes()  # vox_offset: the voxels a gigabyte further
    with pytest.raises(Invalid, match="declares 1000007680 bytes") as refused:
        _read(gzip.compress(bytes(huge), mtime=0), exams.grid)
    assert refused.value.problems[0].code == "too_large"
