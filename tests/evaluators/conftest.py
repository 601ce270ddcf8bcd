from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from .factory import BoolArray, make_segmentation_truth, synthetic_slice, write_exam

IDS = ["0042", "0107", "0311"]


@dataclass(frozen=True)
class SegTruth:
    path: Path
    masks: dict[str, BoolArray]
    spacing: tuple[float, float]


@pytest.fixture(scope="session")
def seg_truth(tmp_path_factory: pytest.TempPathFactory) -> SegTruth:
    path = tmp_path_factory.mktemp("seg-truth")
    masks = make_segmentation_truth(path, IDS, shape=(64, 64))
    return SegTruth(path, masks, (0.78125, 0.78125))


@pytest.fixture(scope="session")
def wide_exam(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BoolArray]:
    """A non-square exam (40 rows × 56 columns), where an orientation mistake shows."""
    path = tmp_path_factory.mktemp("wide") / "exam.dcm"
    hu, mask = synthetic_slice((40, 56), seed=7)
    write_exam(path, hu, (0.7, 0.9))
    return path, mask


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
