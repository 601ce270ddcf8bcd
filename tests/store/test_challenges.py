"""server/store/challenges.py: a stored challenge has the event file's names and types, and
the clock's and the board's state, read with one column list."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from server.event import Counts, Feedback, Visibility, parse_event
from server.store import challenges as store
from tests.helpers import AppServer, run


def test_a_stored_challenge_has_the_event_files_shape(server: AppServer,
                                                      example_event: Path) -> None:
    import asyncpg

    declared = {c.slug: c for c in parse_event(example_event).challenges}

    async def read() -> tuple[list[store.Challenge], store.Challenge | None]:
        conn = await asyncpg.connect(server.database_url)
        try:
            return await store.challenges(conn), await store.challenge(conn, "no-such")
        finally:
            await conn.close()

    stored, missing = run(read())
    assert missing is None
    assert [c.slug for c in stored] == list(declared)
    for challenge in stored:
        spec = declared[challenge.slug]
        for name in ("title", "kind", "duration", "counts", "max_submissions", "team_feedback",
                     "leaderboard", "freeze_window", "upload_grace", "hu_window",
                     "max_upload_bytes"):
            assert getattr(challenge, name) == getattr(spec, name), (challenge.slug, name)
        assert challenge.truth == spec.truth.resolve() or challenge.truth == spec.truth
        assert challenge.state == "waiting" and challenge.countdown.deadline is None
        assert challenge.board_seq == 0 and challenge.frozen_seq is None
    edss = next(c for c in stored if c.slug == "edss")
    assert (edss.counts, edss.team_feedback, edss.leaderboard) == (
        Counts.LAST, Feedback.SCORE, Visibility.TEAMS)
    assert edss.freeze_window == timedelta(minutes=10)
