"""The orientation rule: a NIfTI mask lands on its exam's grid from its affine, whatever the
exam's orientation and the writer's axis order; without an orientation, by its shape."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.evaluators.exam import ExamGrid
from server.evaluators.mask import read_mask
from server.evaluators.orientation import writer_default
from server.evaluators.result import Invalid, Problem

from .real_tools import DIHEDRAL

RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0])
# Exam planes as scanners write them: (along a row, down a column).
PLANES = [
    ((1, 0, 0), (0, 1, 0)),    # axial, supine
    ((-1, 0, 0), (0, -1, 0)),  # axial, prone
    ((0, 1, 0), (0, 0, -1)),   # sagittal
    ((1, 0, 0), (0, 0, -1)),   # coronal
]


def affine_for(layout: str, grid: ExamGrid, thickness: float = 5.0) -> np.ndarray:
    """The affine that says where each voxel of DIHEDRAL[layout](mask) lies in the patient."""
    rows, columns = grid.shape
    rr, cc = np.mgrid[0:rows, 0:columns]
    r_of, c_of = DIHEDRAL[layout](rr), DIHEDRAL[layout](cc)
    across, down = (np.array(v, float) for v in grid.axes)
    row_mm, column_mm = grid.spacing or (1.0, 1.0)
    position = np.array(grid.position or (0.0, 0.0, 0.0))

    def at(i: int, j: int) -> np.ndarray:
        return position + r_of[i, j] * row_mm * down + c_of[i, j] * column_mm * across

    origin = at(0, 0)
    lps = np.eye(4)
    lps[:3, 0] = at(1, 0) - origin
    lps[:3, 1] = at(0, 1) - origin
    lps[:3, 2] = np.cross(across, down) * thickness
    lps[:3, 3] = origin
    ras = np.eye(4)
    ras[:3, :] = RAS_FROM_LPS @ lps[:3, :]
    return ras


def nifti(array: np.ndarray, affine: np.ndarray, *, qform_only: bool = False) -> bytes:
    image = nib.Nifti1Image(array.astype(np.uint8)[:, :, np.newaxis], affine)
    if qform_only:
        image.header.set_qform(affine, code=1)
        image.header.set_sform(None, code=0)
    return image.to_bytes()


@settings(max_examples=120, deadline=None)
@given(
    layout=st.sampled_from(sorted(DIHEDRAL)),
    plane=st.sampled_from(PLANES),
    shape=st.sampled_from([(6, 6), (5, 7), (7, 4)]),
    spacing=st.tuples(st.floats(0.3, 3.0), st.floats(0.3, 3.0)),
    position=st.tuples(*(st.floats(-300, 300) for _ in range(3))),
    qform_only=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_any_layout_on_any_exam_reads_back(layout: str, plane: tuple, shape: tuple[int, int],
                                           spacing: tuple[float, float],
                                           position: tuple[float, float, float],
                                           qform_only: bool, seed: int) -> None:
    grid = ExamGrid(shape, spacing, plane, position)
    mask = np.random.default_rng(seed).random(shape) < 0.4
    affine = affine_for(layout, grid)
    if writer_default(affine) is not None:
        return  # an exam at the origin with default axes: covered by the rule below
    notes: list[Problem] = []
    data = nifti(DIHEDRAL[layout](mask), affine, qform_only=qform_only)
    assert np.array_equal(read_mask(data, "m.nii", grid, "x", notes), mask)
    # NIfTI stores the affine in float32: still within 1 % and half a pixel.
    assert notes == []


def test_an_exam_without_geometry_is_axial_with_identity_orientation() -> None:
    grid = ExamGrid((5, 7))
    mask = np.random.default_rng(1).random((5, 7)) < 0.5
    lps_identity = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps_identity[:3, 3] = [-10.0, -20.0, 30.0]  # an origin: not a writer's default
    for layout in ("transpose", "transpose_flip_rows"):
        data = nifti(DIHEDRAL[layout](mask), lps_identity if layout == "transpose" else
                     affine_for(layout, ExamGrid((5, 7), None, None, (-10.0, -20.0, 30.0))))
        assert np.array_equal(read_mask(data, "m.nii", grid), mask), layout


@pytest.mark.parametrize(("affine", "why"), [
    (np.eye(4), "identity"),
    (np.diag([0.8, 0.8, 1.0, 1.0]), "spacing"),
    (np.diag([-1.0, -1.0, 1.0, 1.0]), "ITK's default"),
])
def test_writer_defaults_carry_no_orientation(affine: np.ndarray, why: str) -> None:
    reason = writer_default(affine)
    assert reason is not None and why in reason
    moved = affine.copy()
    moved[:3, 3] = [1.0, 2.0, 3.0]
    assert writer_default(moved) is None


def test_square_exam_without_orientation_is_read_x_columns_with_a_warning() -> None:
    grid = ExamGrid((6, 6), (0.8, 0.8), PLANES[0], (-100.0, -100.0, 0.0))
    mask = np.zeros((6, 6), bool)
    mask[0, 1:5] = True  # a bar along the first row
    notes: list[Problem] = []
    got = read_mask(nifti(mask.T, np.eye(4)), "m.nii", grid, "0042", notes)
    assert np.array_equal(got, mask)
    [note] = notes
    assert note.code == "orientation_assumed" and note.id == "0042"
    assert "x = columns, y = rows" in note.message and "CopyInformation" in note.message
    # The pixel_array-shaped array reads transposed: what the warning says.
    assert np.array_equal(read_mask(nifti(mask, np.eye(4)), "m.nii", grid), mask.T)


def test_spacing_off_by_more_than_one_percent_warns() -> None:
    grid = ExamGrid((5, 7), (0.7, 0.9), PLANES[0], (-50.0, -60.0, 10.0))
    mask = np.random.default_rng(3).random((5, 7)) < 0.5
    affine = affine_for("transpose", grid)
    for scale, warned in ((1.009, False), (1.02, True)):
        scaled = affine.copy()
        scaled[:3, :2] *= scale
        notes: list[Problem] = []
        assert np.array_equal(read_mask(nifti(mask.T, scaled), "m.nii", grid, "a", notes),
                              mask)
        assert [n.code for n in notes] == (["spacing_mismatch"] if warned else [])


def test_an_oblique_mask_is_refused() -> None:
    grid = ExamGrid((6, 6), (1.0, 1.0), PLANES[0], (-3.0, -3.0, 0.0))
    affine = affine_for("transpose", grid)
    angle = np.radians(8)
    turn = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                     [0, 0, 1]])
    affine[:3, :3] = turn @ affine[:3, :3]
    with pytest.raises(Invalid) as info:
        read_mask(nifti(np.ones((6, 6), bool), affine), "m.nii", grid, "a")
    [problem] = info.value.problems
    assert problem.code == "oblique_mask" and "8.0°" in problem.message


def test_a_placed_mask_of_the_wrong_shape_says_so() -> None:
    grid = ExamGrid((5, 7), (1.0, 1.0), PLANES[0], (-3.0, -3.0, 0.0))
    affine = affine_for("transpose", grid)
    with pytest.raises(Invalid) as info:
        read_mask(nifti(np.ones((5, 7), bool), affine), "m.nii", grid, "a")
    [problem] = info.value.problems
    assert problem.code == "wrong_shape" and "once placed by its affine" in problem.message
