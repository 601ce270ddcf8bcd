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

    def __post_init__(self) -> None:
        if self.hu_window is not None:
            low, high = self.hu_window
            if not low <= high:
                raise ValueError(f"hu_window {list(self.hu_window)}: low must not exceed high")
