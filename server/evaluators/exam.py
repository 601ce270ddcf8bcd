"""The exam images of a segmentation truth: shape, pixel spacing and Hounsfield units."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt


class ExamError(ValueError):
    pass


@dataclass(frozen=True)
class ExamImage:
    path: Path
    shape: tuple[int, int]  # rows, columns
    spacing: tuple[float, float] | None  # PixelSpacing: row spacing, column spacing, in mm


def read_exam(path: Path) -> ExamImage:
    """The header facts of one CT slice, without decoding its pixels."""
    import pydicom  # noqa: PLC0415

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        shape = (int(ds.Rows), int(ds.Columns))
    except Exception as exc:  # noqa: BLE001 - any failure means a bad truth file
        raise ExamError(f"{path}: not a readable DICOM image ({exc})") from exc
    spacing = ds.get("PixelSpacing")
    if spacing is not None:
        try:
            row_mm, col_mm = (float(v) for v in spacing)
        except (TypeError, ValueError) as exc:
            raise ExamError(f"{path}: PixelSpacing {spacing!r} is not two numbers") from exc
        return ExamImage(path, shape, (row_mm, col_mm))
    return ExamImage(path, shape, None)


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
