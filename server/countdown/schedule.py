"""A challenge's phase derived from its stored countdown and "now", never from a timer.

A running challenge whose deadline has passed is closed, whether or not the process that should
have recorded the closing was alive at that second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

State = Literal["waiting", "running", "paused", "closed"]


@dataclass(frozen=True)
class Countdown:
    state: State
    duration: timedelta
    started_at: datetime | None = None
    deadline: datetime | None = None
    remaining: timedelta | None = None  # kept while paused


@dataclass(frozen=True)
class Phase:
    state: State
    started_at: datetime | None
    deadline: datetime | None
    remaining_s: float


def phase_at(countdown: Countdown, now: datetime) -> Phase:
    state = countdown.state
    if state == "waiting":
        remaining = countdown.duration
    elif state == "running":
        assert countdown.deadline is not None
        remaining = countdown.deadline - now
        if remaining <= timedelta(0):
            state, remaining = "closed", timedelta(0)
    elif state == "paused":
        remaining = countdown.remaining or timedelta(0)
    else:
        remaining = timedelta(0)
    return Phase(state=state, started_at=countdown.started_at, deadline=countdown.deadline,
                 remaining_s=round(remaining.total_seconds(), 3))
