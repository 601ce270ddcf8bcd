"""The challenge clock: pure arithmetic of states and deadlines (docs/api.md, "States"), its
storage, and the task that closes a challenge at its deadline."""

from server.countdown.schedule import (
    ACTIONS,
    Countdown,
    InvalidTransition,
    Phase,
    extend_team,
    freeze_start,
    phase_at,
    transition,
    upload_deadline,
    upload_refusal,
)

__all__ = ["ACTIONS", "Countdown", "InvalidTransition", "Phase", "extend_team", "freeze_start",
           "phase_at", "transition", "upload_deadline", "upload_refusal"]
