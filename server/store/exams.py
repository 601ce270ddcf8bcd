"""Exams as stored (docs/inclusion-platform.md): what a center sent for a question, where it
stands, its criteria findings with their states, and its timeline.

Every change of an exam is one transaction that writes the exam, appends to its timeline
(`exam_event`) and announces `{"type": "exam", ...}` (server/notify.py), so a center's portal
and the organizers' dashboard hear of it when it is committed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import asyncpg

from server.notify import notify


class Stage(StrEnum):
    RECEIVED = "received"          # on disk, not yet de-identified
    DEIDENTIFIED = "deidentified"  # only the de-identified copy is kept from here on
    CHECKED = "checked"            # the criteria found a violation still to be resolved
    REVIEW = "review"              # with the experts
    KEPT = "kept"
    EXCLUDED = "excluded"


class Exclusion(StrEnum):
    DEIDENTIFICATION = "deidentification"  # a file that cannot be cleaned (burned-in text, ...)
    CRITERIA = "criteria"                  # a violation rejected by an organizer
    QUALITY = "quality"                    # graded in a class the question does not keep
    RESENT = "resent"                      # replaced by the center's new exam
    WITHDRAWN = "withdrawn"                # by an organizer


class ViolationState(StrEnum):
    """As LORIS resolves protocol violations."""

    OPEN = "open"
    NOTIFIED = "notified"  # the center was shown it (its portal, its digest)
    RESENT = "resent"      # the center sent a new exam instead
    ACCEPTED = "accepted"  # an organizer kept the exam anyway, with a reason
    REJECTED = "rejected"  # an organizer excluded the exam, with a reason


# A violation that still stops its exam; a warning never does.
UNRESOLVED = (ViolationState.OPEN, ViolationState.NOTIFIED)
# The states an organizer's decision may lead to, from each state.
DECISIONS = {ViolationState.OPEN: (ViolationState.ACCEPTED, ViolationState.REJECTED),
             ViolationState.NOTIFIED: (ViolationState.ACCEPTED, ViolationState.REJECTED)}


@dataclass(frozen=True)
class Exam:
    id: int
    center_id: int
    center: str
    challenge_id: int
    challenge: str               # its slug
    channel: str                 # "web" or "dicom"
    label: str
    pseudonym: str | None
    study_uid: str | None
    folder: Path | None
    files: int
    bytes: int
    stage: Stage
    exclusion: Exclusion | None
    outcome: str | None
    grade: str | None
    summary: dict[str, Any]
    replaces: int | None
    received_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> Exam:
        return cls(id=row["id"], center_id=row["center_id"], center=row["center"],
                   challenge_id=row["challenge_id"], challenge=row["slug"],
                   channel=row["channel"], label=row["label"], pseudonym=row["pseudonym"],
                   study_uid=row["study_uid"],
                   folder=Path(row["folder"]) if row["folder"] else None, files=row["files"],
                   bytes=row["bytes"], stage=Stage(row["stage"]),
                   exclusion=Exclusion(row["exclusion"]) if row["exclusion"] else None,
                   outcome=row["outcome"], grade=row["grade"],
                   summary=json.loads(row["summary"]), replaces=row["replaces"],
                   received_at=row["received_at"], updated_at=row["updated_at"])


@dataclass(frozen=True)
class Finding:
    """A criteria finding as stored, with its state."""

    id: int
    exam_id: int
    code: str
    rule: str | None
    severity: str                # "violation" or "warning"
    message: str
    found: str | None
    expected: str | None
    series: str | None
    state: ViolationState
    reason: str | None
    decided_by: str | None
    decided_at: datetime | None

    @property
    def blocking(self) -> bool:
        return self.severity == "violation" and self.state in UNRESOLVED

    @classmethod
    def of(cls, row: asyncpg.Record) -> Finding:
        return cls(id=row["id"], exam_id=row["exam_id"], code=row["code"], rule=row["rule"],
                   severity=row["severity"], message=row["message"], found=row["found"],
                   expected=row["expected"], series=row["series"],
                   state=ViolationState(row["state"]), reason=row["reason"],
                   decided_by=row["decided_by"], decided_at=row["decided_at"])


@dataclass(frozen=True)
class TimelineEntry:
    exam_id: int
    at: datetime
    kind: str
    message: str


_SELECT = """SELECT e.id, e.center_id, ce.name AS center, e.challenge_id, c.slug, e.channel,
                    e.label, e.pseudonym, e.study_uid, e.folder, e.files, e.bytes, e.stage,
                    e.exclusion, e.outcome, e.grade, e.summary, e.replaces, e.received_at,
                    e.updated_at
             FROM exam e JOIN center ce ON ce.id = e.center_id
             JOIN challenge c ON c.id = e.challenge_id"""
_FINDING = """SELECT id, exam_id, code, rule, severity, message, found, expected, series, state,
                     reason, decided_by, decided_at FROM violation"""


async def exam(conn: asyncpg.Connection, exam_id: int) -> Exam | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE e.id = $1", exam_id)  # noqa: S608
    return Exam.of(row) if row is not None else None


async def exams(conn: asyncpg.Connection, *, center_id: int | None = None,
                challenge: str | None = None, stage: Stage | None = None,
                limit: int = 1000) -> list[Exam]:
    """Exams, newest first; of one center, one question or one stage when given."""
    rows = await conn.fetch(
        f"""{_SELECT}
            WHERE ($1::int IS NULL OR e.center_id = $1) AND ($2::text IS NULL OR c.slug = $2)
              AND ($3::text IS NULL OR e.stage = $3)
            ORDER BY e.received_at DESC, e.id DESC LIMIT $4""",  # noqa: S608
        center_id, challenge, stage, limit)
    return [Exam.of(r) for r in rows]


async def findings(conn: asyncpg.Connection, exam_ids: list[int]) -> dict[int, list[Finding]]:
    """Each exam's criteria findings, violations first, in the order they were found."""
    rows = await conn.fetch(
        f"""{_FINDING} WHERE exam_id = ANY($1::bigint[])
            ORDER BY exam_id, severity = 'warning', id""",  # noqa: S608
        exam_ids)
    found: dict[int, list[Finding]] = {i: [] for i in exam_ids}
    for row in rows:
        found[row["exam_id"]].append(Finding.of(row))
    return found


async def timeline(conn: asyncpg.Connection, exam_ids: list[int]) -> dict[int, list[TimelineEntry]]:
    rows = await conn.fetch(
        """SELECT exam_id, at, kind, message FROM exam_event WHERE exam_id = ANY($1::bigint[])
           ORDER BY exam_id, id""", exam_ids)
    entries: dict[int, list[TimelineEntry]] = {i: [] for i in exam_ids}
    for row in rows:
        entries[row["exam_id"]].append(TimelineEntry(row["exam_id"], row["at"], row["kind"],
                                                     row["message"]))
    return entries


async def announce(conn: asyncpg.Connection, exam_id: int) -> None:
    """Tells every server process the exam changed (inside the caller's transaction)."""
    row = await conn.fetchrow(
        """SELECT e.id, e.center_id, c.slug, e.stage FROM exam e
           JOIN challenge c ON c.id = e.challenge_id WHERE e.id = $1""", exam_id)
    await notify(conn, {"type": "exam", "id": row["id"], "center_id": row["center_id"],
                        "challenge": row["slug"], "stage": row["stage"]})


async def log(conn: asyncpg.Connection, exam_id: int, kind: str, message: str) -> None:
    """Appends to the exam's timeline and announces the change."""
    await conn.execute("INSERT INTO exam_event (exam_id, kind, message) VALUES ($1, $2, $3)",
                       exam_id, kind, message)
    await announce(conn, exam_id)


async def create(conn: asyncpg.Connection, *, center_id: int, challenge: str, channel: str,
                 label: str, source_key: str, message: str) -> int:
    """A new exam at stage `received`; `message` opens its timeline. The caller checks the
    center includes for the question. An exam of the same study already there (same
    `source_key`, not excluded as resent) is replaced: it is marked resent, its open violations
    too, and the new exam `replaces` it."""
    async with conn.transaction():
        earlier = await conn.fetchrow(
            """SELECT e.id FROM exam e JOIN challenge c ON c.id = e.challenge_id
               WHERE c.slug = $1 AND e.source_key = $2
                 AND NOT (e.stage = 'excluded' AND e.exclusion = 'resent')
               FOR UPDATE OF e""", challenge, source_key)
        if earlier is not None:
            await conn.execute(
                f"""UPDATE violation SET state = 'resent', decided_at = podium_now()
                    WHERE exam_id = $1 AND state IN ({_in(UNRESOLVED)})""",  # noqa: S608
                earlier["id"])
            await conn.execute(
                """UPDATE exam SET stage = 'excluded', exclusion = 'resent',
                       outcome = 'sent again: replaced by the new exam', updated_at = podium_now()
                   WHERE id = $1""", earlier["id"])
            await log(conn, earlier["id"], "resent", "sent again: replaced by the new exam")
        exam_id: int = await conn.fetchval(
            """INSERT INTO exam (center_id, challenge_id, channel, label, source_key, replaces)
               SELECT $1, c.id, $3, $4, $5, $6 FROM challenge c WHERE c.slug = $2
               RETURNING id""",
            center_id, challenge, channel, label, source_key,
            earlier["id"] if earlier is not None else None)
        await log(conn, exam_id, "received", message)
    return exam_id


async def deidentified(conn: asyncpg.Connection, exam_id: int, *, folder: Path, files: int,
                       size: int, pseudonym: str | None, study_uid: str | None,
                       message: str) -> None:
    async with conn.transaction():
        await conn.execute(
            """UPDATE exam SET stage = 'deidentified', folder = $2, files = $3, bytes = $4,
                   pseudonym = $5, study_uid = $6, updated_at = podium_now() WHERE id = $1""",
            exam_id, str(folder), files, size, pseudonym, study_uid)
        await log(conn, exam_id, "deidentified", message)


async def checked(conn: asyncpg.Connection, exam_id: int, found: list[dict[str, Any]],
                  summary: dict[str, Any], message: str) -> Stage:
    """Records the criteria's findings (Violation.to_json() dicts) and the exam's summary;
    the exam goes to review unless a violation stops it. Returns the new stage."""
    async with conn.transaction():
        await conn.execute("DELETE FROM violation WHERE exam_id = $1", exam_id)
        await conn.executemany(
            """INSERT INTO violation (exam_id, code, rule, severity, message, found, expected,
                                      series)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            [(exam_id, f["code"], f.get("rule"), f["severity"], f["message"],
              _text(f.get("found")), _text(f.get("expected")), _text(f.get("series")))
             for f in found])
        blocking = any(f["severity"] == "violation" for f in found)
        stage = Stage.CHECKED if blocking else Stage.REVIEW
        await conn.execute(
            "UPDATE exam SET stage = $2, summary = $3::jsonb, updated_at = podium_now() "
            "WHERE id = $1", exam_id, stage, json.dumps(summary, default=str))
        await log(conn, exam_id, "criteria", message)
    return stage


async def exclude(conn: asyncpg.Connection, exam_id: int, exclusion: Exclusion, outcome: str,
                  *, grade: str | None = None) -> None:
    async with conn.transaction():
        await conn.execute(
            """UPDATE exam SET stage = 'excluded', exclusion = $2, outcome = $3,
                   grade = coalesce($4, grade), updated_at = podium_now() WHERE id = $1""",
            exam_id, exclusion, outcome, grade)
        await log(conn, exam_id, "excluded", outcome)


async def keep(conn: asyncpg.Connection, exam_id: int, grade: str, outcome: str) -> None:
    async with conn.transaction():
        await conn.execute(
            """UPDATE exam SET stage = 'kept', exclusion = NULL, grade = $2, outcome = $3,
                   updated_at = podium_now() WHERE id = $1""", exam_id, grade, outcome)
        await log(conn, exam_id, "kept", outcome)


async def mark_notified(conn: asyncpg.Connection, center_id: int) -> int:
    """The center was shown its open violations (its portal, its digest): open → notified.
    Returns how many changed."""
    status = await conn.execute(
        """UPDATE violation v SET state = 'notified' FROM exam e
           WHERE v.exam_id = e.id AND e.center_id = $1 AND v.state = 'open'
             AND v.severity = 'violation'""", center_id)
    return int(status.rsplit(" ", 1)[-1])


class DecisionRefused(Exception):
    """A violation decision the state does not allow; the message says why."""


async def decide(conn: asyncpg.Connection, violation_id: int, state: ViolationState,
                 reason: str, by: str) -> Finding:
    """An organizer accepts or rejects a violation, with a reason. A rejection excludes the
    exam; once no violation stops it any more, the exam goes to review."""
    if not reason.strip():
        raise DecisionRefused("give the reason for the decision: the center reads it")
    async with conn.transaction():
        row = await conn.fetchrow(f"{_FINDING} WHERE id = $1 FOR UPDATE", violation_id)  # noqa: S608
        if row is None:
            raise DecisionRefused(f"no violation {violation_id}")
        finding = Finding.of(row)
        if finding.severity != "violation":
            raise DecisionRefused("a warning does not stop its exam: there is nothing to decide")
        if state not in DECISIONS.get(finding.state, ()):
            raise DecisionRefused(f"this violation is already {finding.state}")
        stage = await conn.fetchval("SELECT stage FROM exam WHERE id = $1 FOR UPDATE",
                                    finding.exam_id)
        if stage != Stage.CHECKED:
            raise DecisionRefused(f"the exam is {stage}: its violations are no longer decided")
        await conn.execute(
            """UPDATE violation SET state = $2, reason = $3, decided_by = $4,
                   decided_at = podium_now() WHERE id = $1""",
            violation_id, state, reason.strip(), by)
        await log(conn, finding.exam_id, "violation_state",
                  f"{finding.code}: {state} by the organizers ({reason.strip()})")
        if state is ViolationState.REJECTED:
            await exclude(conn, finding.exam_id, Exclusion.CRITERIA,
                          f"excluded: {finding.message} ({reason.strip()})")
        else:
            left = await conn.fetchval(
                f"""SELECT count(*) FROM violation WHERE exam_id = $1 AND severity = 'violation'
                    AND state IN ({_in(UNRESOLVED)})""", finding.exam_id)  # noqa: S608
            if left == 0:
                await conn.execute(
                    "UPDATE exam SET stage = 'review', updated_at = podium_now() WHERE id = $1",
                    finding.exam_id)
                await log(conn, finding.exam_id, "criteria",
                          "every violation is resolved: the exam goes to the experts")
        row = await conn.fetchrow(f"{_FINDING} WHERE id = $1", violation_id)  # noqa: S608
    return Finding.of(row)


def _in(states: tuple[ViolationState, ...]) -> str:
    return ", ".join(f"'{s}'" for s in states)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str)
