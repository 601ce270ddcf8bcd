"""Challenge options that change how a submission is read or scored."""

from __future__ import annotations

from dataclasses import dataclass

# 2: NIfTI masks placed by their geometry, rescaled DICOM masks, ambiguous surfaces settled.
SCORER_VERSION = "podium-scorer/2"

@dataclass(frozen=True)
class ScoringOptions:
    # Inclusive HU range; truth and prediction are both restricted to it (segmentation only).
    hu_window: tuple[float, float] | None = None
    max_archive_members: int = 5000
    max_expanded_bytes: int = 4 * 1024**3
    max_errors: int = 20
    # segmentation-3d: the tolerance of the normalised surface distance (NSD), in mm.
    tolerance_mm: float = 1.0

    @classmethod
    def from_hu(cls, hu_low: float | None, hu_high: float | None) -> ScoringOptions:
        """The options of a stored challenge, whose HU window is two columns."""
        hu_window = (hu_low, hu_high) if hu_low is not None and hu_high is not None else None
        return cls(hu_window=hu_window)

    def __post_init__(self) -> None:
        if not self.tolerance_mm > 0:
            raise ValueError(f"tolerance_mm {self.tolerance_mm}: must be more than 0 mm")
        if self.hu_window is not None:
            low, high = self.hu_window
            if not low <= high:
                raise ValueError(f"hu_window {list(self.hu_window)}: low must not exceed high")
