"""server/inclusion/portal_views.py and server/inclusion/live.py over HTTP and the websocket: a
center sees only its own exams, showing its violations marks them notified, the organizers'
decisions (accept → review, reject → excluded, every refusal), withdrawals, the tables' roles,
and the `exams` channel (a real websockets client)."""

from __future__ import annotations

import json
from typing import Any

from server.keys import POOL
from server.store import exams as store
from tests.helpers import AppServer, wait_for
from tests.test_leaderboard import subscribe, ws_connect

THICK = {"code": "slice_thickness", "rule": "slice_thickness_mm", "severity": "violation",
         "message": "slice thickness 2.5 mm; this question needs < 1.25 mm"}
COUNT = {"code": "nodule_count", "rule": "nodules.count", "severity": "violation",
         "message": "7 nodules; this question needs 1 to 5"}
KERNEL = {"code": "kernel", "rule": "kernel", "severity": "warning",
          "message": "kernel B30f is soft; mostly hard: accepted, a reviewer will look"}


def exam_of(server: AppServer, center: str, key: str, findings: list[dict[str, Any]] | None,
            challenge: str = "nodules-3d") -> int:
    """An exam sent by `center` and checked with `findings` (None: left as received)."""
    async def go() -> int:
        async with server.app[POOL].acquire() as conn:
            center_id = await conn.fetchval("SELECT id FROM center WHERE name = $1", center)
            exam = await store.create(conn, center_id=center_id, challenge=challenge,
                                      channel="web", label=f"{key}.zip", source_key=key,
                                      message="received by the web: 3 files")
            if findings is not None:
                await store.checked(conn, exam, findings, {"slices": 24}, "criteria checked")
            return exam
    return server.call(go())


def violation_ids(server: AppServer, exam: int) -> list[int]:
    async def go() -> list[int]:
        async with server.app[POOL].acquire() as conn:
            return [f.id for f in (await store.findings(conn, [exam]))[exam]]
    return server.call(go())


def test_a_center_sees_its_own_exams_only_and_is_marked_notified(server: AppServer) -> None:
    tokens = server.tokens()
    lyon, bordeaux = tokens["CHU de Lyon"], tokens["CHU de Bordeaux"]
    mine = exam_of(server, "CHU de Lyon", "lyon-1", [THICK, KERNEL])
    theirs = exam_of(server, "CHU de Bordeaux", "bdx-1", [])

    status, body = server.json("GET", "/api/v1/center/exams", lyon)
    assert status == 200
    assert [e["id"] for e in body["exams"]] == [mine]
    exam = body["exams"][0]
    assert exam["stage"] == "checked" and "pseudonym" not in exam
    assert [(s["step"], s["state"]) for s in exam["steps"]] == [
        ("received", "done"), ("deidentified", "done"), ("criteria", "current"),
        ("quality", "todo"), ("outcome", "todo")]
    assert [(f["code"], f["state"], f["blocking"]) for f in exam["findings"]] == [
        ("slice_thickness", "open", True), ("kernel", "open", False)]
    assert [t["kind"] for t in exam["timeline"]] == ["criteria", "received"]  # newest first
    progress = {p["challenge"]: p for p in body["progress"]}
    assert set(progress) == {"sarcopenia", "nodules-3d", "edss"}
    assert progress["nodules-3d"]["received"] == 1
    assert progress["nodules-3d"]["question"]["received"] == 2  # both centers' exams
    # Shown once: the violation is now "notified" (LORIS); the warning stays open.
    status, again = server.json("GET", f"/api/v1/center/exams/{mine}", lyon)
    assert status == 200
    assert [f["state"] for f in again["findings"]] == ["notified", "open"]

    # Another center's exam does not exist for Lyon; the organizers see any.
    status, refused = server.json("GET", f"/api/v1/center/exams/{theirs}", lyon)
    assert status == 404 and refused["error"]["code"] == "unknown_exam"
    status, refused = server.json("GET", "/api/v1/center/exams/999999", lyon)
    assert status == 404 and refused["error"]["code"] == "unknown_exam"
    assert server.json("GET", f"/api/v1/center/exams/{theirs}", bordeaux)[0] == 200
    assert server.json("GET", f"/api/v1/center/exams/{theirs}", tokens["organizer"])[0] == 200
    # The page shows the center's own exams, never another's.
    status, _, html = server.request("GET", "/center", lyon)
    assert status == 200 and b"lyon-1.zip" in html and b"bdx-1.zip" not in html

    # The tables: organizers and jury; not a center, a reviewer or a team.
    for who, expected in (("organizer", 200), ("jury", 200), ("CHU de Lyon", 403),
                          ("Dr Leroy", 403), ("Nodule Hunters", 403)):
        assert server.json("GET", "/api/v1/inclusion/tables", tokens[who])[0] == expected, who
    tables = server.json("GET", "/api/v1/inclusion/tables", tokens["organizer"])[1]
    nodules = next(q for q in tables["table3"] if q["challenge"] == "nodules-3d")
    assert (nodules["received"], nodules["pending"], nodules["wanted"]) == (2, 2, 33)


def test_decisions_accept_to_review_reject_to_excluded_and_the_refusals(
        server: AppServer) -> None:
    organizer = server.tokens()["organizer"]
    accepted = exam_of(server, "CHU de Lyon", "a", [THICK, COUNT, KERNEL])
    thick, count, warning = violation_ids(server, accepted)

    def decide(violation: int, body: dict[str, Any]) -> tuple[int, Any]:
        return server.json("POST", f"/api/v1/violations/{violation}/decision", organizer, body)

    status, refused = decide(thick, {"state": "accepted"})
    assert status == 400 and refused["error"]["code"] == "reason_required"
    status, refused = decide(thick, {"state": "kept", "reason": "fine"})
    assert status == 400 and refused["error"]["code"] == "bad_decision"
    assert "accepted" in refused["error"]["message"]
    status, refused = decide(999999, {"state": "accepted", "reason": "fine"})
    assert status == 404 and refused["error"]["code"] == "unknown_violation"
    status, refused = decide(warning, {"state": "accepted", "reason": "fine"})
    assert status == 409 and refused["error"]["code"] == "decision_refused"
    assert "warning" in refused["error"]["message"]

    status, answer = decide(thick, {"state": "accepted", "reason": "1.5 mm is fine here",
                                    "by": "Anna"})
    assert status == 200
    assert (answer["violation"]["state"], answer["violation"]["decided_by"]) == (
        "accepted", "organizer (Anna)")
    assert answer["exam"]["stage"] == "checked"  # the nodule count still stops it
    status, refused = decide(thick, {"state": "rejected", "reason": "changed my mind"})
    assert status == 409 and "already accepted" in refused["error"]["message"]
    status, answer = decide(count, {"state": "accepted", "reason": "6 nodules counted twice"})
    assert status == 200 and answer["exam"]["stage"] == "review"

    rejected = exam_of(server, "CHU de Bordeaux", "r", [THICK])
    (only,) = violation_ids(server, rejected)
    assert server.json("GET", "/api/v1/violations", organizer)[1]["violations"][0]["id"] == only
    status, answer = decide(only, {"state": "rejected", "reason": "5 mm slices"})
    assert status == 200
    assert (answer["exam"]["stage"], answer["exam"]["exclusion"]) == ("excluded", "criteria")
    assert "5 mm slices" in answer["exam"]["outcome"]
    assert [s["state"] for s in answer["exam"]["steps"]] == [
        "done", "done", "failed", "skipped", "failed"]
    assert server.json("GET", "/api/v1/violations", organizer)[1]["violations"] == []

    # Withdrawing: a reason; an exam withdrawn once cannot be withdrawn again.
    status, refused = server.json("POST", f"/api/v1/exams/{accepted}/withdraw", organizer, {})
    assert status == 400 and refused["error"]["code"] == "reason_required"
    status, answer = server.json("POST", f"/api/v1/exams/{accepted}/withdraw", organizer,
                                 {"reason": "consent withdrawn"})
    assert status == 200 and (answer["stage"], answer["exclusion"]) == ("excluded", "withdrawn")
    status, refused = server.json("POST", f"/api/v1/exams/{accepted}/withdraw", organizer,
                                  {"reason": "again"})
    assert status == 409 and refused["error"]["code"] == "cannot_withdraw"
    status, refused = server.json("POST", "/api/v1/exams/999999/withdraw", organizer,
                                  {"reason": "x"})
    assert status == 404 and refused["error"]["code"] == "unknown_exam"
    tables = server.json("GET", "/api/v1/inclusion/tables", organizer)[1]
    nodules = next(q for q in tables["table3"] if q["challenge"] == "nodules-3d")
    assert nodules["excluded_by_reason"] == {"deidentification": 0, "criteria": 1,
                                             "quality": 0, "withdrawn": 1}
    assert nodules["excluded_by_code"] == {"slice_thickness": 1}


def test_the_exams_channel_tells_each_center_of_its_own_exams(server: AppServer) -> None:
    tokens = server.tokens()
    with ws_connect(server, tokens["CHU de Lyon"]) as lyon, \
            ws_connect(server, tokens["organizer"]) as organizer, \
            ws_connect(server, tokens["Nodule Hunters"]) as team:
        (snapshot,) = subscribe(lyon, "exams")
        assert snapshot == {"type": "exams", "exams": [], "server_time": snapshot["server_time"]}
        assert subscribe(organizer, "exams")[0]["type"] == "exams"
        (error,) = subscribe(team, "exams")
        assert (error["type"], error["error"]["code"]) == ("error", "forbidden")

        other = exam_of(server, "CHU de Bordeaux", "bdx", None)
        seen = center_message(organizer, "CHU de Bordeaux")
        assert (seen["id"], seen["stage"]) == (other, "received")
        mine = exam_of(server, "CHU de Lyon", "lyon", [THICK])
        # Lyon hears of its own exam until it is checked, and of nothing else.
        while (exam := center_message(lyon, "CHU de Lyon"))["stage"] != "checked":
            assert exam["id"] == mine
        assert exam["id"] == mine and exam["findings"][0]["code"] == "slice_thickness"

    # Shown live: the violation is marked notified.
    def notified() -> bool:
        body = server.json("GET", f"/api/v1/center/exams/{mine}", tokens["organizer"])[1]
        return bool(body["findings"][0]["state"] == "notified")
    wait_for(notified, what="the violation shown live marked notified")


def center_message(ws: Any, center: str) -> dict[str, Any]:
    message = json.loads(ws.recv(timeout=60))
    assert message["type"] == "exam", message
    assert message["exam"]["center"] == center, message
    exam: dict[str, Any] = message["exam"]
    return exam


def test_changes_of_one_exam_are_published_in_order(monkeypatch: Any) -> None:
    """Two changes of one exam announced while the first is being read: one more reading,
    taken after both, is published last; another exam is never held up by it."""
    import asyncio

    from server.inclusion import live

    readings: list[tuple[int, int]] = []
    gate = asyncio.Event()
    version = {7: 0, 8: 0}

    async def publish(_hub: Any, exam_id: int) -> None:
        seen = version[exam_id]
        if exam_id == 7 and not gate.is_set():
            await gate.wait()
        readings.append((exam_id, seen))

    monkeypatch.setattr(live, "publish_exam", publish)

    async def go() -> None:
        feed = live.ExamFeed(hub=None)  # type: ignore[arg-type]
        first = asyncio.ensure_future(feed.changed({"id": 7}))
        await asyncio.sleep(0)
        version[7] = 1
        await feed.changed({"id": 7})
        version[7] = 2
        await feed.changed({"id": 7})
        await feed.changed({"id": 8})
        assert readings == [(8, 0)]
        gate.set()
        await first
        await feed.changed({"id": 7})

    asyncio.run(go())
    assert readings == [(8, 0), (7, 0), (7, 2), (7, 2)]
