"""server/store/inclusion_tables.py: the seed's Tables 2 and 3 from exams sent, resent, checked,
graded, kept and excluded through server.store.exams.

The seed gives, for the pulmonary nodules question, how many exams each of its 15 centers sent
(Table 2: 1,237 in all) and how many were kept (Table 3: 1,031, 83 %). The fixture sends exactly
those; how the 206 exclusions split between reasons, and the kept exams between classes, the
paper does not say: the fixture's own split is checked instead (sum and per reason)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from server.store import exams as store
from server.store import inclusion_tables as tables
from server.store.exams import Exclusion, ViolationState
from tests.helpers import load_event_into, run

# Table 2, pulmonary nodules: center and exams received.
NODULES = [("CHU Bichat", 267), ("CHU de Nîmes", 143), ("CHU Rennes", 137),
           ("CHU Bordeaux", 105), ("CHU Cochin", 102), ("CHU Grenoble", 100), ("CHU Nice", 99),
           ("Avicenne", 98), ("CHU Clermont-Ferrand", 50), ("Gustave Roussy", 45),
           ("CHU Montpellier", 42), ("CH Douai", 25), ("CHU Strasbourg", 17),
           ("CHRU Besançon", 6), ("Institut A. Tzanck libéral", 1)]
RECEIVED, KEPT = 1237, 1031  # Table 3, pulmonary nodules
THICK = {"code": "slice_thickness", "rule": "slice_thickness_mm", "severity": "violation",
         "message": "slice thickness 2.5 mm; this question needs < 1.25 mm"}
COUNT = {"code": "nodule_count", "rule": "nodules.count", "severity": "violation",
         "message": "7 nodules; this question needs 1 to 5"}
KERNEL = {"code": "kernel", "rule": "kernel", "severity": "warning", "message": "soft kernel"}


def fate(g: int) -> str:
    """The fixture's fate of the g-th exam of the question (0 to 1,236): 206 of the 1,237,
    spread evenly, are excluded, for one of five reasons in turn; the others are kept."""
    excluded = (g * 206) // RECEIVED != ((g + 1) * 206) // RECEIVED
    if not excluded:
        return "ABC"[g % 3] if g % 7 else "B"
    return ("thick", "count", "quality", "deid", "withdrawn")[(g * 206 // RECEIVED) % 5]


async def send(conn: asyncpg.Connection, center_id: int, name: str, i: int, g: int) -> str:
    outcome = fate(g)
    key = f"{name}-{i}"
    exam = await store.create(conn, center_id=center_id, challenge="nodules-3d", channel="web",
                              label=f"{key}.zip", source_key=key, message="received")
    if i % 50 == 0:
        # Sent first with a violation, then sent again: the first is "resent", never counted.
        await store.checked(conn, exam, [THICK], {}, "checked")
        exam = await store.create(conn, center_id=center_id, challenge="nodules-3d",
                                  channel="web", label=f"{key}.zip", source_key=key,
                                  message="received again")
    if outcome in ("thick", "count"):
        await store.checked(conn, exam, [THICK if outcome == "thick" else COUNT, KERNEL], {},
                            "checked")
        violation = (await store.findings(conn, [exam]))[exam][0]
        await store.decide(conn, violation.id, ViolationState.REJECTED, "not usable", "Anna")
    elif outcome == "quality":
        await store.exclude(conn, exam, Exclusion.QUALITY, "graded D", grade="D")
    elif outcome == "deid":
        await store.exclude(conn, exam, Exclusion.DEIDENTIFICATION, "burned-in text")
    elif outcome == "withdrawn":
        await store.exclude(conn, exam, Exclusion.WITHDRAWN, "withdrawn by the organizers")
    else:
        await store.keep(conn, exam, outcome, f"kept: class {outcome}")
    return outcome


def test_the_seeds_tables_2_and_3_for_the_nodules_question(database_url: str,
                                                             example_event: Path,
                                                             tmp_path: Path) -> None:
    with example_event.open("a") as handle:
        for name, _ in NODULES:
            handle.write(f'\n[[centers]]\nname = "{name}"\nchallenges = ["nodules-3d"]\n')
    text = example_event.read_text()
    assert text.count("target = 30\n") == 1
    example_event.write_text(text.replace("target = 30\n", "target = 1000\n"))  # 1,100 wanted

    async def go() -> None:
        await load_event_into(database_url, example_event, tmp_path / "data")
        pool = await asyncpg.create_pool(database_url, min_size=4, max_size=4)
        assert pool is not None
        expected: dict[str, dict[str, int]] = {}

        async def center(name: str, count: int, first: int) -> None:
            async with pool.acquire() as conn:
                center_id = await conn.fetchval("SELECT id FROM center WHERE name = $1", name)
                fates = [await send(conn, center_id, name, i, first + i) for i in range(count)]
            expected[name] = {f: fates.count(f) for f in set(fates)}

        firsts = [sum(n for _, n in NODULES[:k]) for k in range(len(NODULES))]
        try:
            await asyncio.gather(*(center(name, n, first)
                                   for (name, n), first in zip(NODULES, firsts, strict=True)))
            async with pool.acquire() as conn:
                table2 = await tables.center_table(conn)
                table3 = await tables.question_table(conn)
        finally:
            await pool.close()

        nodules = [r for r in table2 if r.challenge == "nodules-3d"]
        # Table 2 as the seed prints it: centers by exams received, most first.
        # The example event's own two nodules centers have sent nothing: listed last, at 0.
        assert [(r.center, r.tally.received) for r in nodules] == [
            *NODULES, ("CHU de Bordeaux", 0), ("CHU de Lyon", 0)]
        nodules = nodules[:len(NODULES)]
        for row in nodules:
            mine = expected[row.center]
            assert row.tally.kept == sum(mine.get(g, 0) for g in "ABC")
            assert row.tally.by_class == {"A": mine.get("A", 0), "B": mine.get("B", 0),
                                          "C": mine.get("C", 0), "D": 0}
            assert row.tally.by_reason == {
                "deidentification": mine.get("deid", 0), "quality": mine.get("quality", 0),
                "criteria": mine.get("thick", 0) + mine.get("count", 0),
                "withdrawn": mine.get("withdrawn", 0)}
            assert row.tally.pending == 0
        question = next(q for q in table3 if q.challenge == "nodules-3d")
        # Table 3: 1,237 received, 1,031 kept (83 %).
        assert (question.tally.received, question.tally.kept) == (RECEIVED, KEPT)
        assert question.tally.kept_percent == 83 and question.tally.excluded == 206
        assert sum(question.tally.by_reason.values()) == 206
        assert question.tally.by_code == {
            "slice_thickness": sum(e.get("thick", 0) for e in expected.values()),
            "nodule_count": sum(e.get("count", 0) for e in expected.values())}
        assert (question.target, question.wanted) == (1000, 1100)
        assert question.to_json()["target_percent"] == 103
        assert question.to_json()["wanted_percent"] == 94
        # The best inclusion center: most kept (Bichat sent the most, kept the most).
        bichat = next(r for r in nodules if r.center == "CHU Bichat")
        assert (question.best_center, question.best_kept) == ("CHU Bichat", bichat.tally.kept)
        # The other questions have no exams yet: every declared pair is listed, at zero.
        others = [r for r in table2 if r.challenge != "nodules-3d"]
        assert others and all(r.tally.received == 0 for r in others)
        assert all(q.best_center is None for q in table3 if q.challenge != "nodules-3d")
        assert tables.tables_json(table2, table3)["total"]["received"] == RECEIVED

    run(go())


def test_a_tie_for_best_center_goes_to_the_center_that_got_there_first(
        database_url: str, example_event: Path, tmp_path: Path) -> None:
    async def go() -> None:
        await load_event_into(database_url, example_event, tmp_path / "data")
        conn = await asyncpg.connect(database_url)
        try:
            ids = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM center")}

            async def kept(center: str, key: str) -> None:
                exam = await store.create(conn, center_id=ids[center], challenge="sarcopenia",
                                          channel="web", label=key, source_key=key,
                                          message="received")
                await store.keep(conn, exam, "A", "kept")

            async def best() -> tuple[str | None, int]:
                row = next(q for q in await tables.question_table(conn)
                           if q.challenge == "sarcopenia")
                return row.best_center, row.best_kept

            await kept("CHU de Lyon", "l1")
            await kept("CHU de Bordeaux", "b1")
            await kept("CHU de Lyon", "l2")       # Lyon reaches 2 first ...
            await kept("CHU de Bordeaux", "b2")
            assert await best() == ("CHU de Lyon", 2)  # ... though Bordeaux comes first by name
            await kept("CHU de Bordeaux", "b3")
            assert await best() == ("CHU de Bordeaux", 3)
        finally:
            await conn.close()

    run(go())
