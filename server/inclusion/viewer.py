"""An exam as the review viewer shows it (docs/review.md): its chosen series' volume, its mask
placed on the series' grid, its nodule marks in voxels, the window it opens with — read from
the exam's folder (the folder contract in docs/inclusion.md), and a small bounded cache of
them so scrolling renders from memory.

Reading is file and CPU work: `load_exam` runs in a thread (`ExamCache.get` sends it there);
rendering (`slice_png`) too.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from server.inclusion.render import (
    AUTO,
    AXES,
    PRESETS,
    Mark,
    Window,
    auto_window,
    preset_for,
    render_slice,
    volume_from_datasets,
)

MAX_SIDE = 768           # the longest side of a slice's image, in pixels
CACHE_EXAMS = 4
CACHE_BYTES = 1024 ** 3  # what the cached volumes (values and masks) may hold together


@dataclass(frozen=True)
class Grid:
    """Where the series' voxels are, in DICOM's patient coordinates (LPS, mm): the first slice's
    first pixel, the directions of increasing column, row and slice, and the spacings
    (between slices, rows, columns)."""

    origin: npt.NDArray[np.float64]
    column_step: npt.NDArray[np.float64]   # one column further, in mm (the row direction)
    row_step: npt.NDArray[np.float64]      # one row further
    slice_step: npt.NDArray[np.float64]    # one slice further

    def voxel_of(self, point: Sequence[float]) -> tuple[float, float, float]:
        """(slice, row, column) of a point in mm, fractional."""
        matrix = np.column_stack([self.slice_step, self.row_step, self.column_step])
        solved = np.linalg.solve(matrix, np.asarray(point, dtype=np.float64) - self.origin)
        return (float(solved[0]), float(solved[1]), float(solved[2]))


@dataclass
class ExamView:
    volume: npt.NDArray[np.float32]
    spacing: tuple[float, float, float]
    window: Window                      # what the viewer opens with
    preset: str                         # its name ("lung", "auto", ...)
    auto: Window                        # the series' own 1st-99th percentile window
    mask: npt.NDArray[np.uint8] | None = None
    marks: list[Mark] = field(default_factory=list)
    modality: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        s = self.volume.shape
        return (int(s[0]), int(s[1]), int(s[2]))

    @property
    def nbytes(self) -> int:
        return int(self.volume.nbytes + (self.mask.nbytes if self.mask is not None else 0))

    def counts(self) -> dict[str, int]:
        """The number of slices along each axis."""
        return dict(zip(AXES, self.shape, strict=True))


def window_of(text: str | None, view: ExamView) -> Window:
    """A window from the viewer's query: a preset's name, "auto", or "LEVEL,WIDTH"; none: the
    exam's own. ValueError in the reviewer's words."""
    if not text:
        return view.window
    if text == AUTO:
        return view.auto
    if text in PRESETS:
        return PRESETS[text]
    parts = text.split(",")
    if len(parts) == 2:
        try:
            level, width = float(parts[0]), float(parts[1])
        except ValueError:
            pass
        else:
            return Window("custom", level, width)
    raise ValueError(f"unknown window {text!r}: expected one of {', '.join([*PRESETS, AUTO])} "
                     "or LEVEL,WIDTH (e.g. 40,400)")


def slice_png(view: ExamView, axis: str, index: int, window: Window, overlay: bool) -> bytes:
    return render_slice(view.volume, index, axis,  # type: ignore[arg-type]
                        window, spacing=view.spacing,
                        mask=view.mask if overlay else None,
                        marks=view.marks if overlay else None, max_side=MAX_SIDE)


# --- reading an exam's folder ----------------------------------------------------------------

def grid_of(datasets: Sequence[Any], spacing: tuple[float, float, float]) -> Grid:
    """The grid of a series ordered as `volume_from_datasets` orders it (along the normal)."""
    first = datasets[0]
    orientation = [float(v) for v in first.get("ImageOrientationPatient", None)
                   or (1, 0, 0, 0, 1, 0)]
    x = np.array(orientation[:3])
    y = np.array(orientation[3:])
    normal = np.cross(x, y)
    positions = [np.array([float(v) for v in ds.ImagePositionPatient]) for ds in datasets
                 if ds.get("ImagePositionPatient", None) is not None]
    if positions:
        origin = min(positions, key=lambda p: float(np.dot(p, normal)))
    else:
        origin = np.zeros(3)
    return Grid(origin, x * spacing[2], y * spacing[1], normal * spacing[0])


def read_series(folder: Path) -> list[Any]:
    import pydicom

    files = sorted(folder.glob("*.dcm"), key=lambda p: (len(p.name), p.name))
    if not files:
        raise ValueError(f"no DICOM file in {folder.name}")
    return [pydicom.dcmread(f) for f in files]


def nifti_on_grid(path: Path, shape: tuple[int, int, int], grid: Grid) -> npt.NDArray[np.uint8]:
    """A NIfTI mask resampled (nearest) on the series' grid through both affines: the mask's
    RAS world to voxel, the series' voxel to LPS. Outside the mask: 0."""
    import nibabel as nib

    image: Any = nib.load(str(path))
    labels = np.asarray(image.dataobj)
    if labels.ndim == 4 and labels.shape[3] == 1:
        labels = labels[..., 0]
    if labels.ndim == 2:
        labels = labels[:, :, None]
    if labels.ndim != 3:
        raise ValueError(f"the mask is {labels.ndim}-D; a mask is 3-D")
    world_to_voxel = np.linalg.inv(image.affine)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    # mask voxel = M @ (origin + k*slice_step + r*row_step + c*column_step) + t, in RAS.
    m = world_to_voxel[:3, :3] @ lps_to_ras
    t = world_to_voxel[:3, 3]
    base = m @ grid.origin + t
    along_k, along_r, along_c = m @ grid.slice_step, m @ grid.row_step, m @ grid.column_step
    rows = np.arange(shape[1], dtype=np.float64)[:, None, None]
    columns = np.arange(shape[2], dtype=np.float64)[None, :, None]
    plane = rows * along_r + columns * along_c          # (rows, columns, 3)
    out = np.zeros(shape, dtype=np.uint8)
    limits = np.array(labels.shape)
    for k in range(shape[0]):
        index = np.rint(base + k * along_k + plane).astype(np.int64)
        inside = np.all((index >= 0) & (index < limits), axis=2)
        picked = labels[index[..., 0].clip(0, limits[0] - 1), index[..., 1].clip(0, limits[1] - 1),
                        index[..., 2].clip(0, limits[2] - 1)]
        out[k] = np.where(inside, picked, 0).astype(np.uint8)
    return out


def seg_on_slices(path: Path, shape: tuple[int, int, int], origin: npt.ArrayLike,
                  normal: npt.ArrayLike, between: float) -> npt.NDArray[np.uint8]:
    """A DICOM SEG (read with highdicom) placed on a series' slices: each frame on the slice at
    its position along `normal` (the first slice at `origin`, `between` mm apart), its
    segment's number as the label. The one placement the intake's mask check and the viewer
    share. A frame names its segment in the per-frame functional groups, or, when the SEG has
    one segment (as highdicom writes it), in the shared ones.

    Frames whose rows and columns are not the series' are returned as they are: the caller
    tells the shapes apart. ValueError for a frame that lies outside the series' slices."""
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    pixels = np.asarray(seg.pixel_array)
    if pixels.ndim == 2:
        pixels = pixels[None]
    if tuple(pixels.shape[1:3]) != tuple(shape[1:]):
        return pixels.astype(np.uint8)
    shared = seg.get("SharedFunctionalGroupsSequence") or [{}]
    shared_number = _segment_number(shared[0])
    unit = np.asarray(normal, dtype=np.float64)
    unit = unit / np.linalg.norm(unit)
    start = float(np.dot(np.asarray(origin, dtype=np.float64), unit))
    out = np.zeros(shape, dtype=np.uint8)
    for i, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        number = _segment_number(frame) or shared_number or 1
        k = round((float(np.dot(position, unit)) - start) / between)
        if not 0 <= k < shape[0]:
            raise ValueError(f"frame {i + 1} of the SEG lies outside the series' slices")
        out[k][pixels[i] > 0] = number
    return out


def _segment_number(group: Any) -> int | None:
    identification = group.get("SegmentIdentificationSequence") if group else None
    return int(identification[0].ReferencedSegmentNumber) if identification else None


def seg_on_grid(path: Path, shape: tuple[int, int, int], grid: Grid) -> npt.NDArray[np.uint8]:
    """The SEG on the series' grid (`seg_on_slices`); frames of other rows and columns than
    the series' give no overlay."""
    placed = seg_on_slices(path, shape, grid.origin, grid.slice_step,
                           float(np.linalg.norm(grid.slice_step)))
    return placed if placed.shape == shape else np.zeros(shape, dtype=np.uint8)


def marks_of(nodules: Sequence[Mapping[str, Any]], grid: Grid) -> list[Mark]:
    """Nodule marks from the summary's positions in mm; the radius from the diameter, else
    from the volume (a sphere's), else 3 mm."""
    marks = []
    for nodule in nodules:
        try:
            point = [float(nodule[k]) for k in ("x", "y", "z")]
        except (KeyError, TypeError, ValueError):
            continue
        diameter = nodule.get("diameter_mm")
        volume = nodule.get("volume_mm3")
        if isinstance(diameter, (int, float)) and diameter > 0:
            radius = float(diameter) / 2
        elif isinstance(volume, (int, float)) and volume > 0:
            radius = (3 * float(volume) / (4 * math.pi)) ** (1 / 3)
        else:
            radius = 3.0
        marks.append(Mark(grid.voxel_of(point), radius))
    return marks


def load_exam(folder: Path, summary: Mapping[str, Any]) -> ExamView:
    """The exam's view from its folder and summary (blocking: run it in a thread)."""
    series = folder / str(summary.get("series") or "series/0")
    if not series.resolve().is_relative_to(folder.resolve()):
        raise ValueError("the exam's series is outside its folder")
    datasets = read_series(series)
    volume, spacing = volume_from_datasets(datasets)
    first = datasets[0]
    preset = preset_for(first)
    auto = auto_window(volume)
    window = auto if preset == AUTO else preset
    assert isinstance(window, Window)
    view = ExamView(volume, spacing, window, window.name, auto,
                    modality=str(first.get("Modality", "")))
    grid = grid_of(datasets, spacing)
    mask = summary.get("mask")
    if mask:
        path = folder / str(mask)
        if not path.resolve().is_relative_to(folder.resolve()):
            raise ValueError("the exam's mask is outside its folder")
        if path.name.endswith((".nii", ".nii.gz")):
            view.mask = nifti_on_grid(path, view.shape, grid)
        elif path.suffix == ".dcm":
            view.mask = seg_on_grid(path, view.shape, grid)
    view.marks = marks_of(summary.get("nodules") or [], grid)
    return view


# --- the cache ------------------------------------------------------------------------------

class ExamCache:
    """The last few exams opened, least recently used out first, at most `max_exams` and
    `max_bytes` together (an exam larger than that alone is rendered, not kept). Each exam is
    read once however many slices are asked for it at the same moment."""

    def __init__(self, max_exams: int = CACHE_EXAMS, max_bytes: int = CACHE_BYTES) -> None:
        self.max_exams = max_exams
        self.max_bytes = max_bytes
        self._views: OrderedDict[Any, ExamView] = OrderedDict()
        self._loading: dict[Any, asyncio.Future[ExamView]] = {}

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self._views.values())

    def __contains__(self, key: object) -> bool:
        return key in self._views

    async def get(self, key: Any, load: Callable[[], ExamView]) -> ExamView:
        if key in self._views:
            self._views.move_to_end(key)
            return self._views[key]
        if key in self._loading:
            return await asyncio.shield(self._loading[key])
        future: asyncio.Future[ExamView] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            view = await asyncio.to_thread(load)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()        # retrieved: nobody else may be waiting
            raise
        finally:
            self._loading.pop(key, None)
        future.set_result(view)
        self._keep(key, view)
        return view

    def _keep(self, key: Any, view: ExamView) -> None:
        if view.nbytes > self.max_bytes:
            return
        self._views[key] = view
        while len(self._views) > self.max_exams or self.nbytes > self.max_bytes:
            self._views.popitem(last=False)

