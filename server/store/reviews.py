"""The experts' readings as stored (docs/review.md): the review queue of a reviewer, what it
may see of an exam's readings, and a grade given — which settles the exam (kept in the
question's `keep` classes, excluded for quality otherwise) once its readings agree.

The rules are server/inclusion/review.py's. Two reviewers grading at once are told apart by
the database: `review`'s UNIQUE (exam_id, reading) and (exam_id, reviewer_id), not a check
before the insert. The settlement reads the readings with the exam's row locked, so of two
readings committed at once the later one settles the exam.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from server.errors import AlreadyGraded, BadGrade, NotInReview, NotYourQuestion, UnknownExam
from server.event import InclusionSpec
from server.inclusion.review import (
    ADJUDICATION,
    DOUBLE,
    SINGLE,
    Reading,
    check_grade,
    may_take,
    needed,
    settled_grade,
    visible,
)
from server.store import exams as exam_store
from server.store.exams import Exam, Exclusion, Stage

DEFAULT_KEEP: tuple[str, ...] = InclusionSpec.keep
MAX_COMMENT = 4000


@dataclass(frozen=True)
class Rules:
    """A question's reading mode and kept classes, from `challenge.inclusion`."""

    reading: str = SINGLE
    keep: tuple[str, ...] = DEFAULT_KEEP

    @classmethod
    def of(cls, inclusion: str | None) -> Rules:
        declared: dict[str, Any] = json.loads(inclusion) if inclusion else {}
        reading = DOUBLE if declared.get("reading") == DOUBLE else SINGLE
        keep = tuple(str(k).upper() for k in declared.get("keep", DEFAULT_KEEP))
        return cls(reading, keep)


@dataclass(frozen=True)
class QueueEntry:
    exam: Exam
    reading: int           # the reading this reviewer would give


@dataclass(frozen=True)
class Queue:
    """One question's queue for a reviewer: exams it may read now, and counts."""

    challenge: str
    title: str
    reading: str
    waiting: list[QueueEntry]
    in_review: int         # every exam of the question with the experts
    graded_by_me: int


@dataclass(frozen=True)
class Outcome:
    """What a grade did: the reading it was, and the final grade when it settled the exam."""

    reading: int
    settled: str | None
    stage: Stage


async def rules(conn: asyncpg.Connection, challenge_id: int) -> Rules:
    return Rules.of(await conn.fetchval("SELECT inclusion FROM challenge WHERE id = $1",
                                        challenge_id))


async def readings(conn: asyncpg.Connection, exam_ids: list[int]) -> dict[int, list[Reading]]:
    rows = await conn.fetch(
        """SELECT exam_id, reading, reviewer_id, grade, comment FROM review
           WHERE exam_id = ANY($1::bigint[]) ORDER BY exam_id, reading""", exam_ids)
    found: dict[int, list[Reading]] = {i: [] for i in exam_ids}
    for row in rows:
        found[row["exam_id"]].append(Reading(row["reading"], row["reviewer_id"], row["grade"],
                                             row["comment"]))
    return found


async def questions_of(conn: asyncpg.Connection, reviewer_id: int | None) -> list[asyncpg.Record]:
    """The questions a reviewer grades (None: every question that collects exams)."""
    return list(await conn.fetch(
        """SELECT c.id, c.slug, c.title, c.inclusion FROM challenge c
           WHERE c.inclusion IS NOT NULL
             AND ($1::int IS NULL OR EXISTS (SELECT 1 FROM reviewer_question q
                                             WHERE q.challenge_id = c.id AND q.reviewer_id = $1))
           ORDER BY c.id""", reviewer_id))


async def grades_question(conn: asyncpg.Connection, reviewer_id: int, challenge_id: int) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM reviewer_question WHERE reviewer_id = $1 "
        "AND challenge_id = $2)", reviewer_id, challenge_id))


async def queues(conn: asyncpg.Connection, reviewer_id: int | None) -> list[Queue]:
    """Per question the reviewer grades, the exams in review it may read now, oldest first.
    For the organizers (None): every exam still needing a reading."""
    result = []
    for question in await questions_of(conn, reviewer_id):
        mode = Rules.of(question["inclusion"]).reading
        exams = sorted(await exam_store.exams(conn, challenge=question["slug"],
                                              stage=Stage.REVIEW, limit=100_000),
                       key=lambda e: (e.received_at, e.id))
        found = await readings(conn, [e.id for e in exams])
        waiting = []
        for exam in exams:
            if reviewer_id is None:
                reading = needed(mode, found[exam.id])
            else:
                reading = may_take(mode, found[exam.id], reviewer_id)
            if reading is not None:
                waiting.append(QueueEntry(exam, reading))
        mine = 0 if reviewer_id is None else await conn.fetchval(
            """SELECT count(*) FROM review r JOIN exam e ON e.id = r.exam_id
               WHERE r.reviewer_id = $1 AND e.challenge_id = $2""", reviewer_id, question["id"])
        result.append(Queue(question["slug"], question["title"], mode, waiting, len(exams),
                            mine))
    return result


async def exam_for(conn: asyncpg.Connection, exam_id: int, reviewer_id: int | None) -> Exam:
    """The exam, if this reviewer grades its question (None: the organizers)."""
    exam = await exam_store.exam(conn, exam_id)
    if exam is None:
        raise UnknownExam(exam_id)
    if reviewer_id is not None and not await grades_question(conn, reviewer_id,
                                                             exam.challenge_id):
        raise NotYourQuestion(exam.challenge)
    return exam


async def view(conn: asyncpg.Connection, exam: Exam, reviewer_id: int | None
               ) -> dict[str, Any]:
    """What a reviewer may know of the exam's readings: the reading it may give (None if
    none), and the readings it may see (blind double reading: only its own, until it is the
    one to settle a disagreement or the exam is settled)."""
    mode = (await rules(conn, exam.challenge_id)).reading
    found = (await readings(conn, [exam.id]))[exam.id]
    mine = may_take(mode, found, reviewer_id) if reviewer_id is not None else None
    return {
        "reading_mode": mode,
        "your_reading": mine if exam.stage is Stage.REVIEW else None,
        "settled": settled_grade(mode, found),
        "readings": [{"reading": r.reading, "grade": r.grade, "comment": r.comment,
                      "yours": r.reviewer_id == reviewer_id}
                     for r in visible(mode, found, reviewer_id)],
    }


async def grade(conn: asyncpg.Connection, exam_id: int, reviewer_id: int, given: object,
                comment: object) -> Outcome:
    """Records the reviewer's grade as the reading the exam needs, in one transaction; settles
    the exam when its readings agree. Refusals: bad grade, unknown exam, not this reviewer's
    question, not in review, already graded (by this reviewer, or no reading left)."""
    try:
        value = check_grade(given)
    except ValueError as exc:
        raise BadGrade(str(exc)) from None
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise BadGrade("the comment must be text")
    text = comment.strip()
    if len(text) > MAX_COMMENT:
        raise BadGrade(f"the comment is {len(text)} characters; at most {MAX_COMMENT}")
    exam = await exam_for(conn, exam_id, reviewer_id)
    question = await rules(conn, exam.challenge_id)
    async with conn.transaction():
        reading = await _insert(conn, exam, question, reviewer_id, value, text)
        # Locked: of two readings committed at once, the later one sees both and settles.
        stage = Stage(await conn.fetchval("SELECT stage FROM exam WHERE id = $1 FOR UPDATE",
                                          exam_id))
        if stage is not Stage.REVIEW:
            raise NotInReview(stage)
        found = (await readings(conn, [exam_id]))[exam_id]
        final = settled_grade(question.reading, found)
        if final is not None:
            stage = await _settle(conn, exam_id, question, found, final)
        else:
            await exam_store.log(conn, exam_id, "graded", _progress(question, found))
    return Outcome(reading, final, stage)


async def _insert(conn: asyncpg.Connection, exam: Exam, question: Rules, reviewer_id: int,
                  value: str, comment: str) -> int:
    """Inserts the reading the exam needs; when another reviewer took that reading at the
    same moment (the constraint says so), the next one needed, if any."""
    for _ in range(4):
        if exam.stage is not Stage.REVIEW:
            raise NotInReview(exam.stage)
        found = (await readings(conn, [exam.id]))[exam.id]
        reading = may_take(question.reading, found, reviewer_id)
        if reading is None:
            raise AlreadyGraded(_why_not(found, reviewer_id))
        try:
            async with conn.transaction():
                await conn.execute(
                    """INSERT INTO review (exam_id, reviewer_id, reading, grade, comment)
                       VALUES ($1, $2, $3, $4, $5)""", exam.id, reviewer_id, reading, value,
                    comment)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "review_exam_id_reviewer_id_key":
                raise AlreadyGraded("you have already graded this exam") from None
            continue     # that reading was just taken: look again
        return reading
    raise AlreadyGraded("other reviewers graded this exam at the same moment; open the queue "
                        "again")


def _why_not(found: list[Reading], reviewer_id: int) -> str:
    if any(r.reviewer_id == reviewer_id for r in found):
        return "you have already graded this exam"
    return "this exam needs no more readings: the others' grades settled it"


def _progress(question: Rules, found: list[Reading]) -> str:
    """The center's line for a blind reading that does not settle the exam: no grade yet."""
    if needed(question.reading, found) == ADJUDICATION:
        return "the two expert readings differ: a third expert settles the grade"
    return "one expert reading is in; the second is blind, the grades are told once both are in"


async def _settle(conn: asyncpg.Connection, exam_id: int, question: Rules,
                  found: list[Reading], final: str) -> Stage:
    """Logs each reading's grade and comment for the center (never who gave it), then keeps
    or excludes the exam."""
    names = {1: "expert reading", 2: "second expert reading", ADJUDICATION: "third expert"}
    for r in sorted(found, key=lambda r: r.reading):
        name = names[r.reading] if question.reading == DOUBLE else "expert reading"
        said = f": {r.comment}" if r.comment else ""
        await exam_store.log(conn, exam_id, "graded", f"{name}: graded {r.grade}{said}")
    kept = ", ".join(question.keep)
    how = ""
    if question.reading == DOUBLE:
        how = (" (settled by a third expert)" if any(r.reading == ADJUDICATION for r in found)
               else " (two expert readings agree)")
    if final in question.keep:
        await exam_store.keep(conn, exam_id, final,
                              f"kept: graded {final} by the experts{how}")
        return Stage.KEPT
    await exam_store.exclude(conn, exam_id, Exclusion.QUALITY,
                             f"excluded: graded {final} by the experts{how}; this question "
                             f"keeps {kept}", grade=final)
    return Stage.EXCLUDED
