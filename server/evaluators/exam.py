"""The exam images of a segmentation truth: shape, geometry and Hounsfield units.

An exam's geometry is where its pixels lie in the patient, in DICOM's patient coordinates (LPS:
x towards the patient's left, y posterior, z head), in mm: ImagePositionPatient is the centre
of the first pixel, ImageOrientationPatient the directions in which the column index (along a
row) and the row index (down a column) grow, PixelSpacing the distance between rows, then
between columns. An exam without them is taken as axial with identity orientation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = tuple[float, float, float]

AXIAL: tuple[Vector, Vector] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))


class ExamError(ValueError):
    pass


@dataclass(frozen=True)
class ExamGrid:
    """The pixel grid of one exam, in the patient."""

    shape: tuple[int, int]  # rows, columns
    spacing: tuple[float, float] | None = None  # PixelSpacing: between rows, between columns
    orientation: tuple[Vector, Vector] | None = None  # along a row, down a column (unit)
    position: Vector | None = None  # ImagePositionPatient: centre of the first pixel

    @property
    def axes(self) -> tuple[Vector, Vector]:
        """Directions of growing column index and growing row index (axial if unknown)."""
        return self.orientation or AXIAL


@dataclass(frozen=True)
class ExamImage:
    path: Path
    grid: ExamGrid

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape

    @property
    def spacing(self) -> tuple[float, float] | None:
        return self.grid.spacing


def read_exam(path: Path) -> ExamImage:
    """The header facts of one CT slice, without decoding its pixels."""
    import pydicom  # noqa: PLC0415

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        shape = (int(ds.Rows), int(ds.Columns))
    except Exception as exc:  # noqa: BLE001 - any failure means a bad truth file
        raise ExamError(f"{path}: not a readable DICOM image ({exc})") from exc
    spacing = _numbers(path, ds, "PixelSpacing", 2)
    if spacing is not None and not all(v > 0 for v in spacing):
        raise ExamError(f"{path}: PixelSpacing {list(spacing)} must be positive")
    cosines = _numbers(path, ds, "ImageOrientationPatient", 6)
    position = _numbers(path, ds, "ImagePositionPatient", 3)
    orientation = None if cosines is None else _orientation(path, cosines)
    return ExamImage(path, ExamGrid(
        shape,
        None if spacing is None else (spacing[0], spacing[1]),
        orientation,
        None if position is None else (position[0], position[1], position[2]),
    ))


def _numbers(path: Path, ds: Any, keyword: str, count: int) -> tuple[float, ...] | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        numbers = tuple(float(v) for v in (value if count > 1 else [value]))
    except (TypeError, ValueError) as exc:
        raise ExamError(f"{path}: {keyword} {value!r} is not {count} numbers") from exc
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        raise ExamError(f"{path}: {keyword} {list(numbers)} is not {count} finite numbers")
    return numbers


def _orientation(path: Path, cosines: tuple[float, ...]) -> tuple[Vector, Vector]:
    across, down = np.array(cosines[:3]), np.array(cosines[3:])
    if not (abs(np.linalg.norm(across) - 1) < 1e-3 and abs(np.linalg.norm(down) - 1) < 1e-3
            and abs(float(across @ down)) < 1e-3):
        raise ExamError(f"{path}: ImageOrientationPatient {list(cosines)} is not two "
                        "orthogonal unit vectors")
    a, d = across / np.linalg.norm(across), down / np.linalg.norm(down)
    return ((float(a[0]), float(a[1]), float(a[2])), (float(d[0]), float(d[1]), float(d[2])))


def hu_inside(path: Path, low: float, high: float) -> npt.NDArray[np.bool_]:
    """Pixels of the exam whose Hounsfield value lies in [low, high]."""
    import pydicom  # noqa: PLC0415
    from pydicom.pixels import apply_modality_lut  # noqa: PLC0415

    try:
        ds = pydicom.dcmread(path, force=True)
        hu = np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001
        raise ExamError(f"{path}: pixel data cannot be decoded ({exc})") from exc
    return (hu >= low) & (hu <= high)
