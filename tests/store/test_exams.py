"""server/store/exams.py: an exam's stages, its findings' LORIS states and its timeline, each
change announced."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from server.store import exams as store
from server.store.exams import DecisionRefused, Exclusion, Stage, ViolationState
from tests.helpers import load_event_into, run

THICK = {"code": "slice_thickness", "rule": "slice_thickness_mm", "severity": "violation",
         "message": "slice thickness 2.5 mm; this question needs < 1.25 mm",
         "found": 2.5, "expected": "< 1.25"}
KERNEL = {"code": "kernel", "rule": "kernel", "severity": "warning",
          "message": "kernel B30f is soft", "found": "B30f", "expected": "hard"}


async def _center(conn: asyncpg.Connection, name: str) -> int:
    found: int = await conn.fetchval("SELECT id FROM center WHERE name = $1", name)
    return found


def test_an_exam_from_arrival_to_review(database_url: str, example_event: Path,
                                        tmp_path: Path) -> None:
    async def go() -> None:
        await load_event_into(database_url, example_event, tmp_path / "data")
        conn = await asyncpg.connect(database_url)
        heard: list[dict[str, object]] = []
        await conn.add_listener("podium", lambda *a: heard.append(json.loads(a[3])))
        try:
            lyon = await _center(conn, "CHU de Lyon")
            first = await store.create(conn, center_id=lyon, challenge="nodules-3d",
                                       channel="web", label="chest-01.zip", source_key="k1",
                                       message="received by the web: 120 files")
            await store.deidentified(conn, first, folder=tmp_path / "e1", files=120, size=9,
                                     pseudonym="P-1", study_uid="2.25.1", message="done")
            stage = await store.checked(conn, first, [THICK, KERNEL], {"slices": 120}, "checked")
            assert stage is Stage.CHECKED
            found = (await store.findings(conn, [first]))[first]
            assert [(f.code, f.blocking) for f in found] == [("slice_thickness", True),
                                                            ("kernel", False)]
            assert await store.mark_notified(conn, lyon) == 1
            with pytest.raises(DecisionRefused, match="reason"):
                await store.decide(conn, found[0].id, ViolationState.ACCEPTED, " ", "Anna")
            with pytest.raises(DecisionRefused, match="warning"):
                await store.decide(conn, found[1].id, ViolationState.ACCEPTED, "ok", "Anna")
            decided = await store.decide(conn, found[0].id, ViolationState.ACCEPTED,
                                         "1.25 mm reconstruction lost; 1.5 mm is fine", "Anna")
            assert (decided.state, decided.decided_by) == (ViolationState.ACCEPTED, "Anna")
            with pytest.raises(DecisionRefused, match="already accepted"):
                await store.decide(conn, found[0].id, ViolationState.REJECTED, "no", "Anna")
            exam = await store.exam(conn, first)
            assert exam is not None and exam.stage is Stage.REVIEW
            assert (exam.center, exam.challenge, exam.summary) == (
                "CHU de Lyon", "nodules-3d", {"slices": 120})

            # The same study sent again replaces the first.
            second = await store.create(conn, center_id=lyon, challenge="nodules-3d",
                                        channel="dicom", label="study", source_key="k1",
                                        message="received from the PACS")
            old, new = await store.exam(conn, first), await store.exam(conn, second)
            assert old is not None and new is not None
            assert (old.stage, old.exclusion, new.replaces) == (Stage.EXCLUDED,
                                                                Exclusion.RESENT, first)
            await store.checked(conn, second, [THICK], {}, "checked")
            refused = (await store.findings(conn, [second]))[second][0]
            await store.decide(conn, refused.id, ViolationState.REJECTED, "too thick", "Anna")
            new = await store.exam(conn, second)
            assert new is not None and (new.stage, new.exclusion) == (Stage.EXCLUDED,
                                                                     Exclusion.CRITERIA)
            kinds = [e.kind for e in (await store.timeline(conn, [first]))[first]]
            assert kinds == ["received", "deidentified", "criteria", "violation_state",
                             "criteria", "resent"]
            assert [e.id for e in await store.exams(conn, center_id=lyon)] == [second, first]
            await conn.execute("SELECT 1")  # let the notifications in
            assert {"type": "exam", "id": second, "center_id": lyon, "challenge": "nodules-3d",
                    "stage": "excluded"} in heard
        finally:
            await conn.close()
    run(go())
