"""Where a NIfTI mask's pixels go on its exam's grid: from the file's affine when it carries an
orientation, from its shape when it does not.

NIfTI's affine maps voxel indices (i, j, k) to RAS+ millimetres; DICOM's exam geometry is in
LPS, so the two differ by a sign on x and y. Each of the mask's two in-plane axes is matched
with the exam axis (rows or columns) it runs along, and its sign says whether it runs the
same way: the axis order and the flips follow, the way ITK resamples a label onto its image
(nnU-Net, 3D Slicer and dcm2niix files all read right). Axes turned away from the exam's are
refused, since placing them by index would move pixels; a spacing or origin that disagrees
with the exam's is a warning.

An affine that only holds a writer's default — the identity (nibabel's `np.eye(4)`), or ITK's
LPS axes with the origin at 0 (SimpleITK's image before `CopyInformation`) — says nothing
about the patient: then the array's shape decides on a non-square exam, and a square exam is
read as x = columns, y = rows (the NIfTI/ITK convention) with the warning
`orientation_assumed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from server.evaluators.exam import ExamGrid
from server.evaluators.result import Invalid, Problem, notice

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
SPACING_TOLERANCE = 0.01  # relative: 1 %
# Axes turned so that the far end of the mask moves by more than this (in exam pixels) would
# put pixels in the wrong place if read by index.
MAX_DRIFT_PIXELS = 0.5
WRITE_UNAMBIGUOUSLY = (
    "write the exam's geometry into it (SimpleITK: mask.CopyInformation(exam_image); "
    "nibabel: the exam's affine, e.g. from dcm2niix), or save a PNG or .npy in rows × "
    "columns order"
)


@dataclass(frozen=True)
class Placement:
    """How a mask's 2-D array (its two in-plane axes, in file order) lands on the exam."""

    transpose: bool  # the array is (columns, rows)
    flip_rows: bool  # after any transpose: row 0 of the array is the exam's last row
    flip_columns: bool
    notes: tuple[Problem, ...] = ()

    def apply(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        out = array.T if self.transpose else array
        if self.flip_rows:
            out = out[::-1, :]
        if self.flip_columns:
            out = out[:, ::-1]
        return out

    def describe(self) -> str:
        """The reading in words, for messages: 'x = columns, y = rows, rows reversed'."""
        order = "x = columns, y = rows" if self.transpose else "x = rows, y = columns"
        flips = [w for w, f in (("rows reversed", self.flip_rows),
                                ("columns reversed", self.flip_columns)) if f]
        return ", ".join([order, *flips])


def orienting_affine(header: Any) -> tuple[npt.NDArray[np.float64] | None, str]:
    """The affine that orients a NIfTI file (sform when its code > 0, else qform when its code
    > 0, as nibabel chooses), or None and why, for messages."""
    for which in ("sform", "qform"):
        affine, code = getattr(header, f"get_{which}")(coded=True)
        if code is not None and int(code) > 0 and affine is not None:
            matrix = np.asarray(affine, dtype=np.float64)
            if np.all(np.isfinite(matrix)):
                return matrix, which
    return None, "its header holds no affine: sform and qform codes are 0"


def writer_default(affine: npt.NDArray[np.float64]) -> str | None:
    """Why an affine carries no orientation (a writer's default), or None if it does."""
    if np.allclose(affine, np.eye(4), atol=1e-6):
        return "its affine is the identity"
    rotation, translation = affine[:3, :3], affine[:3, 3]
    if not np.allclose(translation, 0.0, atol=1e-6):
        return None
    if not np.allclose(rotation, np.diag(np.diag(rotation)), atol=1e-9):
        return None
    signs = np.sign(np.diag(rotation))
    if np.array_equal(signs, [1, 1, 1]):
        return "its affine holds only a spacing, with no origin and nibabel's default axes"
    if np.array_equal(signs, [-1, -1, 1]):
        return "its affine is ITK's default (origin 0, identity direction)"
    return None


def place(
    affine: npt.NDArray[np.float64] | None,
    why_none: str,
    axes: tuple[int, int],
    dims: tuple[int, int],
    grid: ExamGrid,
    name: str,
    mask_id: str | None,
) -> Placement:
    """The placement of a mask whose in-plane voxel axes are `axes` (of i, j, k), of sizes
    `dims`; raises Invalid when it cannot lie on the exam's grid."""
    if affine is None:
        return by_shape(dims, grid, why_none, name, mask_id)
    reason = writer_default(affine)
    if reason is None:
        return by_geometry(affine, axes, dims, grid, name, mask_id)
    if grid.position is not None:
        try:
            geometric = by_geometry(affine, axes, dims, grid, name, mask_id)
        except Invalid:
            geometric = None
        if geometric is not None and not any(n.code == "origin_mismatch"
                                             for n in geometric.notes):
            return geometric  # the default happens to be the exam's own geometry
    placement = by_shape(dims, grid, reason, name, mask_id)
    notes = [*placement.notes, *_spacing_notes(affine, axes, placement, grid, name, mask_id)]
    return Placement(placement.transpose, False, False, tuple(notes))


def by_shape(dims: tuple[int, int], grid: ExamGrid, why: str, name: str,
             mask_id: str | None) -> Placement:
    rows, columns = grid.shape
    if rows != columns and dims == (rows, columns):
        return Placement(False, False, False, (notice(
            "orientation_from_shape",
            f"mask {name} has no orientation ({why}); its shape {_dims(dims)} matched the exam "
            f"as rows × columns, so it was read that way (pixel_array order)",
            mask_id, group="masks have no orientation; their shape matched the exams as rows × "
            "columns, so they were read that way (pixel_array order)"),))
    if dims == (columns, rows):
        if rows != columns:
            return Placement(True, False, False, (notice(
                "orientation_from_shape",
                f"mask {name} has no orientation ({why}); its shape {_dims(dims)} matched the "
                "exam as x = columns, y = rows, so it was read that way",
                mask_id, group="masks have no orientation; their shape matched the exams as "
                "x = columns, y = rows, so they were read that way"),))
        return Placement(True, False, False, (notice(
            "orientation_assumed",
            f"mask {name} has no orientation ({why}) and the exam is square, so it was read as "
            "x = columns, y = rows (the NIfTI/ITK convention); a mask saved from a "
            f"pixel_array-shaped array reads transposed. To be sure, {WRITE_UNAMBIGUOUSLY}",
            mask_id, group="masks have no orientation and their exams are square, so they "
            "were read as x = columns, y = rows (the NIfTI/ITK convention); a mask saved from "
            f"a pixel_array-shaped array reads transposed. To be sure, {WRITE_UNAMBIGUOUSLY}"),))
    raise Invalid(Problem(
        "wrong_shape",
        f"mask {name} is {_dims(dims)}; the exam is {rows} rows × {columns} columns, so a NIfTI "
        f"mask is {columns}×{rows} (x = columns, y = rows) or carries the exam's geometry",
        mask_id, group=f"masks are {_dims(dims)}, the exams are {rows} rows × {columns} "
        "columns",
    ))


def by_geometry(affine: npt.NDArray[np.float64], axes: tuple[int, int], dims: tuple[int, int],
                grid: ExamGrid, name: str, mask_id: str | None) -> Placement:
    rows, columns = grid.shape
    across, down = (np.asarray(v, dtype=np.float64) for v in grid.axes)
    row_mm, column_mm = grid.spacing or (1.0, 1.0)
    lps = LPS_FROM_RAS @ affine[:3, :3]
    runs: list[tuple[str, float, float]] = []  # per mask axis: exam axis, sign, step in mm
    for axis, size in zip(axes, dims, strict=True):
        step = lps[:, axis]
        length = float(np.linalg.norm(step))
        if length == 0.0:
            raise Invalid(Problem("unreadable", f"mask {name}: its affine is degenerate",
                                  mask_id))
        unit = step / length
        along_columns, along_rows = float(unit @ across), float(unit @ down)
        exam_axis = "columns" if abs(along_columns) >= abs(along_rows) else "rows"
        cosine = max(abs(along_columns), abs(along_rows))
        drift_mm = math.sqrt(max(0.0, 1.0 - cosine * cosine)) * length * max(size - 1, 1)
        if drift_mm / min(row_mm, column_mm) > MAX_DRIFT_PIXELS:
            angle = math.degrees(math.acos(min(1.0, cosine)))
            raise Invalid(Problem(
                "oblique_mask",
                f"mask {name}: its affine turns it {angle:.1f}° away from the exam's rows and "
                "columns, so it does not lie on the exam's pixel grid; resample it onto the "
                "exam (SimpleITK: Resample(mask, exam_image, sitk.Transform(), "
                "sitk.sitkNearestNeighbor))",
                mask_id, group="masks are turned away from their exam's rows and columns; "
                "resample them onto the exams (SimpleITK: Resample(mask, exam_image, "
                "sitk.Transform(), sitk.sitkNearestNeighbor))",
            ))
        sign = along_columns if exam_axis == "columns" else along_rows
        runs.append((exam_axis, 1.0 if sign > 0 else -1.0, length))
    if runs[0][0] == runs[1][0]:
        raise Invalid(Problem(
            "oblique_mask",
            f"mask {name}: its affine puts both of its axes along the exam's {runs[0][0]}; "
            "write the exam's geometry into it",
            mask_id,
        ))
    transpose = runs[0][0] == "columns"
    row_run, column_run = (runs[1], runs[0]) if transpose else (runs[0], runs[1])
    placed = (dims[1], dims[0]) if transpose else dims
    placement = Placement(transpose, row_run[1] < 0, column_run[1] < 0)
    if placed != (rows, columns):
        raise Invalid(Problem(
            "wrong_shape",
            f"mask {name} is {_dims(placed)} once placed by its affine ({placement.describe()}"
            f"), the exam is {rows}×{columns}",
            mask_id, group=f"masks are {_dims(placed)} once placed by their affine, the exams "
            f"are {rows}×{columns}",
        ))
    notes = list(_spacing_notes(affine, axes, placement, grid, name, mask_id))
    if grid.position is not None:
        origin = LPS_FROM_RAS @ affine[:3, 3] - np.asarray(grid.position)
        normal = np.cross(across, down)
        first = (float(origin @ down) / row_mm, float(origin @ across) / column_mm)
        expected = (rows - 1 if placement.flip_rows else 0,
                    columns - 1 if placement.flip_columns else 0)
        shift = (first[0] - expected[0], first[1] - expected[1])
        off_plane = abs(float(origin @ normal))
        if max(abs(shift[0]), abs(shift[1])) > 0.5 or off_plane > max(row_mm, column_mm):
            notes.append(notice(
                "origin_mismatch",
                f"mask {name}: its affine puts it {abs(shift[0]):.1f} rows, "
                f"{abs(shift[1]):.1f} columns and {off_plane:.1f} mm away from the exam; it was "
                "placed on the exam's grid by its array, as its axes say. If it was cropped or "
                "shifted, write it on the exam's full grid with the exam's geometry",
                mask_id, group="masks' affines put them away from their exam's position; they "
                "were placed on the exam's grid by their array, as their axes say",
            ))
    return Placement(placement.transpose, placement.flip_rows, placement.flip_columns,
                     tuple(notes))


def _spacing_notes(affine: npt.NDArray[np.float64], axes: tuple[int, int],
                   placement: Placement, grid: ExamGrid, name: str,
                   mask_id: str | None) -> list[Problem]:
    if grid.spacing is None:
        return []
    lengths = [float(np.linalg.norm(affine[:3, a])) for a in axes]
    if all(abs(v - 1.0) < 1e-6 for v in lengths) and writer_default(affine) is not None:
        return []  # no spacing was written at all
    row_len, column_len = (lengths[1], lengths[0]) if placement.transpose else lengths
    row_mm, column_mm = grid.spacing
    if (abs(row_len / row_mm - 1) <= SPACING_TOLERANCE
            and abs(column_len / column_mm - 1) <= SPACING_TOLERANCE):
        return []
    return [notice(
        "spacing_mismatch",
        f"mask {name}: its pixel spacing {row_len:.4g} × {column_len:.4g} mm differs from the "
        f"exam's {row_mm:.4g} × {column_mm:.4g} mm by more than 1 %; it was read pixel for "
        "pixel. If it was resampled, resample it back onto the exam's grid",
        mask_id, group="masks have a pixel spacing more than 1 % away from their exam's; they "
        "were read pixel for pixel",
    )]


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in shape)


# --- 3-D volumes (segmentation-3d) ---------------------------------------------------------
#
# A volume's grid (`server.evaluators.volume.VolumeGrid`) maps voxel index (i, j, k) to LPS
# millimetres; a mask whose affine carries an orientation is placed on its exam's grid by
# matching each of the mask's three axes with the exam axis it runs along: the axis order and
# the flips follow. Shape and spacing must then be the exam's; an origin or a direction that
# differs is a warning (the mask is read by its array, as its axes say).

RELATIVE_SPACING_REFUSED = 0.01  # 1 %: a resampled mask
RELATIVE_SPACING_WARNED = 0.001  # 0.1 %: rounded spacings (0.70 for 0.703125)
DIRECTION_WARNED = 1e-3  # sine of the angle between a mask axis and its exam axis


@dataclass(frozen=True)
class VolumePlacement:
    """How a mask's 3-D array (axes in file order) lands on the exam's grid: exam axis e is
    the mask's axis `order[e]`, reversed when `flips[e]`, starting at exam index `offset[e]`
    (non-zero only for a DICOM SEG, whose frames may cover part of the exam)."""

    order: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    offset: tuple[int, int, int] = (0, 0, 0)
    notes: tuple[Problem, ...] = ()

    def apply(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The array in the exam's axis order and directions (a view, nothing copied)."""
        out = np.transpose(array, self.order)
        index = tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)
        return out[index]

    def describe(self) -> str:
        words = [f"exam axis {e + 1} = file axis {m + 1}{' reversed' if f else ''}"
                 for e, (m, f) in enumerate(zip(self.order, self.flips, strict=True))]
        return ", ".join(words)


def describe_volume(shape: tuple[int, ...], spacing: tuple[float, ...] | None) -> str:
    """'512×512×200 at 0.70×0.70×1.25 mm'."""
    dims = _dims(shape)
    if spacing is None:
        return dims
    return f"{dims} at {'×'.join(f'{s:.2f}' for s in spacing)} mm"


def place_volume(affine: npt.NDArray[np.float64] | None, why_none: str,
                 dims: tuple[int, int, int], grid: Any, name: str, mask_id: str | None, *,
                 partial: bool = False, lps: bool = False) -> VolumePlacement:
    """The placement of a mask of shape `dims` whose affine (NIfTI's RAS, or LPS when `lps`)
    maps its voxel indices to the patient, on the exam `grid` (a VolumeGrid). `partial`: the
    mask may cover a part of the exam (a DICOM SEG's frames), placed by its position. Raises
    Invalid when it cannot lie on the exam's grid."""
    if affine is not None and not lps:
        reason = writer_default(affine)
        if reason is not None:
            try:
                geometric = _volume_by_geometry(LPS_AFFINE @ affine, dims, grid, name,
                                                mask_id, partial)
            except Invalid:
                geometric = None
            if geometric is not None and not any(n.code == "origin_mismatch"
                                                 for n in geometric.notes):
                return geometric  # the default happens to be the exam's own geometry
            return _volume_by_order(dims, grid, reason, affine, name, mask_id)
        affine = LPS_AFFINE @ affine
    if affine is None:
        return _volume_by_order(dims, grid, why_none, None, name, mask_id)
    return _volume_by_geometry(affine, dims, grid, name, mask_id, partial)


LPS_AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])


def _volume_by_order(dims: tuple[int, int, int], grid: Any, why: str,
                     affine: npt.NDArray[np.float64] | None, name: str,
                     mask_id: str | None) -> VolumePlacement:
    written = None
    if affine is not None:
        lengths = tuple(float(np.linalg.norm(affine[:3, a])) for a in range(3))
        if not all(abs(v - 1.0) < 1e-6 for v in lengths):
            written = lengths
    if tuple(dims) != tuple(grid.shape):
        raise Invalid(_volume_shape_problem(name, dims, written, grid, mask_id,
                                            " (it has no orientation, so it is read in the "
                                            "exam's voxel order)"))
    notes = [notice(
        "orientation_assumed",
        f"mask {name} has no orientation ({why}); its shape {_dims(dims)} is the exam's, so it "
        "was read in the exam's voxel order. To be sure, write the exam's geometry into it "
        "(SimpleITK: mask.CopyInformation(exam_image); nibabel: the exam's affine)",
        mask_id, group="masks have no orientation; their shapes are their exams', so they were "
        "read in the exams' voxel order. To be sure, write the exam's geometry into them "
        "(SimpleITK: mask.CopyInformation(exam_image); nibabel: the exam's affine)")]
    if written is not None:
        notes.extend(_volume_spacing(written, grid, name, mask_id))
    return VolumePlacement((0, 1, 2), (False, False, False), (0, 0, 0), tuple(notes))


def _volume_by_geometry(affine: npt.NDArray[np.float64], dims: tuple[int, int, int],
                        grid: Any, name: str, mask_id: str | None,
                        partial: bool) -> VolumePlacement:
    exam_axes = grid.axes  # columns: the unit exam axes
    exam_spacing = tuple(float(s) for s in grid.spacing)
    matched: list[tuple[int, float, float]] = []  # per mask axis: exam axis, sign, step mm
    turned = 0.0
    for axis in range(3):
        step = affine[:3, axis]
        length = float(np.linalg.norm(step))
        if length == 0.0 or not math.isfinite(length):
            raise Invalid(Problem("unreadable", f"mask {name}: its affine is degenerate",
                                  mask_id))
        cosines = (step / length) @ exam_axes
        exam_axis = int(np.argmax(np.abs(cosines)))
        cosine = float(abs(cosines[exam_axis]))
        sine = math.sqrt(max(0.0, 1.0 - cosine * cosine))
        drift_mm = sine * length * max(dims[axis] - 1, 1)
        if drift_mm / min(exam_spacing) > MAX_DRIFT_PIXELS:
            raise Invalid(_oblique(name, mask_id, math.degrees(math.asin(min(1.0, sine)))))
        turned = max(turned, sine)
        matched.append((exam_axis, 1.0 if cosines[exam_axis] > 0 else -1.0, length))
    if len({m[0] for m in matched}) != 3:
        raise Invalid(Problem(
            "oblique_mask",
            f"mask {name}: its affine puts two of its axes along the same exam axis; write "
            "the exam's geometry into it", mask_id))
    order = [0, 0, 0]
    for mask_axis, (exam_axis, _, _) in enumerate(matched):
        order[exam_axis] = mask_axis
    flips = tuple(matched[order[e]][1] < 0 for e in range(3))
    placed = tuple(dims[order[e]] for e in range(3))
    spacing = tuple(matched[order[e]][2] for e in range(3))
    placement = VolumePlacement((order[0], order[1], order[2]),
                                (flips[0], flips[1], flips[2]))
    # Where the placed array's first voxel lies, in exam voxels along each exam axis.
    first = affine[:3, 3] + sum(
        (dims[m] - 1) * affine[:3, m] for m in range(3) if matched[m][1] < 0)
    shift = ((first - np.asarray(grid.origin, dtype=np.float64)) @ exam_axes) / exam_spacing
    if partial:
        offset = tuple(int(round(float(v))) for v in shift)
        if any(o < 0 or o + n > size for o, n, size in zip(offset, placed, grid.shape,
                                                             strict=True)):
            raise Invalid(Problem(
                "wrong_shape",
                f"mask {name}: its frames ({describe_volume(placed, spacing)}) reach outside "
                f"the exam ({describe_volume(grid.shape, grid.spacing)}), by their positions",
                mask_id))
    else:
        offset = (0, 0, 0)
        if placed != tuple(grid.shape):
            raise Invalid(_volume_shape_problem(
                name, placed, spacing, grid, mask_id,
                f" once placed by its affine ({placement.describe()})"))
    if partial:  # a single frame says nothing of the spacing between frames
        spacing = tuple(s if n > 1 else float(e) for s, n, e in zip(spacing, placed,
                                                                    grid.spacing, strict=True))
    notes = list(_volume_spacing(spacing, grid, name, mask_id))
    if turned > DIRECTION_WARNED:
        notes.append(notice(
            "direction_mismatch",
            f"mask {name}: its axes are turned {math.degrees(math.asin(turned)):.2f}° from the "
            "exam's (less than half a voxel across the volume); it was read by its array, as "
            "its axes say", mask_id, group="masks' axes are turned slightly from their exam's; "
            "they were read by their array, as their axes say"))
    residual = shift - np.asarray(offset, dtype=np.float64)
    # Frames placed by position snap to the nearest exam voxel: more than a quarter off is
    # worth a word.
    if float(np.max(np.abs(residual))) > (0.25 if partial else 0.5):
        moved = ", ".join(f"{abs(float(v)):.1f}" for v in residual)
        notes.append(notice(
            "origin_mismatch",
            f"mask {name}: its affine puts it ({moved}) voxels away from the exam's position; "
            "it was placed on the exam's grid by its array, as its axes say. If it was cropped "
            "or shifted, write it on the exam's full grid with the exam's geometry",
            mask_id, group="masks' affines put them away from their exam's position; they "
            "were placed on the exam's grid by their array, as their axes say"))
    return VolumePlacement(placement.order, placement.flips,
                           (offset[0], offset[1], offset[2]), tuple(notes))


def _oblique(name: str, mask_id: str | None, angle: float) -> Problem:
    return Problem(
        "oblique_mask",
        f"mask {name}: its affine turns it {angle:.1f}° away from the exam's axes, so it does "
        "not lie on the exam's voxel grid; resample it onto the exam (SimpleITK: "
        "Resample(mask, exam_image, sitk.Transform(), sitk.sitkNearestNeighbor))",
        mask_id, group="masks are turned away from their exam's axes; resample them onto the "
        "exams (SimpleITK: Resample(mask, exam_image, sitk.Transform(), "
        "sitk.sitkNearestNeighbor))")


def _volume_shape_problem(name: str, dims: tuple[int, ...], spacing: tuple[float, ...] | None,
                          grid: Any, mask_id: str | None, how: str) -> Problem:
    exam = describe_volume(grid.shape, grid.spacing)
    return Problem(
        "wrong_shape",
        f"mask {name} is {describe_volume(dims, spacing)}{how}, the exam is {exam}",
        mask_id, group=f"masks are {_dims(dims)}, the exams are {_dims(grid.shape)}")


def _volume_spacing(spacing: tuple[float, ...], grid: Any, name: str,
                    mask_id: str | None) -> list[Problem]:
    exam = tuple(float(s) for s in grid.spacing)
    worst = max(abs(s / e - 1.0) for s, e in zip(spacing, exam, strict=True))
    if worst > RELATIVE_SPACING_REFUSED:
        raise Invalid(Problem(
            "wrong_spacing",
            f"mask {name} is {describe_volume(tuple(grid.shape), spacing)}, the exam is "
            f"{describe_volume(grid.shape, exam)}: its voxels are more than 1 % from the "
            "exam's; resample it back onto the exam's grid (nearest neighbour)",
            mask_id, group="masks' voxel spacings are more than 1 % from their exams'; "
            "resample them back onto the exams' grids"))
    if worst > RELATIVE_SPACING_WARNED:
        return [notice(
            "spacing_mismatch",
            f"mask {name}: its voxel spacing {'×'.join(f'{s:.4g}' for s in spacing)} mm differs "
            f"from the exam's {'×'.join(f'{s:.4g}' for s in exam)} mm by more than 0.1 %; it "
            "was read voxel for voxel", mask_id, group="masks have a voxel spacing more than "
            "0.1 % from their exam's; they were read voxel for voxel")]
    return []
