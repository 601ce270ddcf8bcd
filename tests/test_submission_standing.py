"""A team's standing on a challenge (server/submission.py `team_standing`, GET
/api/v1/challenges/{slug}/standing): which submission counts and why, what is left."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import EXAMPLE_DIR, AppServer, set_challenge_keys

EDSS = (EXAMPLE_DIR / "submissions" / "edss-myelin-minds.csv").read_bytes()
NODULES = (EXAMPLE_DIR / "submissions" / "nodules-nodule-hunters.csv").read_bytes()


def test_the_team_is_told_which_submission_counts_and_how_many_are_left(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    set_challenge_keys(example_event, "edss", max_submissions=3)
    set_challenge_keys(example_event, "nodules", counts="best")
    server = AppServer(example_event, tmp_path / "data", database_url).start()
    try:
        tokens = server.tokens()
        team = tokens["Myelin Minds"]
        for slug in ("edss", "nodules"):
            server.act(slug, "start")
        status, standing = server.json("GET", "/api/v1/challenges/edss/standing", team)
        assert status == 200
        assert standing == {"challenge": "edss", "counts": "last", "counted_submission": None,
                            "has_valid": False, "reason": "none yet: no valid submission",
                            "submissions": 0, "max_submissions": 3, "left": 3, "pending": 0}
        _, first = server.upload("edss", team, "a.csv", EDSS, "?wait=60")
        _, broken = server.upload("edss", team, "b.csv", b"id,edss\nMS001,42\n", "?wait=60")
        assert (first["status"], broken["status"]) == ("scored", "invalid")
        _, standing = server.json("GET", "/api/v1/challenges/edss/standing", team)
        # The invalid one changes nothing: the last *valid* submission counts.
        assert standing["counted_submission"] == first["id"]
        assert standing["reason"].startswith("your last valid submission counts")
        assert (standing["submissions"], standing["left"]) == (2, 1)

        # Best counts, but this challenge shows the status only: the team is not told which
        # of its files is the best, which would tell it what the status hides.
        _, good = server.upload("nodules", team, "n.csv", NODULES, "?wait=60")
        assert good["status"] == "scored"
        _, standing = server.json("GET", "/api/v1/challenges/nodules/standing", team)
        assert standing["has_valid"] and standing["counted_submission"] is None
        assert "which one is not shown" in standing["reason"]
        assert standing["left"] is None  # no limit

        # Only a team asks, and only for its own challenges.
        assert server.json("GET", "/api/v1/challenges/edss/standing", tokens["jury"])[0] == 403
        status, body = server.json("GET", "/api/v1/challenges/sarcopenia/standing", team)
        assert (status, body["error"]["code"]) == (403, "not_registered")
    finally:
        server.stop()
