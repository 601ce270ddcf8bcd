"""Dice, NSD and HD95 against MedPy and DeepMind's surface-distance, on anisotropic grids."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from medpy.metric.binary import dc, hd95

from server.evaluators.distances import bounding_box, compare, surfel_areas

from .volumes import ellipsoid

SHAPE = (20, 24, 16)


def deepmind_nsd(truth: np.ndarray, predicted: np.ndarray, spacing: tuple[float, ...],
                 tolerance: float) -> float:
    import surface_distance

    with warnings.catch_warnings():
        # The package calls scipy.ndimage's deprecated namespaces.
        warnings.simplefilter("ignore")
        distances = surface_distance.compute_surface_distances(truth, predicted, spacing)
        return float(surface_distance.compute_surface_dice_at_tolerance(distances, tolerance))


def structure(rng: np.random.Generator, *, ragged: float = 0.02) -> np.ndarray:
    centre = rng.uniform(3, 13, 3)
    radii = rng.uniform(1.5, 7, 3)
    out = ellipsoid(SHAPE, centre, radii)
    out ^= rng.random(SHAPE) < ragged  # holes and specks: every neighbourhood code shows up
    return out


@pytest.mark.parametrize("seed", range(12))
def test_dice_nsd_and_hd95_agree_with_medpy_and_surface_distance(seed: int) -> None:
    rng = np.random.default_rng(seed)
    spacing = tuple(float(s) for s in rng.uniform(0.4, 2.6, 3))
    truth, predicted = structure(rng), structure(rng)
    if seed % 4 == 0:
        predicted = truth.copy()
        predicted[1:, :, :] |= truth[:-1, :, :]  # one voxel thicker along i
    if seed % 4 == 1:  # a structure touching the volume's edge
        truth[:, :, -2:] |= truth.any(axis=2, keepdims=True)
    tolerance = float(rng.choice([0.5, 1.0, float(spacing[0]), 2.0]))
    got = compare(truth, predicted, spacing, tolerance, worst_mm=1e3)
    assert got.dice == pytest.approx(dc(predicted, truth), abs=1e-6)
    assert got.hd95_mm == pytest.approx(hd95(predicted, truth, spacing), abs=1e-6)
    assert got.nsd == pytest.approx(deepmind_nsd(truth, predicted, spacing, tolerance),
                                    abs=1e-6)


def test_single_voxels_and_distances_exactly_at_the_tolerance() -> None:
    truth = np.zeros(SHAPE, dtype=bool)
    predicted = np.zeros(SHAPE, dtype=bool)
    truth[5, 5, 5] = True
    predicted[5, 5, 7] = True  # two voxels away along k: 1.4 mm at 0.7 mm
    spacing = (0.9, 1.1, 0.7)
    got = compare(truth, predicted, spacing, 1.4, worst_mm=1e3)
    assert got.dice == 0.0
    assert got.nsd == pytest.approx(deepmind_nsd(truth, predicted, spacing, 1.4), abs=1e-6)
    assert got.hd95_mm == pytest.approx(hd95(predicted, truth, spacing), abs=1e-6)


def test_far_apart_structures_are_measured_to_the_last_voxel() -> None:
    """Farther than the near search's ball: HD95 then comes from the k-d tree."""
    truth = ellipsoid(SHAPE, (4, 5, 4), (2.5, 3, 2))
    predicted = ellipsoid(SHAPE, (15, 18, 11), (3, 2.5, 3))
    spacing = (0.6, 0.9, 1.7)
    got = compare(truth, predicted, spacing, 1.0, worst_mm=1e3)
    assert got.hd95_mm > 3 * 1.7
    assert got.hd95_mm == pytest.approx(hd95(predicted, truth, spacing), abs=1e-6)
    assert got.nsd == 0.0 == deepmind_nsd(truth, predicted, spacing, 1.0)


def test_the_surfel_areas_are_surface_distances_table_at_any_spacing() -> None:
    from surface_distance import lookup_tables

    rng = np.random.default_rng(7)
    for spacing in [(1.0, 1.0, 1.0), *(tuple(float(v) for v in rng.uniform(0.3, 3, 3))
                                       for _ in range(5))]:
        assert np.allclose(surfel_areas(spacing),  # type: ignore[arg-type]
                           lookup_tables.create_table_neighbour_code_to_surface_area(spacing),
                           atol=1e-12)


def test_the_empty_rules() -> None:
    empty = np.zeros(SHAPE, dtype=bool)
    some = ellipsoid(SHAPE, (10, 12, 8), (3, 3, 3))
    both = compare(empty, empty, (1.0, 1.0, 1.0), 1.0, worst_mm=42.0)
    assert (both.dice, both.nsd, both.hd95_mm) == (1.0, 1.0, 0.0)
    for truth, predicted in ((empty, some), (some, empty)):
        one = compare(truth, predicted, (1.0, 1.0, 1.0), 1.0, worst_mm=42.0)
        assert (one.dice, one.nsd, one.hd95_mm) == (0.0, 0.0, 42.0)


def test_bounding_box() -> None:
    mask = np.zeros(SHAPE, dtype=np.uint8)
    assert bounding_box(mask) is None
    mask[3, 4:6, 15] = 2
    assert bounding_box(mask) == ((3, 4, 15), (4, 6, 16))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_dice_and_nsd_are_symmetric_and_within_0_and_1(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = structure(rng, ragged=0.0), structure(rng, ragged=0.0)
    spacing = (0.8, 1.3, 2.0)
    ab, ba = compare(a, b, spacing, 1.0, 99.0), compare(b, a, spacing, 1.0, 99.0)
    assert ab.dice == ba.dice and 0.0 <= ab.dice <= 1.0
    assert ab.nsd == pytest.approx(ba.nsd, abs=1e-12) and 0.0 <= ab.nsd <= 1.0
    assert ab.hd95_mm == pytest.approx(ba.hd95_mm, abs=1e-12) and ab.hd95_mm >= 0.0
