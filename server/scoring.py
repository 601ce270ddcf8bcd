"""The bridge from a challenge's settings (in the event file or the database) to the
evaluators' options: one place, whichever path scores a file."""

from __future__ import annotations

from server.evaluators import ScoringOptions
from server.event import ChallengeSpec


def scoring_options(hu_low: float | None, hu_high: float | None) -> ScoringOptions:
    hu_window = (hu_low, hu_high) if hu_low is not None and hu_high is not None else None
    return ScoringOptions(hu_window=hu_window)


def options_for(challenge: ChallengeSpec) -> ScoringOptions:
    low, high = challenge.hu_window or (None, None)
    return scoring_options(low, high)
