"""The countdown's pure arithmetic: phases at a given now, transitions, team extensions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.countdown import Countdown, InvalidTransition, extend_team, phase_at, transition
from server.errors import BadSeconds

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


# -- transitions ----------------------------------------------------------------------------

MIN = timedelta(minutes=1)


def started() -> Countdown:
    return transition(Countdown("waiting", HOUR), "start", T0)


def test_start_sets_the_deadline() -> None:
    c = started()
    assert (c.state, c.started_at, c.deadline) == ("running", T0, T0 + HOUR)


def test_pause_freezes_and_resume_moves_the_deadline_by_the_pause() -> None:
    paused = transition(started(), "pause", T0 + 10 * MIN)
    assert paused.remaining == 50 * MIN and paused.deadline is None
    assert phase_at(paused, T0 + 3 * HOUR).remaining_s == 50 * 60
    resumed = transition(paused, "resume", T0 + 25 * MIN)
    assert resumed.deadline == T0 + HOUR + 15 * MIN


def test_extend_while_running_and_while_paused() -> None:
    running = transition(started(), "extend", T0 + MIN, seconds=300)
    assert running.deadline == T0 + HOUR + 5 * MIN
    paused = transition(transition(started(), "pause", T0 + 30 * MIN), "extend",
                        T0 + 40 * MIN, seconds=600)
    assert paused.remaining == 40 * MIN


def test_pauses_and_extensions_add_up() -> None:
    c = started()
    c = transition(c, "pause", T0 + 20 * MIN)          # 40 min left
    c = transition(c, "extend", T0 + 22 * MIN, seconds=300)  # 45 min left
    c = transition(c, "resume", T0 + 30 * MIN)         # deadline 30 + 45
    c = transition(c, "pause", T0 + 50 * MIN)          # 25 min left
    c = transition(c, "resume", T0 + 60 * MIN)
    assert c.deadline == T0 + 85 * MIN
    assert phase_at(c, T0 + 85 * MIN).state == "closed"


def test_close_ends_it_now() -> None:
    c = transition(started(), "close", T0 + 30 * MIN)
    assert (c.state, c.closed_at) == ("closed", T0 + 30 * MIN)
    assert phase_at(c, T0 + 31 * MIN).deadline == T0 + 30 * MIN


@pytest.mark.parametrize(("countdown", "action", "state"), [
    (Countdown("waiting", HOUR), "pause", "waiting"),
    (Countdown("waiting", HOUR), "resume", "waiting"),
    (Countdown("waiting", HOUR), "extend", "waiting"),
    (Countdown("waiting", HOUR), "close", "waiting"),
    (Countdown("running", HOUR, T0, T0 + HOUR), "start", "running"),
    (Countdown("running", HOUR, T0, T0 + HOUR), "resume", "running"),
    (Countdown("paused", HOUR, T0, None, 10 * MIN), "start", "paused"),
    (Countdown("paused", HOUR, T0, None, 10 * MIN), "pause", "paused"),
    (Countdown("closed", HOUR, T0, T0 + HOUR, None, T0 + HOUR), "start", "closed"),
    (Countdown("closed", HOUR, T0, T0 + HOUR, None, T0 + HOUR), "resume", "closed"),
    (Countdown("closed", HOUR, T0, T0 + HOUR, None, T0 + HOUR), "extend", "closed"),
    (Countdown("closed", HOUR, T0, T0 + HOUR, None, T0 + HOUR), "close", "closed"),
    # Running past its deadline is closed even though nobody recorded it yet.
    (Countdown("running", HOUR, T0, T0 + HOUR), "pause", "closed"),
])
def test_invalid_transitions_name_the_current_state(countdown: Countdown, action: str,
                                                    state: str) -> None:
    with pytest.raises(InvalidTransition) as info:
        transition(countdown, action, T0 + 2 * HOUR if state == "closed" else T0, seconds=60)
    assert info.value.state == state
    assert f"a {state} challenge" in str(info.value)
    # The pure core raises the refusal the API sends as it is.
    assert (info.value.status, info.value.to_json()["error"]["state"]) == (409, state)


@pytest.mark.parametrize("seconds", [None, 0, -5, "300", True, 10**9])
def test_extend_needs_a_sensible_number_of_seconds(seconds: object) -> None:
    with pytest.raises(BadSeconds, match="seconds"):
        transition(started(), "extend", T0, seconds=seconds)  # type: ignore[arg-type]


def test_a_team_extension_moves_only_that_teams_deadline() -> None:
    c = started()
    extra = extend_team(c, timedelta(0), T0 + 30 * MIN, 600)
    assert extra == 10 * MIN
    assert phase_at(c, T0 + HOUR + MIN).state == "closed"
    team = phase_at(c, T0 + HOUR + MIN, extra)
    assert (team.state, team.remaining_s, team.deadline) == ("running", 540, T0 + 70 * MIN)


def test_the_challenge_stays_open_while_an_extended_team_has_time() -> None:
    c = started()
    extra = extend_team(c, timedelta(0), T0 + 30 * MIN, 600)
    # After everyone else's deadline the organizer can still pause the extended team's clock.
    paused = transition(c, "pause", T0 + 65 * MIN, latest_extension=extra)
    assert phase_at(paused, T0 + 2 * HOUR).state == "closed"
    assert phase_at(paused, T0 + 2 * HOUR, extra).remaining_s == 300
    resumed = transition(paused, "resume", T0 + 3 * HOUR, latest_extension=extra)
    assert phase_at(resumed, T0 + 3 * HOUR + 4 * MIN, extra).state == "running"
    assert phase_at(resumed, T0 + 3 * HOUR + 5 * MIN, extra).state == "closed"


def test_a_team_whose_time_ran_out_gets_its_extra_time_from_now() -> None:
    c = started()
    first = extend_team(c, timedelta(0), T0 + 30 * MIN, 120)        # until T0+62
    other = extend_team(c, timedelta(0), T0 + 30 * MIN, 900)        # keeps it open until T0+75
    again = extend_team(c, first, T0 + 70 * MIN, 300, latest_extension=other)
    assert phase_at(c, T0 + 74 * MIN, again).remaining_s == 60


def test_team_extension_refused_once_the_challenge_is_over() -> None:
    c = started()
    with pytest.raises(InvalidTransition):
        extend_team(c, timedelta(0), T0 + 2 * HOUR, 60)
    with pytest.raises(InvalidTransition):
        extend_team(Countdown("waiting", HOUR), timedelta(0), T0, 60)


def test_the_actions_allowed_are_the_ones_transition_accepts() -> None:
    from server.countdown.schedule import ACTIONS, allowed_actions

    waiting = Countdown("waiting", HOUR)
    running = transition(waiting, "start", T0)
    paused = transition(running, "pause", T0 + timedelta(minutes=1))
    closed = transition(running, "close", T0 + timedelta(minutes=2))
    expired = running  # past its deadline, not yet recorded as closed
    for countdown, now, expected in (
            (waiting, T0, ("start",)),
            (running, T0 + timedelta(minutes=5), ("pause", "extend", "close")),
            (paused, T0 + 5 * HOUR, ("resume", "extend", "close")),
            (closed, T0 + timedelta(minutes=3), ()),
            (expired, T0 + 2 * HOUR, ())):
        assert allowed_actions(countdown, now) == expected
        for action in ACTIONS:
            try:
                transition(countdown, action, now, seconds=60)
            except InvalidTransition:
                assert action not in expected, (countdown.state, action)
            else:
                assert action in expected, (countdown.state, action)
    # An extended team's time keeps the challenge open for its organizer.
    assert allowed_actions(expired, T0 + HOUR + timedelta(minutes=1),
                           timedelta(minutes=5)) == ("pause", "extend", "close")


def test_close_can_keep_the_teams_still_on_extra_time() -> None:
    from server.countdown.schedule import close_keeping_extensions, upload_refusal

    running = transition(Countdown("waiting", HOUR), "start", T0)
    now = T0 + HOUR - timedelta(minutes=2)    # two minutes before the deadline
    extensions = {"kept": timedelta(minutes=10), "also": timedelta(minutes=1)}
    after, kept = close_keeping_extensions(running, now, extensions)
    # Closed now for the others; the extended teams keep their deadlines to the second.
    assert phase_at(after, now).state == "closed"
    assert kept == {"kept": timedelta(minutes=12), "also": timedelta(minutes=3)}
    for team, extra in extensions.items():
        assert phase_at(after, now, kept[team]).deadline == running.deadline + extra
    assert upload_refusal(after, now + timedelta(seconds=1), now + timedelta(seconds=1)) \
        == "deadline_passed"
    assert upload_refusal(after, now + timedelta(minutes=11), now + timedelta(minutes=11),
                          extension=kept["kept"]) is None

    # An extension whose time is over is dropped; with none left it is the plain close.
    late = T0 + HOUR + timedelta(minutes=5)
    after, kept = close_keeping_extensions(running, late, extensions)
    assert kept == {"kept": timedelta(minutes=5)}
    after, kept = close_keeping_extensions(running, now, {})
    assert (after.state, kept) == ("closed", {})

    # Paused: the kept team's remaining time is unchanged, the others' is gone.
    paused = transition(running, "pause", now)
    after, kept = close_keeping_extensions(paused, now + HOUR, {"kept": timedelta(minutes=10)})
    assert phase_at(after, now + HOUR).state == "closed"
    assert phase_at(after, now + HOUR, kept["kept"]).remaining_s == 12 * 60
    with pytest.raises(InvalidTransition):
        close_keeping_extensions(Countdown("waiting", HOUR), T0, extensions)
