"""The demo's 3-D chest CT exams (server/demo_volumes.py), read back by real tools: SimpleITK's
DICOM series reader and its NIfTI reader must see the volume, the geometry and the nodules
where the demo put them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from server.demo_volumes import (
    MALIGNANT_MM3,
    PIXEL_MM,
    SHAPE,
    SLICE_MM,
    VolumeExam,
    chest_volume,
    dicom_series,
    nifti,
)


@pytest.fixture(scope="module")
def exams() -> list[VolumeExam]:
    rng = np.random.default_rng(7)
    return [chest_volume(f"CT-{n:03d}", rng) for n in range(6)]


def test_the_series_reads_as_a_scanner_series(exams: list[VolumeExam], tmp_path: Path) -> None:
    exam = exams[0]
    for name, data in dicom_series(exam).items():
        (tmp_path / name).write_bytes(data)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    image = reader.Execute()
    assert image.GetSize() == (SHAPE[2], SHAPE[1], SHAPE[0])
    assert image.GetSpacing() == pytest.approx((PIXEL_MM, PIXEL_MM, SLICE_MM))
    assert image.GetOrigin() == pytest.approx(exam.origin)
    assert np.array_equal(sitk.GetArrayFromImage(image), exam.hu)
    # Every nodule's centre, mapped by SimpleITK from mm to voxels, is inside the mask.
    for nodule in exam.nodules:
        i, j, k = image.TransformPhysicalPointToIndex(nodule.centre)
        assert exam.mask[k, j, i]


def test_a_nifti_mask_carries_the_series_geometry(exams: list[VolumeExam],
                                                  tmp_path: Path) -> None:
    exam = exams[1]
    path = tmp_path / "mask.nii.gz"
    path.write_bytes(nifti(exam, exam.mask.astype(np.uint8)))
    image = sitk.ReadImage(str(path))
    assert image.GetOrigin() == pytest.approx(exam.origin)
    assert image.GetDirection() == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert np.array_equal(sitk.GetArrayFromImage(image).astype(bool), exam.mask)
    path.write_bytes(nifti(exam, exam.mask.astype(np.uint8), affine=False))
    assert sitk.ReadImage(str(path)).GetOrigin() == pytest.approx((0, 0, 0))


def test_nodules_are_separate_and_malignancy_follows_the_volume(
        exams: list[VolumeExam]) -> None:
    from scipy import ndimage
    malignant = 0
    for exam in exams:
        assert 1 <= len(exam.nodules) <= 5
        _, count = ndimage.label(exam.mask, structure=np.ones((3, 3, 3)))
        assert count == len(exam.nodules)
        components = ndimage.label(exam.mask, structure=np.ones((3, 3, 3)))[0]
        largest = np.bincount(components.ravel())[1:].max() * exam.voxel_mm3
        assert exam.malignant == (largest >= MALIGNANT_MM3)
        malignant += exam.malignant
    assert 0 < malignant < len(exams)


def test_the_same_seed_writes_the_same_exam() -> None:
    one = chest_volume("CT-001", np.random.default_rng(3))
    two = chest_volume("CT-001", np.random.default_rng(3))
    assert one.nodules == two.nodules and np.array_equal(one.hu, two.hu)
    assert dicom_series(one) == dicom_series(two)
    assert nifti(one, one.mask.astype(np.uint8)) == nifti(two, two.mask.astype(np.uint8))
