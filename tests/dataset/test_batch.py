"""Batch releases of training sets: the event file's `[[challenges.batches]]` and its
refusals, the cut of a set into parts, and one served event where a batch is refused one
second before its opening and served at it, another opened by an organizer, each archive the
batch's exams with their annotations and a right MANIFEST, resumable, counted per team."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.dataset.batch import BatchState, next_opening, part_of, require_open, state_at
from server.dataset.batch_views import batch_json
from server.errors import BatchNotOpen, EventFileError
from server.event import BatchSpec, parse_event
from server.store.batches import PackedBatch
from tests.dataset.test_cohort import EVENT, _event, _kept_exams
from tests.helpers import AppServer, DatabaseClock, run, wait_for
from tests.pages import LAPTOP, PROJECTOR, new_page, script_errors

OPENS = datetime(2031, 9, 11, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
BATCHES = """
[[challenges.batches]]
name = "batch-1"
set = "training"
part = 1
parts = 2
opens = 2031-09-11T09:00:00

[[challenges.batches]]
name = "batch-2"
set = "training"
part = 2
parts = 2
"""
TEAMS = """
[[teams]]
name = "Alpha"
challenges = ["nodules-3d"]

[[teams]]
name = "Outsiders"
challenges = []
"""


def _batch_event(batches: str = BATCHES) -> str:
    head, centers = EVENT.split("[[centers]]", 1)
    head = head.replace('name = "Splits"', 'name = "Splits"\ntimezone = "Europe/Paris"')
    return head + batches + TEAMS + "[[centers]]" + centers


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sets(st.integers(1, 10_000), max_size=40).map(list), st.integers(1, 7))
def test_the_parts_of_a_set_cover_it_once_in_exam_order(exams: list[int], parts: int) -> None:
    cut = [part_of(exams, part, parts) for part in range(1, parts + 1)]
    assert [e for piece in cut for e in piece] == sorted(exams)
    assert max(map(len, cut)) - min(map(len, cut)) <= 1
    assert [len(p) for p in cut] == sorted((len(p) for p in cut), reverse=True)


def test_a_batch_opens_to_the_second_or_when_an_organizer_opens_it() -> None:
    scheduled = BatchSpec("b1", "training", opens=OPENS)
    waiting = BatchSpec("b2", "training")
    before = OPENS - timedelta(seconds=1)
    assert state_at(scheduled, None, before) is BatchState.SCHEDULED
    assert state_at(scheduled, None, OPENS) is BatchState.OPEN
    assert state_at(waiting, None, OPENS + timedelta(days=99)) is BatchState.WAITING
    assert state_at(waiting, before, before) is BatchState.OPEN
    assert next_opening([scheduled, waiting], {}, before) == OPENS
    assert next_opening([scheduled, waiting], {}, OPENS) is None


def test_a_sealed_batch_goes_out_before_its_opening_and_its_key_at_it(tmp_path: Path) -> None:
    challenge = parse_event(_event(tmp_path, _batch_event(BATCHES.replace(
        "parts = 2\nopens", "parts = 2\nsealed = true\nopens")))).challenge("nodules-3d")
    spec = challenge.batches[0]
    packed = PackedBatch(challenge_id=1, name=spec.name, set_name="training", exams=(1, 2),
                         path=tmp_path / "b.zip", file_name="b.zip", size=10, sha256="0" * 64,
                         sealed=True, key="the-key", packed_at=OPENS, opened_at=None,
                         opened_by=None)
    before = OPENS - timedelta(seconds=1)
    early = batch_json(challenge, spec, packed, before, "Europe/Paris", organizer=False)
    assert early["archive"] and early["state"] == "scheduled" and early["key"] is None
    assert batch_json(challenge, spec, packed, before, "Europe/Paris", organizer=True
                      )["key"] == "the-key"
    assert batch_json(challenge, spec, packed, OPENS, "Europe/Paris", organizer=False
                      )["key"] == "the-key"
    require_open(challenge, spec, None, before, "Europe/Paris")  # not refused: sealed
    with pytest.raises(BatchNotOpen, match="opens at 2031-09-11 09:00:00"):
        require_open(challenge, BatchSpec("x", "training", opens=OPENS), None, before,
                     "Europe/Paris")


@pytest.mark.parametrize(("batches", "key", "message"), [
    (BATCHES, None, None),
    ('[[challenges.batches]]\nname = "v"\nset = "validation"\n', "challenges[0].batches[0].set",
     "set 'validation' is held back for the final day: its truth never goes out"),
    ('[[challenges.batches]]\nname = "t"\nset = "test"\n', "challenges[0].batches[0].set",
     "held back for the final day"),
    ('[[challenges.batches]]\nname = "x"\nset = "final"\n', "challenges[0].batches[0].set",
     "set must name a set of \\[challenges.splits\\] \\(training, validation, test\\)"),
    (BATCHES.replace("opens = 2031-09-11T09:00:00", 'opens = "11 September"'),
     "challenges[0].batches[0].opens", "opens must be a date and time such as "
     "2019-09-11T09:00:00 \\(the event's time zone, Europe/Paris\\)"),
    (BATCHES.replace("part = 2\n", ""), "challenges[0].batches[1].parts",
     "part and parts go together"),
    (BATCHES.replace("part = 2\n", "part = 1\n"), "challenges[0].batches[1].part",
     "batch 'batch-1' is already part 1 of 2 of set 'training'"),
    (BATCHES.replace('"batch-2"', '"batch-1"'), "challenges[0].batches[1].name",
     "batch name 'batch-1' is used twice"),
    (BATCHES.replace("part = 1\n", "part = 3\n"), "challenges[0].batches[0].part",
     "part must be a whole number from 1 to parts \\(2\\)"),
    (BATCHES + "when = 1\n", "challenges[0].batches[1].when", "unknown key 'when'"),
    (BATCHES.replace("parts = 2\nopens", "parts = 2\nsealed = \"yes\"\nopens"),
     "challenges[0].batches[0].sealed", "sealed must be true or false"),
])
def test_the_event_files_batches_are_checked_naming_the_key(
        tmp_path: Path, batches: str, key: str | None, message: str | None) -> None:
    path = _event(tmp_path, _batch_event(batches))
    if message is None:
        first, second = parse_event(path).challenge("nodules-3d").batches
        assert (first.name, first.set, first.part, first.parts) == ("batch-1", "training", 1, 2)
        assert first.opens == OPENS and second.opens is None and not second.sealed
        return
    with pytest.raises(EventFileError, match=message) as caught:
        parse_event(path)
    assert caught.value.key == key
    # The line is the batch's own key (or its table's header), counted in the file.
    lines = path.read_text().splitlines()
    assert caught.value.line is not None
    named = key.rsplit(".", 1)[-1]
    assert lines[caught.value.line - 1].startswith((f"{named} =", "[[challenges.batches]]"))


def test_batches_need_the_questions_split(tmp_path: Path) -> None:
    head, rest = _batch_event().split("[challenges.splits]", 1)
    rest = rest.split("\n", 4)[4]  # the split's seed, sets and stratify left out
    text = head.replace('truth = "set:validation"\nrelease = "set:validation"\n',
                        'truth = "labels.csv"\n') + rest
    (tmp_path / "event").mkdir()
    (tmp_path / "event" / "labels.csv").write_text("id,label\n1,0\n2,1\n")
    with pytest.raises(EventFileError, match="batches need a \\[challenges.splits\\] table"
                       ) as caught:
        parse_event(_event(tmp_path, text))
    assert caught.value.key == "challenges[0].batches"


@pytest.fixture
def batch_server(database_url: str, tmp_path: Path) -> Iterator[AppServer]:
    path = _event(tmp_path, _batch_event())
    server = AppServer(path, tmp_path / "data", database_url, scoring_workers=0).start()
    yield server
    server.stop()


def _members(zipped: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_batches_are_gated_to_the_second_packed_with_their_truth_resumed_and_counted(
        batch_server: AppServer, database_url: str, tmp_path: Path, browser: Any) -> None:
    server, clock = batch_server, DatabaseClock(database_url)
    tokens = server.tokens()
    organizer, alpha, outsider = tokens["organizer"], tokens["Alpha"], tokens["Outsiders"]
    slug, data = "nodules-3d", tmp_path / "data"
    run(_kept_exams(database_url, data))
    # Nothing to open before the split.
    status, answer = server.json("POST", f"/api/v1/challenges/{slug}/batches/batch-2/open",
                                 organizer, {})
    assert (status, answer["error"]["code"]) == (404, "no_split")
    status, _ = server.json("POST", f"/api/v1/challenges/{slug}/split", organizer, {})
    assert status == 201
    training = sorted(set(pd.read_csv(data / "splits" / slug / "1" / "training.csv")["exam"]))
    assert len(training) == 6
    archive = f"/api/v1/challenges/{slug}/batches/batch-1/archive"

    # One second before its opening: refused, and said when it opens.
    clock.freeze(OPENS.astimezone(UTC) - timedelta(seconds=1))
    status, answer = server.json("GET", archive, alpha)
    assert (status, answer["error"]["code"]) == (403, "not_started")
    assert "opens at 2031-09-11 09:00:00 (Europe/Paris)" in answer["error"]["message"]
    assert server.json("GET", f"/api/v1/challenges/{slug}/batches", alpha)[1] == {
        "challenge": slug, "server_time": "2031-09-11T06:59:59.000Z", "batches": [],
        "next_opens": "2031-09-11T07:00:00.000Z",
        "next_opens_local": "2031-09-11 09:00:00 Europe/Paris"}
    # Never to a visitor nor to a team not registered for the question.
    assert server.json("GET", archive)[0] == 401
    status, answer = server.json("GET", archive, outsider)
    assert (status, answer["error"]["code"]) == (403, "not_registered")
    assert server.json("GET", f"/api/v1/challenges/{slug}/batches", outsider)[0] == 403

    # At the second of its opening: served, the first half of training with its annotations.
    clock.freeze(OPENS.astimezone(UTC))
    status, headers, whole = server.request("GET", archive, alpha)
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert hashlib.sha256(whole).hexdigest() == headers["X-Content-SHA256"]
    members = _members(whole)
    first = training[:3]
    assert sorted(members) == sorted(["MANIFEST.csv"] + [
        f"{e}/{f}" for e in first for f in ("series/0/0.dcm", "annotation/nodules.csv")])
    manifest = pd.read_csv(io.BytesIO(members["MANIFEST.csv"]))
    assert len(manifest) == 6
    for row in manifest.itertuples():
        kept = data / "exams" / row.file
        assert hashlib.sha256(kept.read_bytes()).hexdigest() == row.sha256
        assert hashlib.sha256(members[row.file]).hexdigest() == row.sha256
        assert row.size == kept.stat().st_size
    # Resumed where it stopped.
    status, _, tail = server.request("GET", archive, alpha, headers={"Range": "bytes=100-"})
    assert status == 206 and tail == whole[100:]

    # Its set is released: the split no longer changes.
    status, answer = server.json("POST", f"/api/v1/challenges/{slug}/split", organizer,
                                 {"redo": True})
    assert (status, answer["error"]["code"]) == (409, "split_released")

    # The second batch waits for an organizer; opened from the datasets view in Chromium.
    second = f"/api/v1/challenges/{slug}/batches/batch-2/archive"
    status, answer = server.json("GET", second, alpha)
    assert status == 403 and "opens when an organizer opens it" in answer["error"]["message"]
    def first_downloads() -> Any:
        schedule = server.json("GET", f"/api/v1/challenges/{slug}/batches", organizer)[1]
        return [b["downloads"] for b in schedule["batches"] if b["name"] == "batch-1"][0]

    # A download is logged once its last byte is sent: the client may read it first.
    wait_for(lambda: [d["complete"] for d in first_downloads()] == [2],
             what="batch-1's two downloads logged")
    console = new_page(browser, server.url, organizer, viewport=LAPTOP)
    errors = script_errors(console)
    console.goto(f"{server.url}/organizer/datasets")
    assert "no registration to approve" in console.inner_text(".status-strip")
    row = console.locator('[data-batches-of="nodules-3d"] tr[data-batch="batch-1"]')
    assert "Alpha: 2 (2 complete)" in row.inner_text() and "open" in row.inner_text()
    split_row = console.locator('[data-split-of="nodules-3d"] tr[data-set="training"]')
    assert split_row.locator("td").nth(0).inner_text() == "6"
    _shoot(console, "organizer-datasets")
    console.on("dialog", lambda dialog: dialog.accept())
    with console.expect_navigation():
        console.click('[data-open-batch="batch-2"]')
    console.wait_for_selector('tr[data-batch="batch-2"][data-state="open"]')
    assert console.locator("[data-open-batch]").count() == 0 and errors == []
    # Opening again keeps the first opening.
    status, opened = server.json("POST", f"/api/v1/challenges/{slug}/batches/batch-2/open",
                                 organizer, {"by": "Alice"})
    assert status == 200 and opened["state"] == "open" and opened["opened_by"] == \
        "organizer" and opened["exams"] == 3
    status, _, body = server.request("GET", second, alpha)
    assert status == 200
    assert {n.split("/")[0] for n in _members(body)} == {"MANIFEST.csv"} | {
        str(e) for e in training[3:]}
    assert server.json("POST", f"/api/v1/challenges/{slug}/batches/nope/open",
                       organizer)[1]["error"]["code"] == "unknown_batch"

    # The team sees both open; the organizers, each team's downloads.
    shown = server.json("GET", f"/api/v1/challenges/{slug}/batches", alpha)[1]
    assert [b["name"] for b in shown["batches"]] == ["batch-1", "batch-2"]
    assert shown["batches"][0]["archive"] == archive and shown["next_opens"] is None
    expected = {"batch-1": [{"team": "Alpha", "downloads": 2, "complete": 2,
                             "bytes": len(whole) + len(tail)}],
                "batch-2": [{"team": "Alpha", "downloads": 1, "complete": 1,
                             "bytes": len(body)}]}

    def counts() -> dict[str, Any]:
        schedule = server.json("GET", f"/api/v1/challenges/{slug}/batches", organizer)[1]
        return {b["name"]: b["downloads"] for b in schedule["batches"]}

    # A download is logged once its last byte is sent: the client may read it first.
    wait_for(lambda: counts() == expected, what="both batches' downloads logged")
    assert counts() == expected

    # The team's page lists both, with their links.
    team = new_page(browser, server.url, alpha, viewport=LAPTOP)
    team.goto(f"{server.url}/team")
    team.wait_for_selector('[data-batches-of="nodules-3d"]:not([hidden]) li[data-batch]')
    links = team.locator('[data-batches-of="nodules-3d"] li[data-batch] a')
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
        archive, second]
    _shoot(team, "team-batches")
    assert server.request("GET", "/organizer/datasets", alpha)[0] == 403


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
