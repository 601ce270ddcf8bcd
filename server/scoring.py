"""The bridge from a challenge's settings to the evaluators' options."""

from __future__ import annotations

from server.evaluators import ScoringOptions
from server.event import ChallengeSpec


def options_for(challenge: ChallengeSpec) -> ScoringOptions:
    return ScoringOptions(hu_window=challenge.hu_window)
