"""3-D exams and label masks: their grids in the patient, and the files that hold them.

An exam's grid maps voxel index (i, j, k) to DICOM's patient coordinates (LPS, mm). For a
NIfTI exam the axes are the file's own (its affine, RAS, turned to LPS); for a DICOM series
they are i = column (along ImageOrientationPatient's row cosines), j = row (along its column
cosines), k = slice, the slices sorted by ImagePositionPatient projected on the slice normal
(the cross product of the two cosines), as ITK and dcm2niix order them. Spacing is
PixelSpacing (between columns, between rows) and the step between slice positions; a series
whose gaps are uneven is refused.

A label mask (0 background, 1..K structures) is read as its raw stored values, in its file's
axis order, then placed on the exam's grid (`orientation.place_volume`): from a NIfTI's affine
(sform, else qform), a DICOM series' own geometry, or a DICOM SEG's frames (by the exam's
slices they reference, else by their positions in the exam's frame of reference). The arrays
returned are views on the one buffer each file was decoded into: a mask is held once.
"""

from __future__ import annotations

import io
import math
import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from server.evaluators.orientation import (
    describe_volume,
    orienting_affine,
    place_volume,
)
from server.evaluators.result import Invalid, Problem

Shape3 = tuple[int, int, int]
Vector = tuple[float, float, float]
Notes = list[Problem]

HEADER_ROOM = 1024**2
WIDEST_VOXEL = 8  # float64 / int64: the widest type a label mask is written with
EVEN_GAPS = 0.01  # relative: slice gaps may differ by 1 % of their mean


@dataclass(frozen=True)
class VolumeGrid:
    """The voxel grid of an exam in the patient (LPS, mm)."""

    shape: Shape3
    spacing: Vector
    directions: tuple[Vector, Vector, Vector]  # the unit vector of each voxel axis i, j, k
    origin: Vector  # centre of voxel (0, 0, 0)
    # A DICOM series' slices, by k: what a DICOM SEG's frames reference.
    sop_uids: tuple[str, ...] = ()
    frame_of_reference: str | None = None

    @property
    def axes(self) -> npt.NDArray[np.float64]:
        """The unit direction of each voxel axis, as the columns of a 3 × 3 matrix."""
        return np.asarray(self.directions, dtype=np.float64).T

    @property
    def affine(self) -> npt.NDArray[np.float64]:
        out = np.eye(4)
        out[:3, :3] = self.axes * np.asarray(self.spacing)
        out[:3, 3] = self.origin
        return out

    @property
    def voxel_mm3(self) -> float:
        return float(self.spacing[0] * self.spacing[1] * self.spacing[2])

    @property
    def diagonal_mm(self) -> float:
        """The length of the exam's box: the worst distance two structures in it can have."""
        return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(self.shape, self.spacing,
                                                                  strict=True))))

    @property
    def voxels(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    def describe(self) -> str:
        return describe_volume(self.shape, self.spacing)


def grid_from_affine(affine_lps: npt.NDArray[np.float64], shape: Sequence[int], *,
                     sop_uids: tuple[str, ...] = (), frame_of_reference: str | None = None
                     ) -> VolumeGrid:
    steps = affine_lps[:3, :3]
    spacing = np.linalg.norm(steps, axis=0)
    if not np.all(spacing > 0) or not np.all(np.isfinite(affine_lps)):
        raise ValueError("degenerate affine")
    units = steps / spacing
    return VolumeGrid(
        (int(shape[0]), int(shape[1]), int(shape[2])),
        (float(spacing[0]), float(spacing[1]), float(spacing[2])),
        tuple(_vector(units[:, a]) for a in range(3)),  # type: ignore[arg-type]
        _vector(affine_lps[:3, 3]), sop_uids, frame_of_reference)


def _vector(v: Iterable[float]) -> Vector:
    a, b, c = (float(x) for x in v)
    return (a, b, c)


# --- exams ---------------------------------------------------------------------------------

def exam_grid(path: Path) -> VolumeGrid:
    """The grid of a truth exam: a NIfTI file (header only) or a folder of DICOM slices
    (headers only). Raises Invalid naming the file."""
    if path.is_dir():
        return _series_exam(path)
    import nibabel as nib  # noqa: PLC0415

    try:
        image: Any = nib.load(str(path))
        shape = _three_dims(tuple(int(n) for n in image.header.get_data_shape()))
    except Exception as exc:  # noqa: BLE001 - a bad truth file in any way
        raise Invalid(Problem("unreadable", f"{path}: not a readable 3-D NIfTI image ({exc})")
                      ) from exc
    if shape is None:
        raise Invalid(Problem("wrong_shape", f"{path}: not a 3-D image "
                              f"({image.header.get_data_shape()})"))
    affine, _ = orienting_affine(image.header)
    if affine is None:
        affine = np.asarray(image.header.get_best_affine(), dtype=np.float64)
    return grid_from_affine(np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine, shape)


def _series_exam(folder: Path) -> VolumeGrid:
    import pydicom  # noqa: PLC0415

    headers = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        try:
            ds = pydicom.dcmread(entry, stop_before_pixels=True, force=True)
            int(ds.Rows)
        except Exception as exc:  # noqa: BLE001
            raise Invalid(Problem("unreadable", f"{entry}: not a readable DICOM image")
                          ) from exc
        headers.append((entry.name, ds))
    if not headers:
        raise Invalid(Problem("empty", f"{folder}: no DICOM slices"))
    return series_geometry(headers, str(folder)).grid


@dataclass(frozen=True)
class Series:
    """A DICOM series' grid and, for each k, the index of its slice in the list given."""

    grid: VolumeGrid
    order: tuple[int, ...]


def series_geometry(headers: Sequence[tuple[str, Any]], where: str,
                    mask_id: str | None = None) -> Series:
    """The grid of a series of single-frame DICOM slices (names and datasets, in any order);
    raises Invalid for slices that do not make one evenly spaced volume."""
    def refuse(message: str) -> Invalid:
        return Invalid(Problem("wrong_geometry", f"{where}: {message}", mask_id))

    first = headers[0][1]
    cosines = _numbers(first, "ImageOrientationPatient", 6)
    spacing = _numbers(first, "PixelSpacing", 2)
    if cosines is None or spacing is None:
        raise refuse("the slices have no ImageOrientationPatient or PixelSpacing, so the "
                     "volume's geometry is unknown")
    row, column = np.array(cosines[:3]), np.array(cosines[3:])
    if not (abs(np.linalg.norm(row) - 1) < 1e-3 and abs(np.linalg.norm(column) - 1) < 1e-3
            and abs(float(row @ column)) < 1e-3):
        raise refuse(f"ImageOrientationPatient {list(cosines)} is not two orthogonal unit "
                     "vectors")
    row, column = row / np.linalg.norm(row), column / np.linalg.norm(column)
    normal = np.cross(row, column)
    size = (int(first.Rows), int(first.Columns))
    places: list[float] = []
    positions: list[npt.NDArray[np.float64]] = []
    for name, ds in headers:
        position = _numbers(ds, "ImagePositionPatient", 3)
        if position is None:
            raise refuse(f"slice {name} has no ImagePositionPatient")
        other = _numbers(ds, "ImageOrientationPatient", 6)
        if other is None or not np.allclose(other, cosines, atol=1e-4):
            raise refuse(f"slice {name} has another ImageOrientationPatient ({other}) than "
                         f"{headers[0][0]} ({list(cosines)})")
        if (int(ds.Rows), int(ds.Columns)) != size:
            raise refuse(f"slice {name} is {int(ds.Rows)}×{int(ds.Columns)}, "
                         f"{headers[0][0]} is {size[0]}×{size[1]}")
        pixel = _numbers(ds, "PixelSpacing", 2)
        if pixel is None or not np.allclose(pixel, spacing, rtol=1e-4):
            raise refuse(f"slice {name} has another PixelSpacing ({pixel}) than "
                         f"{headers[0][0]} ({list(spacing)})")
        positions.append(np.array(position))
        places.append(float(np.array(position) @ normal))
    order = tuple(int(i) for i in np.argsort(places, kind="stable"))
    sorted_places = np.array([places[i] for i in order])
    if len(order) > 1:
        gaps = np.diff(sorted_places)
        if float(gaps.min()) <= 1e-6:
            at = int(np.argmin(gaps))
            raise refuse(f"slices {headers[order[at]][0]} and {headers[order[at + 1]][0]} lie "
                         f"at the same position ({sorted_places[at]:.2f} mm along the normal)")
        step = float(np.mean(gaps))
        if float(np.max(np.abs(gaps - step))) > EVEN_GAPS * step:
            wide = int(np.argmax(np.abs(gaps - step)))
            raise refuse(
                f"the slices are unevenly spaced: gaps from {gaps.min():.3f} to "
                f"{gaps.max():.3f} mm (between {headers[order[wide]][0]} and "
                f"{headers[order[wide + 1]][0]}: {gaps[wide]:.3f} mm); a volume needs even "
                "gaps (is a slice missing?)")
        along = positions[order[-1]] - positions[order[0]]
        if float(np.linalg.norm(np.cross(along / np.linalg.norm(along), normal))) > 1e-2:
            raise refuse("the slices are not stacked along their normal (a tilted series); "
                         "resample it onto an orthogonal grid")
    else:
        step = float(first.get("SliceThickness", 0) or 0) or 1.0
    affine = np.eye(4)
    affine[:3, 0] = row * spacing[1]
    affine[:3, 1] = column * spacing[0]
    affine[:3, 2] = normal * step
    affine[:3, 3] = positions[order[0]]
    uids = tuple(str(headers[i][1].get("SOPInstanceUID", "")) for i in order)
    frame = first.get("FrameOfReferenceUID")
    grid = grid_from_affine(affine, (size[1], size[0], len(order)), sop_uids=uids,
                            frame_of_reference=str(frame) if frame else None)
    return Series(grid, order)


def _numbers(ds: Any, keyword: str, count: int) -> tuple[float, ...] | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        return None
    return numbers


def _three_dims(shape: tuple[int, ...]) -> Shape3 | None:
    dims = list(shape)
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) != 3:
        return None
    return (dims[0], dims[1], dims[2])


# --- label masks ---------------------------------------------------------------------------

def mask_limit(grid: VolumeGrid) -> int:
    """The most bytes a mask file of this exam may expand to (float64 voxels, and headers)."""
    return HEADER_ROOM + grid.voxels * WIDEST_VOXEL


def read_nifti(data: bytes, name: str, grid: VolumeGrid, mask_id: str | None,
               notes: Notes) -> npt.NDArray[Any]:
    """A NIfTI-1/2 label mask (`.nii` or `.nii.gz` bytes) on the exam's grid. The header is
    read and the mask placed (shape, spacing and orientation checked) before the voxels are
    inflated; a `.nii.gz` is then inflated in chunks straight into the one buffer the mask is
    read from."""
    import nibabel as nib  # noqa: PLC0415

    limit = mask_limit(grid)
    inflater = zlib.decompressobj(wbits=31) if data[:2] == b"\x1f\x8b" else None
    try:
        head = data[:HEAD] if inflater is None else inflater.decompress(data, HEAD)
    except zlib.error as exc:
        raise Invalid(Problem("unreadable", f"mask {name} is not a valid .nii.gz (gzip) file",
                              mask_id)) from exc
    if len(head) < 348:
        raise Invalid(Problem("unreadable", f"mask {name} is not a NIfTI file (too short)",
                              mask_id))
    nifti2 = head[:4] in (b"\x1c\x02\x00\x00", b"\x00\x00\x02\x1c")
    header_class: Any = nib.Nifti2Header if nifti2 else nib.Nifti1Header
    try:
        header = header_class.from_fileobj(io.BytesIO(head), check=False)
        got = tuple(int(n) for n in header.get_data_shape())
        dtype = np.dtype(header.get_data_dtype())
        offset = int(header.get_data_offset())
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on bad headers
        raise Invalid(Problem("unreadable", f"mask {name} is not a readable NIfTI file",
                              mask_id)) from exc
    dims = _three_dims(got)
    if dims is None:
        raise Invalid(Problem(
            "wrong_shape", f"mask {name} has shape {'×'.join(map(str, got))}; the exam is "
            f"{grid.describe()}: send one 3-D volume", mask_id,
            group=f"masks are not 3-D volumes (the exams are {grid.describe()})"))
    affine, why_none = orienting_affine(header)
    placement = place_volume(affine, why_none, dims, grid, name, mask_id)
    if dtype.hasobject or dtype.kind not in "biuf":
        raise Invalid(Problem("unreadable", f"mask {name} holds voxels of an unreadable type "
                              f"({dtype})", mask_id))
    count = dims[0] * dims[1] * dims[2]
    size = offset + count * dtype.itemsize
    if size > limit:
        raise Invalid(Problem(
            "too_large", f"mask {name} declares {size} bytes, more than a mask of the exam can "
            f"take ({limit} bytes: float64 voxels); save it as uint8", mask_id))
    buffer = data if inflater is None else _inflate_rest(inflater, head, size, name, mask_id)
    if len(buffer) < size:
        raise Invalid(Problem("unreadable", f"mask {name} is truncated", mask_id))
    raw = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset)
    notes.extend(placement.notes)
    return placement.apply(raw.reshape(dims, order="F"))


HEAD = 64 * 1024  # more than any NIfTI header with its extensions needs before the voxels
CHUNK = 4 * 1024**2


def _inflate_rest(inflater: Any, head: bytes, size: int, name: str, mask_id: str | None
                  ) -> bytearray:
    """The first `size` bytes of a gzip stream whose first bytes `head` are inflated, in one
    buffer of that size (zlib's own output would hold the volume twice while it is joined)."""
    buffer = bytearray(size)
    filled = min(len(head), size)
    buffer[:filled] = head[:filled]
    try:
        while filled < size:
            chunk = inflater.decompress(inflater.unconsumed_tail, min(CHUNK, size - filled))
            if not chunk:
                break
            buffer[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
    except zlib.error as exc:
        raise Invalid(Problem("unreadable", f"mask {name} is not a valid .nii.gz (gzip) file",
                              mask_id)) from exc
    if filled < size:
        raise Invalid(Problem("unreadable", f"mask {name} is truncated", mask_id))
    return buffer


def _dataset(data: bytes, name: str, mask_id: str | None) -> Any:
    import pydicom  # noqa: PLC0415

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # noqa: BLE001
        raise Invalid(Problem("unreadable", f"mask {name} is not a readable DICOM file",
                              mask_id)) from exc


SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def read_dicom_mask(data: bytes, name: str, grid: VolumeGrid, mask_id: str | None,
                    notes: Notes) -> npt.NDArray[Any]:
    """A DICOM SEG (`<id>.dcm`) on the exam's grid; each segment number is a label."""
    ds = _dataset(data, name, mask_id)
    if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
        raise Invalid(Problem(
            "unsupported_format",
            f"mask {name} is a DICOM file but not a DICOM SEG (Segmentation Storage); send a "
            "SEG, a folder of DICOM slices named by the exam's id, or a NIfTI", mask_id))
    import highdicom as hd  # noqa: PLC0415

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
            kind = seg.segmentation_type.value
    except Exception as exc:  # noqa: BLE001 - highdicom refuses invalid SEGs in many ways
        raise Invalid(Problem("unreadable", f"mask {name} is not a valid DICOM SEG "
                              f"({type(exc).__name__}: {str(exc)[:120]})", mask_id)) from exc
    if kind == "FRACTIONAL":
        raise Invalid(Problem("not_integer", f"mask {name} is a FRACTIONAL SEG (probabilities); "
                              "send a BINARY or LABELMAP segmentation", mask_id))
    dtype = np.uint8 if max(seg.segment_numbers, default=0) < 256 else np.uint16
    out = np.zeros(grid.shape, dtype=dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            referenced = _referenced_uids(seg)
            ours = [k for k, uid in enumerate(grid.sop_uids) if uid and uid in referenced]
            if ours:
                frames = seg.get_pixels_by_source_instance(
                    [grid.sop_uids[k] for k in ours], combine_segments=True, relabel=False,
                    ignore_spatial_locations=True, skip_overlap_checks=True, dtype=dtype)
                if frames.shape[1:] != (grid.shape[1], grid.shape[0]):
                    raise Invalid(Problem(
                        "wrong_shape", f"mask {name}: its frames are {frames.shape[1]}×"
                        f"{frames.shape[2]}, the exam's slices {grid.shape[1]}×{grid.shape[0]}",
                        mask_id))
                for at, k in enumerate(ours):
                    out[:, :, k] = frames[at].T
                return out
            frame = seg.get("FrameOfReferenceUID")
            if grid.frame_of_reference and frame and str(frame) != grid.frame_of_reference:
                raise Invalid(Problem(
                    "wrong_geometry",
                    f"mask {name}: its frames reference none of the exam's slices and lie in "
                    "another frame of reference; build the SEG from the exam's own series",
                    mask_id))
            volume = seg.get_volume(combine_segments=True, relabel=False,
                                    skip_overlap_checks=True, dtype=dtype)
    except Invalid:
        raise
    except Exception as exc:  # noqa: BLE001
        raise Invalid(Problem(
            "wrong_geometry", f"mask {name}: its frames do not make a volume that can be "
            f"placed on the exam ({type(exc).__name__}: {str(exc)[:120]})", mask_id)) from exc
    array = np.asarray(volume.array)
    dims = (int(array.shape[0]), int(array.shape[1]), int(array.shape[2]))
    placement = place_volume(np.asarray(volume.affine, dtype=np.float64), "", dims, grid,
                             name, mask_id, partial=True, lps=True)
    notes.extend(placement.notes)
    placed = placement.apply(array)
    o = placement.offset
    out[o[0]:o[0] + placed.shape[0], o[1]:o[1] + placed.shape[1],
        o[2]:o[2] + placed.shape[2]] = placed
    return out


def _referenced_uids(seg: Any) -> set[str]:
    uids: set[str] = set()
    for _study, _series, uid in seg.get_source_image_uids():
        uids.add(str(uid))
    return uids


SliceReader = Callable[[int], bytes]


def read_series_mask(names: Sequence[str], read: SliceReader, where: str, grid: VolumeGrid,
                     mask_id: str | None, notes: Notes) -> npt.NDArray[Any]:
    """A mask given as a folder of single-frame DICOM slices (`read(i)` gives the bytes of
    slice `names[i]`), on the exam's grid. The slices are decoded into one buffer, in the
    order they come, then put in place by their positions."""
    volume: npt.NDArray[Any] | None = None
    headers: list[tuple[str, Any]] = []
    for index, name in enumerate(names):
        ds = _dataset(read(index), name, mask_id)
        if "PixelData" not in ds:
            raise Invalid(Problem("unreadable", f"mask {where}: {name} has no pixel data",
                                  mask_id))
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise Invalid(Problem(
                "extra_frames", f"mask {where}: {name} holds several frames; a series folder "
                "holds one slice per file (send a multi-frame mask as a DICOM SEG, <id>.dcm)",
                mask_id))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = np.asarray(ds.pixel_array)
        if volume is None:
            volume = np.empty((len(names), *pixels.shape), dtype=pixels.dtype)
        if pixels.shape != volume.shape[1:]:
            raise Invalid(Problem("wrong_geometry", f"mask {where}: {name} is "
                                  f"{pixels.shape[0]}×{pixels.shape[1]}, the first slice "
                                  f"{volume.shape[1]}×{volume.shape[2]}", mask_id))
        volume[index] = pixels
        del ds.PixelData
        headers.append((name, ds))
    assert volume is not None
    series = series_geometry(headers, f"mask {where}", mask_id)
    _permute_in_place(volume, series.order)
    placement = place_volume(series.grid.affine, "", series.grid.shape, grid, where, mask_id,
                             lps=True)
    notes.extend(placement.notes)
    # Stored as [slice, row, column]; the series' grid is (column, row, slice).
    return placement.apply(np.transpose(volume, (2, 1, 0)))


def _permute_in_place(volume: npt.NDArray[Any], order: Sequence[int]) -> None:
    """volume[k] = old volume[order[k]], one slice of scratch memory."""
    done = [False] * len(order)
    for start in range(len(order)):
        if done[start] or order[start] == start:
            done[start] = True
            continue
        scratch = volume[start].copy()
        k = start
        while True:
            done[k] = True
            source = order[k]
            if source == start:
                volume[k] = scratch
                break
            volume[k] = volume[source]
            k = source
