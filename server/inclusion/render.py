"""One slice of an exam as a PNG, for the experts' review viewer (pure: numpy and Pillow).

A volume is a 3-D array (slices, rows, columns) of the exam's values (HU for CT), with its
`spacing` in mm in the same order (between slices, between rows, between columns). A slice is
cut along one axis (axial: a slice; coronal: a row; sagittal: a column), windowed to grey,
resampled so that one mm is as long across as down, the mask drawn over it as a translucent
colour per label with a full-colour outline, and the nodule marks as circles on the slices
they cross. Slices run feet to head: coronal and sagittal images show the head at the top.
docs/inclusion.md ("Review viewer: slices and windows") gives the presets and the rule.

The window is DICOM's linear VOI function (PS3.3 C.11.2.1.2.1) onto 0..255: with level c and
width w (w >= 1), x <= c - 0.5 - (w - 1)/2 is 0, x > c - 0.5 + (w - 1)/2 is 255, and between
y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255, rounded to the nearest integer (half to even).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from .kernels import kernel_name

Axis = Literal["axial", "coronal", "sagittal"]
AXES: tuple[Axis, ...] = ("axial", "coronal", "sagittal")
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Window:
    name: str
    level: float
    width: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.level) and np.isfinite(self.width)) or self.width < 1:
            raise ValueError(f"window {self.name!r}: the width must be a number of at least 1 "
                             f"and the level a number (got level {self.level}, "
                             f"width {self.width})")


# CT windows in HU (level, width). Bone is L 400 / W 1800 rather than 300 / 1500: its top
# (1300 HU) keeps dense cortical bone and metal-free calcification apart instead of saturating
# at 1050 HU, and its bottom (-500 HU) still shows fat and muscle as darker greys.
PRESETS: Mapping[str, Window] = {
    "soft_tissue": Window("soft_tissue", 40, 400),
    "lung": Window("lung", -600, 1500),
    "bone": Window("bone", 400, 1800),
    "brain": Window("brain", 40, 80),
}
AUTO = "auto"          # MR (no HU): the 1st to 99th percentile of the whole series
AUTO_PERCENTILES = (1.0, 99.0)

DEFAULT_COLOURS: tuple[Colour, ...] = (
    (255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0), (200, 64, 255), (0, 200, 200),
)
MARK_COLOUR: Colour = (255, 255, 0)
MASK_ALPHA = 0.4


@dataclass(frozen=True)
class Mark:
    """A nodule: its centre in voxel coordinates (slice, row, column; fractional) and its
    radius in mm."""

    centre: tuple[float, float, float]
    radius_mm: float
    colour: Colour = MARK_COLOUR


def auto_window(volume: npt.NDArray[Any],
                percentiles: tuple[float, float] = AUTO_PERCENTILES) -> Window:
    """A window from the series' own values: its 1st to 99th percentile (MR has no HU). Computed
    over the whole volume so that scrolling keeps the same greys."""
    values = np.asarray(volume, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("auto window: the volume has no finite value")
    low, high = (float(v) for v in np.percentile(finite, percentiles))
    width = max(high - low, 1.0)
    return Window(AUTO, (low + high) / 2, width)


def window_values(values: npt.NDArray[Any], window: Window) -> npt.NDArray[np.float64]:
    """DICOM's linear VOI function onto 0..255, as floats (see the module's docstring)."""
    x = np.asarray(values, dtype=np.float64)
    c = window.level - 0.5
    w = window.width - 1
    if w == 0:       # width 1: a step at the level
        return np.where(np.isnan(x) | (x <= c), 0.0, 255.0)
    y = ((x - c) / w + 0.5) * 255.0
    y = np.where(x <= c - w / 2, 0.0, y)
    y = np.where(x > c + w / 2, 255.0, y)
    return np.where(np.isnan(x), 0.0, y)      # no value: black


def apply_window(values: npt.NDArray[Any], window: Window) -> npt.NDArray[np.uint8]:
    """The window as 8-bit grey: `window_values` rounded to the nearest (half to even)."""
    return np.rint(window_values(values, window)).astype(np.uint8)


def resolve_window(window: Window | str | tuple[float, float],
                   volume: npt.NDArray[Any]) -> Window:
    """A `Window`, a preset's name, "auto", or a custom (level, width)."""
    if isinstance(window, Window):
        return window
    if isinstance(window, str):
        if window == AUTO:
            return auto_window(volume)
        if window not in PRESETS:
            raise ValueError(f"unknown window {window!r}: expected one of "
                             f"{', '.join([*PRESETS, AUTO])} or a (level, width)")
        return PRESETS[window]
    level, width = window
    return Window("custom", float(level), float(width))


def _cut(array: npt.NDArray[Any], index: int, axis: Axis, upward: bool) -> npt.NDArray[Any]:
    if axis == "axial":
        return array[index]
    cut = array[:, index, :] if axis == "coronal" else array[:, :, index]
    return cut[::-1] if upward else cut


def _display_size(shape: tuple[int, int], spacing: tuple[float, float],
                  max_side: int | None) -> tuple[int, int]:
    """(height, width) in pixels of one mm-true image: the finer spacing keeps its pixels."""
    pixel = min(spacing)
    height = max(1, round(shape[0] * spacing[0] / pixel))
    width = max(1, round(shape[1] * spacing[1] / pixel))
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        height = max(1, round(height * scale))
        width = max(1, round(width * scale))
    return height, width


def _outline(labels: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Labelled pixels with a 4-neighbour of another label (or the image's edge)."""
    padded = np.pad(labels, 1, mode="constant", constant_values=0)
    centre = padded[1:-1, 1:-1]
    edge = np.zeros(labels.shape, dtype=bool)
    for shifted in (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]):
        edge |= shifted != centre
    return edge & (labels != 0)


def _colour_of(label: int, colours: Mapping[int, Colour]) -> Colour:
    if label in colours:
        return colours[label]
    return DEFAULT_COLOURS[(label - 1) % len(DEFAULT_COLOURS)]


def _check(volume: npt.NDArray[Any], index: int, axis: str,
           spacing: Sequence[float], mask: npt.NDArray[Any] | None,
           max_side: int | None) -> None:
    if volume.ndim != 3:
        raise ValueError(f"the volume must be 3-D (slices, rows, columns), not "
                         f"{volume.ndim}-D of shape {volume.shape}")
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}: expected axial, coronal or sagittal")
    n = volume.shape[AXES.index(axis)]
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"the {axis} slice index must be an integer, not {index!r}")
    if not 0 <= index < n:
        raise ValueError(f"{axis} slice {index} is out of range: the volume has {n} {axis} "
                         f"slices (0 to {n - 1})")
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"the spacing must be three positive numbers in mm (between slices, "
                         f"rows, columns), not {tuple(spacing)}")
    if mask is not None and mask.shape != volume.shape:
        raise ValueError(f"the mask's shape {mask.shape} is not the volume's {volume.shape}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side}")


def render_slice(volume: npt.NDArray[Any], index: int, axis: Axis = "axial",
                 window: Window | str | tuple[float, float] = "soft_tissue", *,
                 spacing: Sequence[float] = (1.0, 1.0, 1.0),
                 mask: npt.NDArray[Any] | None = None,
                 labels_colours: Mapping[int, Colour] | None = None,
                 marks: Sequence[Mark] | None = None,
                 max_side: int | None = None,
                 slices_upward: bool = True) -> bytes:
    """The PNG (RGB) of slice `index` along `axis`.

    Image rows and columns follow the array: axial is (rows, columns), coronal (slices,
    columns), sagittal (slices, rows), first row and column at the top and left. The slices are
    taken to run feet to head (`slices_upward`, as `volume_from_datasets` orders an axial
    series along its normal, +z in DICOM's patient coordinates being the head): a coronal or
    sagittal image shows the last slice at the top (False: the first). The slice is resampled
    (bilinear on the values, nearest on the mask) to mm-true pixels, then to `max_side` at most.
    `window` "auto" takes the percentiles of this whole volume at each call: a viewer scrolling
    a large MR computes `auto_window(volume)` once and passes it.
    """
    volume = np.asarray(volume)
    _check(volume, index, axis, spacing, None if mask is None else np.asarray(mask), max_side)
    win = resolve_window(window, volume)
    a = AXES.index(axis)
    in_plane = [d for d in range(3) if d != a]
    plane_spacing = (float(spacing[in_plane[0]]), float(spacing[in_plane[1]]))
    upward = slices_upward
    values = _cut(volume, index, axis, upward).astype(np.float32)
    height, width = _display_size(values.shape, plane_spacing, max_side)

    if values.shape != (height, width):
        values = np.asarray(Image.fromarray(values, mode="F").resize(
            (width, height), Image.Resampling.BILINEAR))
    grey = apply_window(values, win)
    rgb = np.repeat(grey[:, :, None], 3, axis=2).astype(np.float64)

    if mask is not None:
        labels = _cut(np.asarray(mask), index, axis, upward).astype(np.int32)
        if labels.shape != (height, width):
            labels = np.asarray(Image.fromarray(labels, mode="I").resize(
                (width, height), Image.Resampling.NEAREST))
        colours = labels_colours or {}
        edge = _outline(labels)
        for label in np.unique(labels):
            if label == 0:
                continue
            colour = np.array(_colour_of(int(label), colours), dtype=np.float64)
            inside = labels == label
            rgb[inside] = rgb[inside] * (1 - MASK_ALPHA) + colour * MASK_ALPHA
            rgb[inside & edge] = colour

    image = Image.fromarray(np.rint(rgb).astype(np.uint8), mode="RGB")
    if marks:
        flip = volume.shape[0] if upward and axis != "axial" else None
        _draw_marks(image, marks, a, index, in_plane, spacing, values.shape,
                    _cut(volume, index, axis, upward).shape, flip)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=6)
    return out.getvalue()


def crosses(mark: Mark, axis: Axis, index: int, spacing: Sequence[float]) -> float | None:
    """The radius in mm of a mark's circle on a slice, None when the sphere misses it."""
    a = AXES.index(axis)
    distance = abs(index - mark.centre[a]) * float(spacing[a])
    if distance > mark.radius_mm:
        return None
    return float(np.sqrt(mark.radius_mm ** 2 - distance ** 2))


def _draw_marks(image: Image.Image, marks: Sequence[Mark], a: int, index: int,
                in_plane: list[int], spacing: Sequence[float], shown: tuple[int, ...],
                cut: tuple[int, ...], flip: int | None) -> None:
    """`flip`: the number of slices when the image shows the last slice at the top."""
    draw = ImageDraw.Draw(image)
    scale_y = shown[0] / cut[0]           # display pixels per voxel, down and across
    scale_x = shown[1] / cut[1]
    for mark in marks:
        radius = crosses(mark, AXES[a], index, spacing)
        if radius is None:
            continue
        down = mark.centre[in_plane[0]]
        if flip is not None:
            down = flip - 1 - down
        cy = (down + 0.5) * scale_y - 0.5
        cx = (mark.centre[in_plane[1]] + 0.5) * scale_x - 0.5
        ry = max(radius / float(spacing[in_plane[0]]) * scale_y, 1.0)
        rx = max(radius / float(spacing[in_plane[1]]) * scale_x, 1.0)
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), outline=mark.colour, width=2)


# --- from DICOM -----------------------------------------------------------------------------

LUNG_WORDS = ("LUNG", "THORAX", "CHEST", "CHST", "POUMON", "THORAC")
BRAIN_WORDS = ("BRAIN", "HEAD", "CEREBRAL", "CRANE", "CERVEAU")


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return " ".join(str(v) for v in value).upper()
    return str(value).upper()


def lung_kernel(kernel: str) -> bool:
    """A lung reconstruction kernel by its name: one that says LUNG or CHEST (GE, Canon,
    Philips' "Lung Enhanced"), Siemens' lung family Bl (Bl57, Bl64), Canon's FL kernels."""
    k = kernel.strip().upper().replace(" ", "")
    return ("LUNG" in k or "CHST" in k or "CHEST" in k or
            (k.startswith("BL") and k[2:3].isdigit()) or
            (k.startswith("FL") and k[2:3].isdigit()))


def preset_for(ds: Any) -> Window | str:
    """The window a reviewer starts with, from one slice's headers.

    MR (any body part) is "auto": its values are not HU, so no HU preset applies. CT (and any
    other modality) is lung when the kernel is a lung kernel or BodyPartExamined or
    SeriesDescription says LUNG, THORAX or CHEST; brain when they say BRAIN or HEAD; soft
    tissue otherwise."""
    modality = _text(ds, "Modality").strip()
    if modality == "MR":
        return AUTO
    words = _text(ds, "BodyPartExamined") + " " + _text(ds, "SeriesDescription")
    value = ds.get("ConvolutionKernel", None)
    kernel = kernel_name([value] if isinstance(value, str) else [str(v) for v in value or []])
    if lung_kernel(kernel) or any(w in words for w in LUNG_WORDS):
        return PRESETS["lung"]
    if any(w in words for w in BRAIN_WORDS):
        return PRESETS["brain"]
    return PRESETS["soft_tissue"]


def _position_along(ds: Any) -> float | None:
    position = ds.get("ImagePositionPatient", None)
    orientation = ds.get("ImageOrientationPatient", None)
    if position is None or orientation is None or len(orientation) != 6:
        return None
    r = np.array([float(v) for v in orientation[:3]])
    c = np.array([float(v) for v in orientation[3:]])
    return float(np.dot(np.cross(r, c), [float(v) for v in position]))


def volume_from_datasets(datasets: Sequence[Any]) -> tuple[npt.NDArray[np.float32],
                                                           tuple[float, float, float]]:
    """The HU (modality LUT applied: RescaleSlope / Intercept or a Modality LUT) of one
    series' slices, ordered along the slice normal (by InstanceNumber when a slice has no
    position), and its spacing (between slices, rows, columns) in mm."""
    from pydicom.pixels import apply_modality_lut

    if not datasets:
        raise ValueError("no slice to read")
    places = [_position_along(ds) for ds in datasets]
    known = [p for p in places if p is not None]
    if len(known) == len(places):
        order = sorted(range(len(datasets)), key=lambda i: known[i])
    else:
        order = sorted(range(len(datasets)),
                       key=lambda i: int(datasets[i].get("InstanceNumber", 0) or 0))
    slices: list[npt.NDArray[np.float32]] = []
    for i in order:
        ds = datasets[i]
        pixels = apply_modality_lut(ds.pixel_array, ds)
        if slices and pixels.shape != slices[0].shape:
            raise ValueError(f"slice {ds.get('InstanceNumber', i)} is {pixels.shape[0]}×"
                             f"{pixels.shape[1]}, the first {slices[0].shape[0]}×"
                             f"{slices[0].shape[1]}: not one stack")
        slices.append(np.asarray(pixels, dtype=np.float32))
    first = datasets[order[0]]
    pixel_spacing = first.get("PixelSpacing", None) or [1.0, 1.0]
    between: float
    if len(known) == len(places) and len(known) > 1:
        steps = np.diff(sorted(known))
        if (steps <= 1e-6).any():
            raise ValueError("two slices share a position: not one stack")
        between = float(np.median(steps))
    else:
        between = float(first.get("SpacingBetweenSlices", None)
                        or first.get("SliceThickness", None) or 1.0)
    if between <= 0:
        raise ValueError(f"the slice spacing must be positive, not {between} mm")
    return (np.stack(slices), (between, float(pixel_spacing[0]), float(pixel_spacing[1])))
