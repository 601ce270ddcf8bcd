"""The challenge clock: pure arithmetic of states and deadlines (SPEC §5)."""

from server.countdown.schedule import Countdown, Phase, phase_at

__all__ = ["Countdown", "Phase", "phase_at"]
