"""The exams as a center and the organizers see them (docs/centers.md), and the websocket
channel `exams` that keeps their pages live.

- `exam_json`: one exam, where it stands (`steps`: received → de-identified → criteria →
  quality → kept or excluded, with the reason), its findings with their LORIS states, its
  timeline newest first. Never the patient's pseudonym nor the source's keys: a center reads it.
- `exams`: the snapshot is the viewer's exams (a center's own; every center's for the
  organizers), then one `{"type": "exam", "exam": {...}}` message per change, announced as
  `{"type": "exam", "id", "center_id", ...}` by server/store/exams.py. A center is sent only its
  own exams' changes; an exam's open violations shown live to a center are marked `notified`.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import asyncpg

from server.access import Principal, Role
from server.hub import Channel, ForbiddenChannel, Hub, Message
from server.isotime import iso
from server.listener import Event, Listener
from server.queries import database_now
from server.store import exams as store
from server.store.exams import Exam, Finding, Stage, TimelineEntry

STEPS = ("received", "deidentified", "criteria", "quality", "outcome")
STEP_LABELS = {"received": "received", "deidentified": "de-identified", "criteria": "criteria",
               "quality": "quality", "outcome": "kept or excluded"}
# Which step each exclusion stops at.
FAILED_AT = {"deidentification": "deidentified", "criteria": "criteria", "quality": "quality"}
SNAPSHOT_LIMIT = 500


def steps(exam: Exam, findings: list[Finding]) -> list[dict[str, str]]:
    """Each step's state: `done`, `current` (the exam is there now), `failed` (it stopped
    there), `skipped` (withdrawn or replaced before it) or `todo`."""
    if exam.stage is Stage.EXCLUDED:
        exclusion = str(exam.exclusion)
        failed = FAILED_AT.get(exclusion)
        reached = {"received", "deidentified"} if exam.folder is not None else {"received"}
        if findings or exam.summary:
            reached.add("criteria")
        if exam.grade:
            reached.add("quality")
        states = {}
        for step in STEPS[:-1]:
            if failed is not None:
                before = STEPS.index(step) < STEPS.index(failed)
                states[step] = "done" if before else "failed" if step == failed else "skipped"
            else:
                states[step] = "done" if step in reached else "skipped"
        states["outcome"] = "failed"
    else:
        at = {Stage.RECEIVED: "deidentified", Stage.DEIDENTIFIED: "criteria",
              Stage.CHECKED: "criteria", Stage.REVIEW: "quality", Stage.KEPT: None}[exam.stage]
        states = {}
        for step in STEPS:
            if at is None:
                states[step] = "done"
            else:
                index, current = STEPS.index(step), STEPS.index(at)
                states[step] = "done" if index < current else "current" if index == current \
                    else "todo"
    return [{"step": s, "label": STEP_LABELS[s], "state": states[s]} for s in STEPS]


def finding_json(finding: Finding) -> dict[str, Any]:
    return {"id": finding.id, "code": finding.code, "rule": finding.rule,
            "severity": finding.severity, "message": finding.message, "found": finding.found,
            "expected": finding.expected, "series": finding.series, "state": finding.state,
            "blocking": finding.blocking, "reason": finding.reason,
            "decided_by": finding.decided_by,
            "decided_at": iso(finding.decided_at) if finding.decided_at else None}


def exam_json(exam: Exam, findings: list[Finding], timeline: list[TimelineEntry]
              ) -> dict[str, Any]:
    return {"id": exam.id, "center": exam.center, "center_id": exam.center_id,
            "challenge": exam.challenge, "channel": exam.channel, "label": exam.label,
            "files": exam.files, "bytes": exam.bytes, "stage": exam.stage,
            "exclusion": exam.exclusion, "outcome": exam.outcome, "grade": exam.grade,
            "replaces": exam.replaces, "received_at": iso(exam.received_at),
            "updated_at": iso(exam.updated_at), "steps": steps(exam, findings),
            "findings": [finding_json(f) for f in findings],
            "timeline": [{"at": iso(t.at), "kind": t.kind, "message": t.message}
                         for t in reversed(timeline)]}


async def exams_json(conn: asyncpg.Connection, exams: list[Exam]) -> list[dict[str, Any]]:
    """The exams as shown, their findings and timelines read in one query each."""
    ids = [e.id for e in exams]
    found = await store.findings(conn, ids)
    timeline = await store.timeline(conn, ids)
    return [exam_json(e, found[e.id], timeline[e.id]) for e in exams]


def may_watch(principal: Principal | None) -> bool:
    return principal is not None and principal.role in (Role.CENTER, Role.ORGANIZER)


def by_center(principal: Principal | None) -> Hashable:
    # A center sees its own exams; every organizer sees the same thing.
    return (principal.role, principal.member_id) if principal else None


async def exams_snapshot(conn: asyncpg.Connection, principal: Principal | None,
                         channel: str) -> Message:
    if principal is None or not may_watch(principal):
        raise ForbiddenChannel(channel, "the exams are shown to their center and to the "
                               "organizers")
    rows = await store.exams(conn, center_id=principal.center_id, limit=SNAPSHOT_LIMIT)
    now = await database_now(conn)
    return {"type": "exams", "exams": await exams_json(conn, rows), "server_time": iso(now)}


EXAMS = Channel("exams", exams_snapshot, by_center)


class ExamFeed:
    """Publishes each changed exam, one reading at a time per exam.

    The listener runs each notification's callback as its own task: two changes of one exam
    (received, then checked a moment later) would read the exam concurrently, and the older
    reading could be published last and stay on the screens. Here a change that arrives while
    its exam is being read marks it to be read once more, so the last reading published is
    always taken after the last change announced."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._busy: set[int] = set()
        self._again: set[int] = set()

    async def changed(self, event: Event) -> None:
        exam_id = int(event["id"])
        if exam_id in self._busy:
            self._again.add(exam_id)
            return
        self._busy.add(exam_id)
        try:
            while True:
                self._again.discard(exam_id)
                await publish_exam(self.hub, exam_id)
                if exam_id not in self._again:
                    return
        finally:
            self._busy.discard(exam_id)
            self._again.discard(exam_id)


async def publish_exam(hub: Hub, exam_id: int) -> None:
    """One exam changed: its new state to its center and to the organizers."""
    async with hub.pool.acquire() as conn:
        exam = await store.exam(conn, exam_id)
        if exam is None:
            return
        shown = (await exams_json(conn, [exam]))[0]
        told: list[int] = []

        def message_for(principal: Principal | None) -> Message | None:
            if principal is None or not may_watch(principal):
                return None
            if principal.role is Role.CENTER:
                if principal.center_id != exam.center_id:
                    return None
                told.append(exam.center_id)
            return {"type": "exam", "exam": shown}

        hub.publish(EXAMS.name, message_for)
        if told and any(f["blocking"] and f["state"] == "open" for f in shown["findings"]):
            await store.mark_notified(conn, exam.center_id)


def register(hub: Hub, listener: Listener) -> None:
    hub.register(EXAMS)
    listener.on("exam", ExamFeed(hub).changed)
