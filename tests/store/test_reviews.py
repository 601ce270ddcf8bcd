"""server/store/reviews.py on a real PostgreSQL: the queue, single and blind double reading, the
third reading that settles a disagreement, what each reviewer may see, two grades at the same
moment told apart by the table's constraints, and kept or excluded by the question's classes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from server.errors import AlreadyGraded, BadGrade, NotInReview, NotYourQuestion, UnknownExam
from server.store import exams as exam_store
from server.store import reviews as store
from server.store.exams import Exclusion, Stage
from tests.helpers import load_event_into, run
from tests.reviewing import exam_in_review

NAMES = ("Dr Martin", "Dr Leroy", "Dr Petit")


async def _setup(database_url: str, event: Path, data_dir: Path
                 ) -> tuple[asyncpg.Connection, dict[str, int]]:
    await load_event_into(database_url, event, data_dir)
    conn = await asyncpg.connect(database_url)
    ids = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM reviewer")}
    return conn, ids


async def _timeline(conn: asyncpg.Connection, exam_id: int) -> list[tuple[str, str]]:
    return [(e.kind, e.message) for e in (await exam_store.timeline(conn, [exam_id]))[exam_id]]


def _waiting(queues: list[store.Queue], slug: str) -> list[tuple[int, int]]:
    (queue,) = [q for q in queues if q.challenge == slug]
    return [(e.exam.id, e.reading) for e in queue.waiting]


def test_single_reading_keeps_or_excludes_by_the_questions_classes(
        database_url: str, example_event: Path, tmp_path: Path) -> None:
    async def go() -> None:
        conn, who = await _setup(database_url, example_event, tmp_path)
        try:
            kept, _ = await exam_in_review(conn, tmp_path, center="CHU de Lyon",
                                           challenge="sarcopenia", label="l3-01.zip")
            dropped, _ = await exam_in_review(conn, tmp_path, center="CHU de Bordeaux",
                                              challenge="sarcopenia", label="l3-02.zip", seed=1)
            martin = who["Dr Martin"]
            assert [q.challenge for q in await store.queues(conn, martin)] == [
                "sarcopenia", "nodules-3d"]
            assert _waiting(await store.queues(conn, martin), "sarcopenia") == [
                (kept, 1), (dropped, 1)]
            # Dr Leroy does not grade sarcopenia: no queue, no view, no grade.
            assert "sarcopenia" not in [q.challenge for q in await store.queues(conn,
                                                                                who["Dr Leroy"])]
            with pytest.raises(NotYourQuestion, match="sarcopenia"):
                await store.grade(conn, kept, who["Dr Leroy"], "A", "")
            for bad in ("E", "", None, 3, "AB"):
                with pytest.raises(BadGrade, match="A, B, C or D"):
                    await store.grade(conn, kept, martin, bad, "")
            with pytest.raises(UnknownExam):
                await store.grade(conn, 999_999, martin, "A", "")

            done = await store.grade(conn, kept, martin, "b", "  L3 well placed ")
            assert (done.reading, done.settled, done.stage) == (1, "B", Stage.KEPT)
            exam = await exam_store.exam(conn, kept)
            assert exam is not None and (exam.stage, exam.grade) == (Stage.KEPT, "B")
            assert (await _timeline(conn, kept))[-2:] == [
                ("graded", "expert reading: graded B: L3 well placed"),
                ("kept", "kept: graded B by the experts")]
            with pytest.raises(NotInReview, match="kept"):
                await store.grade(conn, kept, martin, "A", "")

            done = await store.grade(conn, dropped, martin, "D", "psoas cut off")
            assert (done.settled, done.stage) == ("D", Stage.EXCLUDED)
            exam = await exam_store.exam(conn, dropped)
            assert exam is not None
            assert (exam.exclusion, exam.grade, exam.outcome) == (
                Exclusion.QUALITY, "D",
                "excluded: graded D by the experts; this question keeps A, B, C")
            assert _waiting(await store.queues(conn, martin), "sarcopenia") == []
            (queue,) = [q for q in await store.queues(conn, martin)
                        if q.challenge == "sarcopenia"]
            assert (queue.in_review, queue.graded_by_me) == (0, 2)
            for entry in await _timeline(conn, dropped):
                assert "Martin" not in entry[1]
        finally:
            await conn.close()
    run(go())


def test_double_reading_is_blind_and_a_third_reviewer_settles_a_disagreement(
        database_url: str, example_event: Path, tmp_path: Path) -> None:
    async def go() -> None:
        conn, who = await _setup(database_url, example_event, tmp_path)
        martin, leroy, petit = (who[n] for n in NAMES)
        try:
            agreed, _ = await exam_in_review(conn, tmp_path, center="CHU de Lyon",
                                             challenge="nodules-3d", label="chest-01")
            split, _ = await exam_in_review(conn, tmp_path, center="CHU de Lyon",
                                            challenge="nodules-3d", label="chest-02", seed=1)
            for r in (martin, leroy, petit):
                assert _waiting(await store.queues(conn, r), "nodules-3d") == [(agreed, 1),
                                                                                (split, 1)]
            # Agreeing: two blind readings settle it.
            assert (await store.grade(conn, agreed, martin, "B", "fine")).settled is None
            assert await _timeline(conn, agreed) == [
                ("received", "received by the web: chest-01"), ("deidentified", "de-identified"),
                ("criteria", "the criteria are met"),
                ("graded", "one expert reading is in; the second is blind, the grades are told "
                           "once both are in")]
            exam = await exam_store.exam(conn, agreed)
            assert exam is not None
            seen = await store.view(conn, exam, leroy)
            assert (seen["your_reading"], seen["readings"], seen["settled"]) == (2, [], None)
            mine = await store.view(conn, exam, martin)
            assert mine["your_reading"] is None
            assert mine["readings"] == [{"reading": 1, "grade": "B", "comment": "fine",
                                         "yours": True}]
            assert _waiting(await store.queues(conn, martin), "nodules-3d") == [(split, 1)]
            with pytest.raises(AlreadyGraded, match="already graded"):
                await store.grade(conn, agreed, martin, "C", "")
            done = await store.grade(conn, agreed, leroy, "B", "nodule clear")
            assert (done.reading, done.settled, done.stage) == (2, "B", Stage.KEPT)
            assert (await _timeline(conn, agreed))[-3:] == [
                ("graded", "expert reading: graded B: fine"),
                ("graded", "second expert reading: graded B: nodule clear"),
                ("kept", "kept: graded B by the experts (two expert readings agree)")]
            with pytest.raises(NotInReview):
                await store.grade(conn, agreed, petit, "A", "")

            # Disagreeing: A against D, the third reviewer sees both and settles it.
            await store.grade(conn, split, leroy, "A", "sharp")
            await store.grade(conn, split, petit, "D", "motion blur")
            assert (await _timeline(conn, split))[-1] == (
                "graded", "the two expert readings differ: a third expert settles the grade")
            assert _waiting(await store.queues(conn, leroy), "nodules-3d") == []
            assert _waiting(await store.queues(conn, martin), "nodules-3d") == [(split, 3)]
            exam = await exam_store.exam(conn, split)
            assert exam is not None and exam.stage is Stage.REVIEW
            third = await store.view(conn, exam, martin)
            assert third["your_reading"] == 3
            assert [(r["reading"], r["grade"], r["comment"]) for r in third["readings"]] == [
                (1, "A", "sharp"), (2, "D", "motion blur")]
            first = await store.view(conn, exam, leroy)
            assert [r["grade"] for r in first["readings"]] == ["A"]   # still blind
            with pytest.raises(AlreadyGraded):
                await store.grade(conn, split, petit, "A", "")
            done = await store.grade(conn, split, martin, "C", "blur, nodule still visible")
            assert (done.reading, done.settled, done.stage) == (3, "C", Stage.KEPT)
            lines = await _timeline(conn, split)
            assert lines[-4:] == [
                ("graded", "expert reading: graded A: sharp"),
                ("graded", "second expert reading: graded D: motion blur"),
                ("graded", "third expert: graded C: blur, nodule still visible"),
                ("kept", "kept: graded C by the experts (settled by a third expert)")]
            assert not any(name.split()[1] in m for _, m in lines for name in NAMES)
            settled = await store.view(conn, exam, leroy)
            assert [r["grade"] for r in settled["readings"]] == ["A", "D", "C"]
        finally:
            await conn.close()
    run(go())


def test_two_grades_at_once_are_told_apart_by_the_constraints(
        database_url: str, example_event: Path, tmp_path: Path) -> None:
    """Another reviewer's reading 1, inserted and not yet committed, holds Dr Martin's insert
    of reading 1 on the UNIQUE (exam_id, reading) index; once it commits, his grade becomes
    reading 2 and, read under the exam's lock, settles the exam."""
    async def go() -> None:
        conn, who = await _setup(database_url, example_event, tmp_path)
        other = await asyncpg.connect(database_url)
        try:
            exam_id, _ = await exam_in_review(conn, tmp_path, center="CHU de Lyon",
                                              challenge="nodules-3d", label="chest-03")
            pid = conn.get_server_pid()
            racing = other.transaction()
            await racing.start()
            await other.execute("INSERT INTO review (exam_id, reviewer_id, reading, grade) "
                                "VALUES ($1, $2, 1, 'A')", exam_id, who["Dr Leroy"])
            task = asyncio.create_task(store.grade(conn, exam_id, who["Dr Martin"], "A", ""))
            probe = await asyncpg.connect(database_url)
            try:
                for _ in range(600):
                    waiting = await probe.fetchval(
                        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
                    if waiting == "Lock":
                        break
                    await asyncio.sleep(0.1)
                assert waiting == "Lock"
            finally:
                await probe.close()
            await racing.commit()
            done = await asyncio.wait_for(task, 60)
            assert (done.reading, done.settled, done.stage) == (2, "A", Stage.KEPT)

            # The same reviewer twice at once: one reading, the other refused.
            second, _ = await exam_in_review(conn, tmp_path, center="CHU de Lyon",
                                             challenge="nodules-3d", label="chest-04", seed=2)
            results = await asyncio.gather(
                store.grade(conn, second, who["Dr Petit"], "B", "one"),
                store.grade(other, second, who["Dr Petit"], "C", "two"),
                return_exceptions=True)
            assert sorted(type(r).__name__ for r in results) == ["AlreadyGraded", "Outcome"]
            assert await conn.fetchval("SELECT count(*) FROM review WHERE exam_id = $1",
                                       second) == 1
        finally:
            await other.close()
            await conn.close()
    run(go())


def test_rules_from_the_questions_inclusion() -> None:
    assert store.Rules.of(None) == store.Rules("single", ("A", "B", "C"))
    assert store.Rules.of('{"reading": "double", "keep": ["a", "b"]}') == store.Rules(
        "double", ("A", "B"))
