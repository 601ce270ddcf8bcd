"""server/store/submissions.py: a stored submission, read as one dataclass, and what each
viewer sees of it."""

from __future__ import annotations

import asyncpg

from server.access import Principal, Role
from server.event import Feedback
from server.store import submissions as store
from server.submission import may_see, submission_json
from tests.helpers import EXAMPLE_DIR, AppServer, run, wait_for

NODULES = (EXAMPLE_DIR / "submissions" / "nodules-nodule-hunters.csv").read_bytes()


def test_a_stored_submission_and_what_each_viewer_sees(server: AppServer) -> None:
    tokens = server.tokens()
    server.act("nodules", "start")
    status, receipt = server.upload("nodules", tokens["Nodule Hunters"], "p.csv", NODULES)
    assert status == 202
    wait_for(lambda: server.json("GET", f"/api/v1/submissions/{receipt['id']}",
                                 tokens["jury"])[1]["status"] == "scored",
             timeout=120, what="the upload scored")

    async def read() -> tuple[store.Submission | None, list[store.Submission],
                              store.Submission | None]:
        conn = await asyncpg.connect(server.database_url)
        try:
            return (await store.submission(conn, receipt["id"]),
                    await store.submissions(conn, team_id=None, limit=10),
                    await store.submission(conn, 10**9))
        finally:
            await conn.close()

    one, listed, missing = run(read())
    assert missing is None and one is not None and listed == [one]
    assert (one.challenge, one.team, one.filename, one.sha256) == (
        "nodules", "Nodule Hunters", "p.csv", receipt["sha256"])
    assert one.final and one.metrics is not None and 0 <= one.metrics["auc"] <= 1
    assert one.team_feedback is Feedback.STATUS  # the example's nodules challenge

    team = Principal(Role.TEAM, one.team_id, one.team)
    other = Principal(Role.TEAM, one.team_id + 1000, "Someone else")
    jury = Principal(Role.JURY, None, None)
    assert may_see(team, one) and may_see(jury, one)
    assert not may_see(other, one) and not may_see(None, one)
    shown = submission_json(one, team)
    assert "metrics" not in shown and shown["errors"] == [] and "scorer_version" not in shown
    assert submission_json(one, jury)["metrics"] == one.metrics
