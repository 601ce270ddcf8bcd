"""Splits of kept exams in the database: made once, shown, redone until a set is released,
their manifests' SHA-256; through `podium split` and the organizers' API."""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from pathlib import Path

import asyncpg
import pandas as pd
import pytest

from server.cli import main
from server.store import exams as exam_store
from server.store import splits as split_store
from tests.helpers import AppServer, load_event_into, run

EVENT = """
[event]
name = "Splits"

[[challenges]]
slug = "nodules-3d"
title = "Nodules from the centers' exams"
kind = "binary-probability"
duration_minutes = 60
truth = "set:validation"
release = "set:validation"

[challenges.inclusion]
target = 12

[challenges.inclusion.criteria]
modality = "CT"
dimension = "3d"

[challenges.inclusion.criteria.nodules]
count = {min = 1, max = 5}
malignant = {volume_mm3_above = 100, diameter_mm_above = 6}

[challenges.splits]
seed = 2019
sets = {training = 6, validation = 3, test = 3}
stratify = ["center", "class"]

[[centers]]
name = "CHU de Lyon"
challenges = ["nodules-3d"]

[[centers]]
name = "CHU de Bordeaux"
challenges = ["nodules-3d"]
"""


def _event(tmp_path: Path, text: str = EVENT) -> Path:
    path = tmp_path / "event" / "event.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


SMALL = {"x": 0.0, "y": 0.0, "z": 0.0, "diameter_mm": 4.0, "volume_mm3": 30.0}
LARGE = {"x": 0.0, "y": 0.0, "z": 0.0, "diameter_mm": 9.0, "volume_mm3": 380.0}


async def _kept_exams(url: str, data_dir: Path, count: int = 12) -> list[int]:
    """`count` kept nodules-3d exams, two of them of one patient; each a folder of two files."""
    conn = await asyncpg.connect(url)
    try:
        ids = []
        for i in range(count):
            center = ("CHU de Lyon", "CHU de Bordeaux")[i % 2]
            center_id = await conn.fetchval("SELECT id FROM center WHERE name = $1", center)
            exam = await exam_store.create(conn, center_id=center_id, challenge="nodules-3d",
                                           channel="web", label=f"chest-{i}.zip",
                                           source_key=f"k{i}", message="received")
            folder = data_dir / "exams" / str(exam)
            (folder / "series" / "0").mkdir(parents=True)
            (folder / "series" / "0" / "0.dcm").write_bytes(f"slice of exam {i}".encode() * 7)
            (folder / "annotation").mkdir()
            (folder / "annotation" / "nodules.csv").write_text(f"x,y,z\n{i},0,0\n")
            await exam_store.deidentified(conn, exam, folder=folder, files=2, size=1,
                                          pseudonym="P-twice" if i in (0, 2) else f"P-{i}",
                                          study_uid=f"2.25.{i}", message="de-identified")
            nodules = [SMALL, LARGE] if i % 3 == 0 else [SMALL]
            await exam_store.checked(conn, exam, [], {"series": "series/0", "nodules": nodules},
                                     "the criteria are met")
            await exam_store.keep(conn, exam, "ABC"[i % 3], f"graded {'ABC'[i % 3]}")
            ids.append(exam)
        return ids
    finally:
        await conn.close()


def test_podium_split_makes_shows_redoes_and_stops_at_a_release(
        database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = _event(tmp_path)
    data = tmp_path / "data"
    run(load_event_into(database_url, event, data))
    ids = run(_kept_exams(database_url, data))
    split = ["split", "--event", str(event), "--challenge", "nodules-3d",
             "--database-url", database_url, "--data-dir", str(data)]

    assert main(split) == 0
    out = capsys.readouterr().out
    assert "nodules-3d: split 1 (seed 2019), made by podium split" in out
    assert "training: 6 exams, 5 patients" in out or "training: 6 exams, 6 patients" in out
    assert "grades: " in out and "class/bin: benign " in out

    async def stored() -> split_store.StoredSplit:
        conn = await asyncpg.connect(database_url)
        try:
            found = await split_store.current(conn, "nodules-3d")
            assert found is not None
            return found
        finally:
            await conn.close()

    first = run(stored())
    assert sorted(first.assignment) == ids
    assert first.assignment[ids[0]] == first.assignment[ids[2]]  # one patient, one set
    assert [(s.name, s.size) for s in first.sets] == [("training", 6), ("validation", 3),
                                                      ("test", 3)]
    # The manifest: every file of the set's exams, its path relative to the set, its SHA-256.
    manifest = pd.read_csv(data / "splits" / "nodules-3d" / "1" / "validation.csv")
    members = sorted(e for e, s in first.assignment.items() if s == "validation")
    assert sorted(set(manifest["exam"])) == members and len(manifest) == 2 * len(members)
    for row in manifest.itertuples():
        path = data / "exams" / row.path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
        assert row.bytes == path.stat().st_size

    assert main(split) == 0  # shown, not made again
    assert "split 1 (seed 2019)" in capsys.readouterr().out
    assert main([*split, "--redo"]) == 0
    assert "split 2 (seed 2019)" in capsys.readouterr().out
    assert run(stored()).assignment == first.assignment  # same exams, same seed

    async def release() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            return await split_store.mark_released(conn, "nodules-3d", "training")
        finally:
            await conn.close()

    assert run(release())
    assert main([*split, "--redo"]) == 1
    err = capsys.readouterr().err
    assert "its set 'training' is released to the teams already (split_released)" in err
    assert run(stored()).id == 2


def test_the_organizers_split_through_the_api(database_url: str, tmp_path: Path) -> None:
    event = _event(tmp_path)
    server = AppServer(event, tmp_path / "data", database_url).start()
    try:
        organizer = server.tokens()["organizer"]
        path = "/api/v1/challenges/nodules-3d/split"
        status, body = server.json("GET", path, token=organizer)
        assert (status, body["error"]["code"]) == (404, "no_split")
        status, body = server.json("POST", path, token=organizer, body={})
        assert (status, body["error"]["code"]) == (422, "split_refused")
        assert "ask for 12 exams" in body["error"]["message"]

        run(_kept_exams(database_url, tmp_path / "data", count=13))
        status, made = server.json("POST", path, token=organizer, body={"by": "Anna"})
        assert status == 201, made
        assert made["made_by"] == "organizer (Anna)" and made["stratify"] == ["center", "class"]
        assert [(s["set"], s["exams"]) for s in made["sets"]] == [
            ("training", 6), ("validation", 3), ("test", 3), (None, 1)]
        assert sum(sum(s["centers"].values()) for s in made["sets"]) == 13
        status, body = server.json("POST", path, token=organizer, body={})
        assert (status, body["error"]["code"]) == (409, "split_exists")
        status, shown = server.json("GET", path, token=organizer)
        assert status == 200 and shown == made
        status, again = server.json("POST", path, token=organizer, body={"redo": True})
        assert status == 201 and again["split"] == made["split"] + 1
        status, body = server.json("POST", "/api/v1/challenges/lungs/split",
                                   token=organizer, body={})
        assert (status, body["error"]["code"]) == (404, "unknown_challenge")
        assert (tmp_path / "data" / "final" / "nodules-3d" / "truth.csv").is_file()
    finally:
        server.stop()
    # Files lost: the next start writes them again from the split and prepares the release.
    shutil.rmtree(tmp_path / "data" / "final")
    server = AppServer(event, tmp_path / "data", database_url).start()
    try:
        status, challenges = server.json("GET", "/api/v1/challenges")
        assert status == 200 and challenges[0]["release"] is not None, challenges
        assert (tmp_path / "data" / "final" / "nodules-3d" / "truth.csv").is_file()
        status, body = server.json("POST", path, token=server.tokens()["jury"], body={})
        assert status == 403
    finally:
        server.stop()
