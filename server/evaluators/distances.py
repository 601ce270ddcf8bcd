"""Overlap and surface distances of two 3-D structures, computed in a box around them.

- `dice`: 2 |A ∩ B| / (|A| + |B|).
- `nsd` (normalised surface distance, "surface Dice" at a tolerance τ): the share of both
  surfaces' area lying within τ mm of the other surface. A surface is made of surface elements
  (surfels) placed on the lattice of voxel corners: a corner whose eight neighbouring voxels are
  neither all inside nor all outside is on the surface, and carries the area of the marching-
  cubes surface inside its 2 × 2 × 2 neighbourhood (edge midpoints as vertices), under the
  exam's voxel spacing. This is the definition of DeepMind's surface-distance package.
- `hd95_mm`: the 95th percentile of the distances from each structure's border voxels to the
  other's, both directions pooled (MedPy's `hd95`): a border voxel is a voxel of the structure
  with a face-neighbour outside it (or on the volume's edge), and a percentile between two
  distances is interpolated linearly.

Distances between surface points are exact Euclidean distances in mm, each computed from
whole voxel steps as sqrt((Δi·si)² + (Δj·sj)² + (Δk·sk)²), the way scipy's Euclidean distance
transform computes them, so a distance equal to τ counts as within τ whichever way it is found.
A point looks at the other surface's grid at the voxel offsets of a ball, shortest first: of
radius τ for NSD (nothing farther is ever searched), of three voxels for HD95, whose 95th
percentile rarely needs more; the points left beyond it, when their distances matter, are
searched in a k-d tree of the other surface's points. The cost follows the surfaces, never
the volume: no distance transform of the exam's volume is made.

The empty rules are the caller's (see `compare`): both empty is perfect agreement, one empty
is no overlap and the worst distance.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

Spacing = tuple[float, float, float]
BoolVolume = npt.NDArray[np.bool_]
Box = tuple[slice, slice, slice]

HD_PERCENTILE = 95.0


@dataclass(frozen=True)
class Agreement:
    """How one predicted structure agrees with its truth (one label of one exam)."""

    dice: float
    nsd: float
    hd95_mm: float
    predicted_voxels: int
    truth_voxels: int


def compare(truth: BoolVolume, predicted: BoolVolume, spacing: Spacing, tolerance_mm: float,
            worst_mm: float) -> Agreement:
    """Dice, NSD at `tolerance_mm` and HD95 of two boolean arrays on the same grid (a box that
    holds both structures). Both empty: Dice 1, NSD 1, HD95 0. One empty: Dice 0, NSD 0, HD95
    `worst_mm` (the caller's declared worst value, e.g. the exam's diagonal)."""
    truth_voxels = int(np.count_nonzero(truth))
    predicted_voxels = int(np.count_nonzero(predicted))
    if truth_voxels == 0 and predicted_voxels == 0:
        return Agreement(1.0, 1.0, 0.0, 0, 0)
    if truth_voxels == 0 or predicted_voxels == 0:
        return Agreement(0.0, 0.0, float(worst_mm), predicted_voxels, truth_voxels)
    overlap = int(np.count_nonzero(truth & predicted))
    dice = 2.0 * overlap / (truth_voxels + predicted_voxels)
    return Agreement(dice, surface_dice(truth, predicted, spacing, tolerance_mm),
                     hd95(truth, predicted, spacing), predicted_voxels, truth_voxels)


def bounding_box(mask: npt.NDArray[np.generic]) -> tuple[tuple[int, int, int],
                                                         tuple[int, int, int]] | None:
    """The smallest box holding every nonzero voxel: (first, last + 1) per axis, or None."""
    lows: list[int] = []
    highs: list[int] = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(np.any(mask, axis=others))
        if hit.size == 0:
            return None
        lows.append(int(hit[0]))
        highs.append(int(hit[-1]) + 1)
    return (lows[0], lows[1], lows[2]), (highs[0], highs[1], highs[2])


# --- surface Dice (NSD) -------------------------------------------------------------------

def surface_dice(truth: BoolVolume, predicted: BoolVolume, spacing: Spacing,
                 tolerance_mm: float) -> float:
    truth_surface, truth_points, truth_areas = lattice_surface(truth, spacing)
    predicted_surface, predicted_points, predicted_areas = lattice_surface(predicted, spacing)
    # Only whether a distance is within τ matters: the search stops beyond it.
    to_predicted = _distances(truth_points, predicted_points, predicted_surface, spacing,
                              within=tolerance_mm)
    to_truth = _distances(predicted_points, truth_points, truth_surface, spacing,
                          within=tolerance_mm)
    inside = (float(np.sum(truth_areas[to_predicted <= tolerance_mm]))
              + float(np.sum(predicted_areas[to_truth <= tolerance_mm])))
    total = float(np.sum(truth_areas)) + float(np.sum(predicted_areas))
    return inside / total if total > 0 else 0.0


def lattice_surface(mask: BoolVolume, spacing: Spacing
                    ) -> tuple[BoolVolume, npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """The surface on the lattice of voxel corners (index i stands for the corner between
    voxels i - 1 and i): where it is, its points, and each point's surfel area in mm²."""
    padded = np.pad(mask, 1).view(np.uint8)
    n0, n1, n2 = (n + 1 for n in mask.shape)
    codes = np.zeros((n0, n1, n2), dtype=np.uint8)
    for (a, b, c), bit in _CORNER_BITS:
        codes |= padded[a:a + n0, b:b + n1, c:c + n2] * np.uint8(bit)
    on_surface = (codes != 0) & (codes != 255)
    points = _where(on_surface)
    areas = surfel_areas(spacing)[codes[on_surface]]
    return on_surface, points, areas


# A corner's place in its 2 × 2 × 2 neighbourhood → its bit in the neighbourhood's code.
_CORNERS = tuple(itertools.product((0, 1), repeat=3))
_CORNER_BITS = tuple((c, 1 << (7 - (4 * c[0] + 2 * c[1] + c[2]))) for c in _CORNERS)


@cache
def surfel_areas(spacing: Spacing) -> npt.NDArray[np.float64]:
    """The surfel area (mm²) of each of the 256 neighbourhood codes under `spacing`."""
    codes, normals = _surfel_triangles()
    # A triangle's area vector scales by the products of the other two axes' spacings.
    scale = np.array([spacing[1] * spacing[2], spacing[0] * spacing[2], spacing[0] * spacing[1]])
    areas = np.bincount(codes, weights=np.linalg.norm(normals * scale, axis=1),
                        minlength=256).astype(np.float64)
    areas.setflags(write=False)
    return areas


@cache
def _surfel_triangles() -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """Every triangle of every code: its code, and its area vector at unit spacing."""
    per_code = _surfel_normals()
    codes = np.repeat(np.arange(256), [len(n) for n in per_code])
    return codes, np.concatenate(per_code)


@cache
def _surfel_normals() -> tuple[npt.NDArray[np.float64], ...]:
    """Per neighbourhood code, the area vectors (at unit spacing) of the triangles of its
    marching-cubes surface.

    The surface cuts every edge whose two corners differ at its midpoint. On each face of the
    cube those cut points are joined in pairs; a face with two diagonal corners inside and two
    outside is cut into separate corners of the minority (the inside corners when at most four
    of the eight are inside, the outside ones otherwise). The joined segments close into loops,
    and each loop is cut into triangles, taking of all its triangulations the one of largest
    area: the classic marching-cubes table's choice.
    """
    return tuple(np.concatenate([np.zeros((0, 3)),
                                 *(_triangle_normals(loop) for loop in _loops(code))])
                 for code in range(256))


def _loops(code: int) -> list[list[npt.NDArray[np.float64]]]:
    inside = {corner: bool(code & bit) for corner, bit in _CORNER_BITS}
    separate_inside = sum(inside.values()) <= 4
    joined: dict[frozenset[tuple[int, ...]], list[frozenset[tuple[int, ...]]]] = {}
    for axis, side in itertools.product(range(3), (0, 1)):
        ring = []
        for p, q in ((0, 0), (1, 0), (1, 1), (0, 1)):
            corner = [0, 0, 0]
            corner[axis] = side
            u, v = (a for a in range(3) if a != axis)
            corner[u], corner[v] = p, q
            ring.append(tuple(corner))
        edges = [frozenset((ring[i], ring[(i + 1) % 4])) for i in range(4)]
        cut = [e for e in edges if len({inside[c] for c in e}) == 2]
        if len(cut) == 2:
            pairs = [(cut[0], cut[1])]
        elif len(cut) == 4:  # diagonal corners alike: cut off the minority's two corners
            pairs = [(edges[i - 1], edges[i]) for i in range(4)
                     if inside[ring[i]] == separate_inside]
        else:
            pairs = []
        for a, b in pairs:
            joined.setdefault(a, []).append(b)
            joined.setdefault(b, []).append(a)
    loops: list[list[npt.NDArray[np.float64]]] = []
    seen: set[frozenset[tuple[int, ...]]] = set()
    for start in joined:
        if start in seen:
            continue
        loop, current = [start], start
        seen.add(start)
        while True:
            following = [e for e in joined[current] if e not in seen]
            if not following:
                break
            current = following[0]
            seen.add(current)
            loop.append(current)
        loops.append([np.mean([np.array(c, dtype=np.float64) for c in edge], axis=0)
                      for edge in loop])
    return loops


def _triangle_normals(loop: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    best: list[tuple[int, int, int]] = []
    best_area = -1.0
    for triangles in _triangulations(tuple(range(len(loop)))):
        area = sum(float(np.linalg.norm(_area_vector(loop, t))) for t in triangles)
        if area > best_area + 1e-12:
            best, best_area = triangles, area
    return np.array([_area_vector(loop, t) for t in best]).reshape(-1, 3)


def _area_vector(loop: list[npt.NDArray[np.float64]], t: tuple[int, int, int]
                 ) -> npt.NDArray[np.float64]:
    a, b, c = (loop[i] for i in t)
    return 0.5 * np.cross(b - a, c - a)


def _triangulations(polygon: tuple[int, ...]) -> list[list[tuple[int, int, int]]]:
    if len(polygon) < 3:
        return [[]]
    first, last = polygon[0], polygon[-1]
    out = []
    for k in range(1, len(polygon) - 1):
        for left in _triangulations(polygon[:k + 1]):
            for right in _triangulations(polygon[k:]):
                out.append([*left, *right, (first, polygon[k], last)])
    return out


# --- HD95 --------------------------------------------------------------------------------

def hd95(truth: BoolVolume, predicted: BoolVolume, spacing: Spacing) -> float:
    truth_border, truth_points = border_voxels(truth)
    predicted_border, predicted_points = border_voxels(predicted)
    # A first search within a few voxels: the 95th percentile usually lies there. When it
    # does not (more than 5 % of the distances are longer), the long ones are searched again.
    near = NEAR_VOXELS * max(spacing)
    parts = [_distances(predicted_points, truth_points, truth_border, spacing, within=near),
             _distances(truth_points, predicted_points, predicted_border, spacing, within=near)]
    pooled = np.concatenate(parts)
    position = HD_PERCENTILE / 100.0 * (len(pooled) - 1)
    if int(np.count_nonzero(np.isfinite(pooled))) > math.ceil(position):
        # The order statistics the percentile interpolates between are all known; the
        # unknown long distances only need to sort after them.
        pooled[~np.isfinite(pooled)] = np.finfo(np.float64).max
        return float(np.percentile(pooled, HD_PERCENTILE))
    parts = [_distances(predicted_points, truth_points, truth_border, spacing),
             _distances(truth_points, predicted_points, predicted_border, spacing)]
    return float(np.percentile(np.concatenate(parts), HD_PERCENTILE))


NEAR_VOXELS = 3.0


def border_voxels(mask: BoolVolume) -> tuple[BoolVolume, npt.NDArray[np.intp]]:
    """Voxels of the structure with a face-neighbour outside it (outside the array counts as
    outside): where they are, and their indices."""
    padded = np.pad(mask, 1)
    core = padded[1:-1, 1:-1, 1:-1]
    interior = core.copy()
    for axis in range(3):
        for shift in (0, 2):
            index = [slice(1, -1)] * 3
            index[axis] = slice(shift, shift + mask.shape[axis])
            interior &= padded[tuple(index)]
    border = core & ~interior
    return border, _where(border)


def _where(mask: BoolVolume) -> npt.NDArray[np.intp]:
    """The indices of the true voxels, one row each (np.argwhere, five times faster)."""
    return np.stack(np.unravel_index(np.flatnonzero(mask), mask.shape), axis=1)


def _distances(points: npt.NDArray[np.intp], others: npt.NDArray[np.intp],
               other_grid: BoolVolume, spacing: Spacing, *, within: float | None = None
               ) -> npt.NDArray[np.float64]:
    """The distance (mm) from each of `points` to the nearest of `others` (`other_grid`
    marks them); with `within`, distances longer than it are left infinite.

    Near distances are found by looking at the grid around each point, at the offsets of the
    ball of radius `within` (or a few voxels) in order of length; the points left over, when
    every distance is wanted, are searched in a k-d tree of the other points."""
    out = np.zeros(len(points), dtype=np.float64)
    if len(points) == 0:
        return out
    if len(others) == 0:
        out[:] = math.inf
        return out
    radius = within if within is not None else NEAR_VOXELS * max(spacing)
    offsets, lengths = _ball(spacing, radius)
    reach = np.max(np.abs(offsets), axis=0) if len(offsets) else np.zeros(3, dtype=np.intp)
    padded = np.pad(other_grid, [(int(r), int(r)) for r in reach])
    # Offsets in the padded grid as steps in its flattened order: one gather per offset.
    strides = np.array([padded.shape[1] * padded.shape[2], padded.shape[2], 1], dtype=np.intp)
    flat = padded.reshape(-1)
    at = (points + reach) @ strides
    steps = offsets @ strides
    todo = np.arange(len(points))
    out[:] = math.inf
    for step, length in zip(steps.tolist(), lengths.tolist(), strict=True):
        hit = flat[at[todo] + step]
        out[todo[hit]] = length
        todo = todo[~hit]
        if len(todo) == 0:
            break
    if within is not None or len(todo) == 0:
        return out
    from scipy.spatial import cKDTree  # noqa: PLC0415 - loaded when a far distance is needed

    scale = np.asarray(spacing, dtype=np.float64)
    _, nearest = cKDTree(others * scale).query(points[todo] * scale)
    out[todo] = _lengths((points[todo] - others[nearest]).astype(np.float64), spacing)
    return out


def _lengths(steps: npt.NDArray[np.float64], spacing: Spacing) -> npt.NDArray[np.float64]:
    """sqrt((Δi·si)² + (Δj·sj)² + (Δk·sk)²), summed in that order, as scipy's Euclidean
    distance transform computes it."""
    scaled = steps * np.asarray(spacing, dtype=np.float64)
    squared = scaled * scaled
    return np.sqrt((squared[:, 0] + squared[:, 1]) + squared[:, 2])


@cache
def _ball(spacing: Spacing, radius_mm: float) -> tuple[npt.NDArray[np.intp],
                                                       npt.NDArray[np.float64]]:
    """The voxel offsets at most `radius_mm` long (the zero offset included), shortest first,
    and their lengths."""
    reach = [int(math.floor(radius_mm / s + 1e-9)) for s in spacing]
    grid = np.indices([2 * r + 1 for r in reach]).reshape(3, -1).T - np.array(reach)
    lengths = _lengths(grid.astype(np.float64), spacing)
    keep = lengths <= radius_mm
    order = np.argsort(lengths[keep], kind="stable")
    return grid[keep][order].astype(np.intp), lengths[keep][order]
