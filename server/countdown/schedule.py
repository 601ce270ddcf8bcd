"""A challenge's clock as pure arithmetic: its phase derived from the stored countdown and "now",
never from a timer, and the organizer's transitions (docs/api.md).

A running challenge whose deadline has passed is closed, whether or not the process that should
have recorded the closing was alive at that second.

Per-team extensions: a team given extra time after an incident at its table sees the challenge
through `extension`: its deadline (or, while paused, its remaining time) is the challenge's plus
its extension. The challenge itself stays open for the organizer while any team still has time,
which is its phase seen with the largest extension.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

State = Literal["waiting", "running", "paused", "closed"]
Action = Literal["start", "pause", "resume", "extend", "close"]
ACTIONS: tuple[Action, ...] = ("start", "pause", "resume", "extend", "close")
NO_EXTENSION = timedelta(0)
MAX_EXTENSION = timedelta(hours=24)

# Which actions each (derived) state allows; the message of a refusal lists them.
ALLOWED: dict[State, tuple[Action, ...]] = {
    "waiting": ("start",),
    "running": ("pause", "extend", "close"),
    "paused": ("resume", "extend", "close"),
    "closed": (),
}


class InvalidTransition(Exception):
    def __init__(self, action: str, state: State) -> None:
        allowed = ", ".join(ALLOWED[state]) or "nothing: the challenge is over"
        super().__init__(f"cannot {action} a {state} challenge (allowed now: {allowed})")
        self.action = action
        self.state = state


@dataclass(frozen=True)
class Countdown:
    state: State
    duration: timedelta
    started_at: datetime | None = None
    deadline: datetime | None = None    # set while running (and kept once closed)
    remaining: timedelta | None = None  # set while paused
    closed_at: datetime | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Countdown:
        """The countdown of a challenge's row (any mapping with its columns)."""
        return cls(state=row["state"], duration=row["duration"], started_at=row["started_at"],
                   deadline=row["deadline"], remaining=row["remaining"],
                   closed_at=row["closed_at"])


@dataclass(frozen=True)
class Phase:
    state: State
    started_at: datetime | None
    deadline: datetime | None
    remaining_s: float


def phase_at(countdown: Countdown, now: datetime, extension: timedelta = NO_EXTENSION) -> Phase:
    state = countdown.state
    deadline = None
    if state == "waiting":
        remaining = countdown.duration
    elif state == "running":
        assert countdown.deadline is not None
        deadline = countdown.deadline + extension
        remaining = deadline - now
    elif state == "paused":
        remaining = (countdown.remaining or NO_EXTENSION) + extension
    else:
        deadline = countdown.closed_at or countdown.deadline
        remaining = NO_EXTENSION
    if state in ("running", "paused") and remaining <= NO_EXTENSION:
        state, remaining = "closed", NO_EXTENSION
    return Phase(state=state, started_at=countdown.started_at, deadline=deadline,
                 remaining_s=round(remaining.total_seconds(), 3))


def allowed_actions(countdown: Countdown, now: datetime,
                    latest_extension: timedelta = NO_EXTENSION) -> tuple[Action, ...]:
    """What an organizer may do at `now`: what `transition` accepts, and so the buttons the
    console enables. An extension for one team is allowed when "extend" is."""
    return ALLOWED[phase_at(countdown, now, latest_extension).state]


def transition(countdown: Countdown, action: str, now: datetime, *,
               seconds: float | None = None,
               latest_extension: timedelta = NO_EXTENSION) -> Countdown:
    """The countdown after an organizer's action at `now`; InvalidTransition if not allowed.

    `latest_extension` is the largest per-team extension: the challenge is still open while
    that team has time, so it can still be paused, extended or closed.
    """
    if action not in allowed_actions(countdown, now, latest_extension):
        raise InvalidTransition(action, phase_at(countdown, now, latest_extension).state)
    if action == "start":
        return replace(countdown, state="running", started_at=now,
                       deadline=now + countdown.duration, remaining=None)
    if action == "pause":
        assert countdown.deadline is not None
        # May be negative when only extended teams still have time; they keep theirs.
        return replace(countdown, state="paused", deadline=None,
                       remaining=countdown.deadline - now)
    if action == "resume":
        assert countdown.remaining is not None
        return replace(countdown, state="running", deadline=now + countdown.remaining,
                       remaining=None)
    if action == "extend":
        extra = extension_seconds(seconds)
        if countdown.state == "running":
            assert countdown.deadline is not None
            return replace(countdown, deadline=countdown.deadline + extra)
        assert countdown.remaining is not None
        return replace(countdown, remaining=countdown.remaining + extra)
    # close: ends it now for everyone, extended teams included.
    return replace(countdown, state="closed", closed_at=now,
                   deadline=countdown.deadline if countdown.state == "running" else now,
                   remaining=None)


Team = TypeVar("Team")


def close_keeping_extensions(countdown: Countdown, now: datetime,
                             extensions: Mapping[Team, timedelta]
                             ) -> tuple[Countdown, dict[Team, timedelta]]:
    """Closes the challenge now for every team but those whose own extra time still runs:
    they keep their deadline (or, while paused, their remaining time) to the second.

    The challenge's own time ends now, and each kept team's extension becomes what separates
    its unchanged deadline from now; teams whose time is over lose theirs. With no team left
    on extra time this is the plain close.
    """
    latest = max(extensions.values(), default=NO_EXTENSION)
    state = phase_at(countdown, now, latest).state
    if "close" not in ALLOWED[state]:
        raise InvalidTransition("close", state)
    if countdown.state == "running":
        assert countdown.deadline is not None
        left = countdown.deadline - now
        after = replace(countdown, deadline=now)
    else:
        left = countdown.remaining or NO_EXTENSION
        after = replace(countdown, remaining=NO_EXTENSION)
    kept = {team: left + extra for team, extra in extensions.items()
            if left + extra > NO_EXTENSION}
    if not kept:
        return transition(countdown, "close", now, latest_extension=latest), {}
    return after, kept


def extension_seconds(seconds: float | None) -> timedelta:
    """The extra time asked for: a finite number of seconds, more than 0 and at most a day
    (checked before it becomes a timedelta, which cannot hold 1e300 or NaN)."""
    if seconds is None or isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError("extend needs {\"seconds\": N}, a number of seconds > 0")
    limit = MAX_EXTENSION.total_seconds()
    # Compared first: NaN fails it, and an integer too large for a float never reaches
    # isfinite (which would overflow on it).
    if not (0 < seconds <= limit and math.isfinite(seconds)):
        raise ValueError(f"seconds must be > 0 and at most {int(limit)} (a day), "
                         f"got {repr(seconds)[:40]}")
    return timedelta(seconds=seconds)


def extend_team(countdown: Countdown, current: timedelta, now: datetime, seconds: float | None,
                *, latest_extension: timedelta = NO_EXTENSION) -> timedelta:
    """A team's new extension. Allowed while the challenge is open for someone; if the team's
    own time had already run out, the extra time counts from now, not from its past deadline."""
    state = phase_at(countdown, now, latest_extension).state
    if state not in ("running", "paused"):
        raise InvalidTransition("extend", state)
    extra = extension_seconds(seconds)
    if phase_at(countdown, now, current).state == "closed" and countdown.state == "running":
        assert countdown.deadline is not None
        current = now - countdown.deadline  # the team's time starts again from now
    elif phase_at(countdown, now, current).state == "closed":
        current = -(countdown.remaining or NO_EXTENSION)
    return current + extra


def upload_deadline(countdown: Countdown, extension: timedelta = NO_EXTENSION
                    ) -> datetime | None:
    """The moment a team's uploads stop: None while paused (the clock is stopped)."""
    if countdown.state == "running":
        assert countdown.deadline is not None
        return countdown.deadline + extension
    if countdown.state == "closed":
        assert countdown.closed_at is not None
        # Closed at its deadline: each team's own deadline. Closed by the organizer: then, or
        # earlier for a team whose time had already run out.
        if countdown.deadline is None:
            return countdown.closed_at
        return min(countdown.closed_at, countdown.deadline + extension)
    return None


def upload_refusal(countdown: Countdown, began: datetime, now: datetime, *,
                   extension: timedelta = NO_EXTENSION,
                   grace: timedelta = NO_EXTENSION) -> str | None:
    """Why an upload whose request began at `began` and is being stored at `now` is refused
    ("not_started" or "deadline_passed"), or None if it is on time. The grace lets an upload
    that began before the deadline finish after it; one that began after is always late."""
    if countdown.state == "waiting":
        return "not_started"
    if countdown.state == "paused":
        left = (countdown.remaining or NO_EXTENSION) + extension
        return None if left > NO_EXTENSION else "deadline_passed"
    deadline = upload_deadline(countdown, extension)
    assert deadline is not None
    if began >= deadline or now > deadline + grace:
        return "deadline_passed"
    return None


def freeze_start(countdown: Countdown, now: datetime, freeze: timedelta,
                 frozen_at: datetime | None) -> datetime | None:
    """When the board froze for non-jury viewers, or None if it is not frozen at `now`.

    Running: from `freeze` before the deadline (derived, so no timer is needed). Once frozen a
    board stays frozen — through a pause, an extension or the closing — for the rest of the
    event (the jury, who sees it live, announces the result); `frozen_at` records that moment
    when it is reached by an action or the ticker.
    """
    if frozen_at is not None:
        return frozen_at if frozen_at <= now else None
    if freeze <= NO_EXTENSION or countdown.state != "running":
        return None
    assert countdown.deadline is not None
    start = countdown.deadline - freeze
    return start if now >= start else None
