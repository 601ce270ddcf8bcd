"""The phase of a challenge derived from its countdown and a given now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.countdown import Countdown, phase_at

T0 = datetime(2019, 10, 13, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_waiting_shows_the_whole_duration() -> None:
    phase = phase_at(Countdown("waiting", HOUR), T0)
    assert (phase.state, phase.remaining_s, phase.deadline) == ("waiting", 3600, None)


def test_running_counts_down_to_the_deadline() -> None:
    countdown = Countdown("running", HOUR, started_at=T0, deadline=T0 + HOUR)
    assert phase_at(countdown, T0 + timedelta(minutes=59, seconds=30)).remaining_s == 30
    assert phase_at(countdown, T0 + timedelta(minutes=10)).state == "running"


def test_running_past_its_deadline_is_closed_even_if_nobody_closed_it() -> None:
    countdown = Countdown("running", HOUR, started_at=T0, deadline=T0 + HOUR)
    at_deadline = phase_at(countdown, T0 + HOUR)
    assert (at_deadline.state, at_deadline.remaining_s) == ("closed", 0)
    assert phase_at(countdown, T0 + 2 * HOUR).state == "closed"
    assert phase_at(countdown, T0 + HOUR - timedelta(milliseconds=1)).state == "running"


def test_paused_keeps_its_remaining_time() -> None:
    countdown = Countdown("paused", HOUR, started_at=T0, deadline=None,
                          remaining=timedelta(minutes=12))
    assert phase_at(countdown, T0 + 5 * HOUR).remaining_s == 720


def test_closed_has_nothing_left() -> None:
    countdown = Countdown("closed", HOUR, started_at=T0, deadline=T0 + HOUR)
    assert phase_at(countdown, T0).remaining_s == 0
