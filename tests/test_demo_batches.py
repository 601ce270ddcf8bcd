"""The demo's training batches, served: after the demo's start each split question has two
batches, both open (batch-1 by its `opens` a month before the final day, batch-2 opened by the
organizers); a team registered for the question (an approved registration or an event-file
team) downloads batch-1, the first part of the training set with its annotations, and a team
not registered for it is refused; the team's page and the datasets view show them.

PODIUM_SCREENS=docs/screens also photographs /organizer/datasets and /team at 1920×1080 and
1366×768 (organizer-datasets-demo-*.png, team-demo-*.png)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pandas as pd
import pytest

from server.demo import write_demo_event
from server.demo_inclusion import ORGANIZER, prepare
from server.event import parse_event
from tests.helpers import AppServer, run
from tests.pages import LAPTOP, PROJECTOR, new_page, overflowing, script_errors

SPLIT = ("sarcopenia", "edss", "nodules-3d")


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's folder as `podium demo` writes it, once per module (copied by each test:
    the demo's start writes its approved teams' tokens beside the event file)."""
    return write_demo_event(tmp_path_factory.mktemp("demo-batches") / "demo").parent


@pytest.fixture
def demo_server(demo_files: Path, database_url: str, tmp_path: Path
                ) -> Iterator[tuple[AppServer, dict[str, str]]]:
    """The demo started as `podium demo` starts it (prepared, then served); every token."""
    folder = tmp_path / "demo"
    shutil.copytree(demo_files, folder, copy_function=os.link)
    data = tmp_path / "data"
    event = parse_event(folder / "event.toml")
    registered = run(prepare(database_url, event, data))
    server = AppServer(event.path, data, database_url, scoring_workers=0).start()
    yield server, {**server.tokens(), **registered}
    server.stop()


def _training(data: Path, slug: str) -> list[int]:
    """The training set's exams, in exam order, as the split's report lists them."""
    listed = pd.read_csv(next((data / "splits" / slug).glob("*/training.csv")))
    return sorted({int(e) for e in listed["exam"]})


def _members(zipped: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


async def _folders(url: str) -> dict[int, Path]:
    conn = await asyncpg.connect(url)
    try:
        return {r["id"]: Path(r["folder"]) for r in await conn.fetch(
            "SELECT id, folder FROM exam WHERE stage = 'kept'")}
    finally:
        await conn.close()


def test_registered_demo_teams_download_the_open_batches(
        demo_server: tuple[AppServer, dict[str, str]], database_url: str) -> None:
    server, tokens = demo_server
    organizer = tokens["organizer"]
    data = server.data_dir
    event = parse_event(server.event)

    # Each split question: two batches, both open; the first by its time, the second opened
    # by the organizers on the demo's start.
    for slug in SPLIT:
        status, schedule = server.json("GET", f"/api/v1/challenges/{slug}/batches", organizer)
        assert status == 200
        batches = {b["name"]: b for b in schedule["batches"]}
        assert sorted(batches) == ["batch-1", "batch-2"], slug
        first, second = batches["batch-1"], batches["batch-2"]
        assert (first["state"], second["state"]) == ("open", "open"), slug
        assert datetime.fromisoformat(first["opens"]) == event.challenge(slug).batches[0].opens
        assert first["opened_by"] is None and second["opens"] is None
        assert second["opened_by"] == f"organizer ({ORGANIZER})"
        assert first["packed"] and second["packed"], slug
        assert first["exams"] + second["exams"] == len(_training(data, slug)) == 3
        assert schedule["next_opens"] is None

    folders = run(_folders(database_url))
    # An approved registration (Lyon Imaging Lab) and an event-file team (Pixel Pétanque),
    # each registered for sarcopenia and EDSS, see both and download batch-1.
    for team, slug in (("Lyon Imaging Lab", "sarcopenia"), ("Pixel Pétanque", "edss"),
                       ("Toulouse Thorax AI", "nodules-3d")):
        shown = server.json("GET", f"/api/v1/challenges/{slug}/batches", tokens[team])[1]
        archive = f"/api/v1/challenges/{slug}/batches/batch-1/archive"
        assert [b["archive"] for b in shown["batches"]] == [
            archive, f"/api/v1/challenges/{slug}/batches/batch-2/archive"], team
        status, headers, whole = server.request("GET", archive, tokens[team])
        assert status == 200 and headers["Content-Type"] == "application/zip", team
        assert hashlib.sha256(whole).hexdigest() == headers["X-Content-SHA256"]
        members = _members(whole)
        part = _training(data, slug)[:2]   # part 1 of 2 of the training set's 3, in exam order
        manifest = pd.read_csv(io.BytesIO(members.pop("MANIFEST.csv")))
        assert sorted(manifest["file"]) == sorted(members), team
        assert {int(name.split("/")[0]) for name in members} == set(part), team
        for exam in part:
            kept = {f"{exam}/{p.relative_to(folders[exam]).as_posix()}"
                    for p in folders[exam].rglob("*") if p.is_file()}
            mine = {name for name in members if name.startswith(f"{exam}/")}
            assert mine == kept, (team, exam)
            # The training set's truth goes out with it: the exam's annotation.
            assert any(n.startswith(f"{exam}/annotation/") for n in mine), (team, exam)
            assert any(n.startswith(f"{exam}/series/") for n in mine), (team, exam)
        for row in manifest.itertuples():
            assert hashlib.sha256(members[row.file]).hexdigest() == row.sha256
            assert len(members[row.file]) == row.size

    # Teams not registered for the question are refused: an approved registration for EDSS
    # only, and an event-file team of the nodule questions.
    for team in ("Brest Brain Works", "Gradient Gargoyles"):
        status, answer = server.json(
            "GET", "/api/v1/challenges/sarcopenia/batches/batch-1/archive", tokens[team])
        assert (status, answer["error"]["code"]) == (403, "not_registered"), team


def test_the_demo_teams_page_and_the_datasets_view_show_the_batches(
        demo_server: tuple[AppServer, dict[str, str]], browser: Any) -> None:
    server, tokens = demo_server
    team = "Lyon Imaging Lab"
    for slug in ("sarcopenia", "edss"):
        assert server.request("GET", f"/api/v1/challenges/{slug}/batches/batch-1/archive",
                              tokens[team])[0] == 200
    page = new_page(browser, server.url, tokens[team], viewport=LAPTOP)
    errors = script_errors(page)
    page.goto(f"{server.url}/team")
    for slug in ("sarcopenia", "edss"):
        box = f'[data-batches-of="{slug}"]:not([hidden])'
        page.wait_for_selector(f"{box} li[data-batch] code.sha")
        links = page.locator(f"{box} li[data-batch] a")
        assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
            f"/api/v1/challenges/{slug}/batches/{name}/archive"
            for name in ("batch-1", "batch-2")]
        assert "part 1 of 2" in page.inner_text(f'{box} li[data-batch="batch-1"]')
    _shoot(page, "team-demo")
    assert errors == []

    console = new_page(browser, server.url, tokens["organizer"], viewport=LAPTOP)
    errors = script_errors(console)
    console.goto(f"{server.url}/organizer/datasets")
    for slug in ("sarcopenia", "edss", "nodules-3d"):
        rows = console.locator(f'[data-batches-of="{slug}"] tr[data-batch]')
        assert rows.count() == 2
        assert console.locator(f'[data-batches-of="{slug}"] tr[data-state="open"]').count() == 2
        second = console.locator(f'[data-batches-of="{slug}"] tr[data-batch="batch-2"]')
        assert f"by organizer ({ORGANIZER})" in second.inner_text()
        assert "when opened here" in second.inner_text()
    first = console.locator('[data-batches-of="sarcopenia"] tr[data-batch="batch-1"]')
    assert "Europe/Paris" in first.inner_text() and f"{team}: 1 (1 complete)" in \
        first.inner_text()
    assert console.locator("[data-open-batch]").count() == 0
    _shoot(console, "organizer-datasets-demo")
    for size in (PROJECTOR, LAPTOP):
        for shown in (page, console):
            shown.set_viewport_size(size)
            assert overflowing(shown) == [], (size, shown.url)
    assert errors == []


def _shoot(page: Any, name: str) -> None:
    """With PODIUM_SCREENS=docs/screens, the page at the projector's and a laptop's size."""
    folder = os.environ.get("PODIUM_SCREENS")
    if not folder:
        return
    for size, suffix in ((PROJECTOR, "1920"), (LAPTOP, "1366")):
        page.set_viewport_size(size)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(Path(folder) / f"{name}-{suffix}.png"), full_page=True)
    page.set_viewport_size(LAPTOP)
