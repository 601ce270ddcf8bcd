"""The final day built from a set: `truth = "set:validation"` and `release = "set:validation"`
written from the split's exams, equal to the truth written by hand; the event file's refusals
of `[challenges.splits]` and of `set:` names."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd
import pytest

from server.dataset import final
from server.dataset.cohort import ensure_final, make_split, plan_of, split_json
from server.errors import EventFileError, NoSplitDeclared, SplitRefused
from server.evaluators.evaluate import load_truth
from server.event import check_truth, parse_event, truth_from_set
from tests.dataset.test_cohort import EVENT, _event, _kept_exams
from tests.helpers import load_event_into, run


def test_the_truth_built_from_the_validation_set_is_the_one_written_by_hand(
        database_url: str, tmp_path: Path) -> None:
    path, data = _event(tmp_path), tmp_path / "data"
    event = parse_event(path)
    challenge = event.challenge("nodules-3d")
    assert (challenge.truth_set, challenge.release_set) == ("validation", "validation")
    run(load_event_into(database_url, path, data))
    run(_kept_exams(database_url, data))

    async def go() -> dict[str, object]:
        conn = await asyncpg.connect(database_url)
        try:
            return await make_split(conn, challenge, data, by="test")
        finally:
            await conn.close()

    report = run(go())
    validation = pd.read_csv(data / "splits" / "nodules-3d" / "1" / "validation.csv")
    members = sorted(set(validation["exam"]))
    assert len(members) == 3 and [s["exams"] for s in report["sets"]] == [6, 3, 3]  # type: ignore[index]

    # By hand: _kept_exams gives every third exam (i = 0, 3, ...) a nodule of 380 mm³.
    first = min(pd.read_csv(data / "splits" / "nodules-3d" / "1" / name)["exam"].min()
                for name in ("training.csv", "validation.csv", "test.csv"))
    by_hand = tmp_path / "by-hand.csv"
    pd.DataFrame({"id": members, "label": [int((m - first) % 3 == 0) for m in members]}
                 ).to_csv(by_hand, index=False)
    built = load_truth("binary-probability", final.truth_path(data, "nodules-3d"))
    expected = load_truth("binary-probability", by_hand)
    assert built.ids == expected.ids and np.array_equal(built.values, expected.values)

    # The release: each exam's images, never its annotation.
    release = final.release_path(data, "nodules-3d")
    assert sorted(int(p.name) for p in release.iterdir()) == members
    assert all((release / str(m) / "series" / "0" / "0.dcm").is_file() for m in members)
    assert not list(release.rglob("annotation")) and not list(release.rglob("*.csv"))

    # The event resolved into the data dir is a final day the server can load.
    resolved = check_truth(final.resolve(event, data))
    assert resolved.challenge("nodules-3d").release == release

    # Lost files are written again at the server's start, from the same split.
    final.truth_path(data, "nodules-3d").unlink()

    async def start() -> tuple[bool, dict[str, object]]:
        conn = await asyncpg.connect(database_url)
        try:
            built = await ensure_final(conn, final.resolve(event, data), data)
            return built, await split_json(conn, challenge, data)
        finally:
            await conn.close()

    rebuilt, shown = run(start())
    assert rebuilt and shown["split"] == 1
    again = load_truth("binary-probability", final.truth_path(data, "nodules-3d"))
    assert again.ids == expected.ids


@pytest.mark.parametrize(("change", "key", "message"), [
    ('sets = {training = 0.5, validation = 0.25, test = 0.25}',
     "challenges[0].splits.sets", None),
    ('sets = {training = 6, validation = 0.5}', "challenges[0].splits.sets",
     r"all be sizes in exams \(513\) or all fractions \(0.34\), not a mix: training = 6, "
     r"validation = 0.5"),
    ('sets = {training = 6, validation = 0}', "challenges[0].splits.sets",
     "set validation must be a size >= 1"),
    ('sets = {training = 0.8, validation = 0.4}', "challenges[0].splits.sets",
     "add up to 1.2, more than 1"),
    ('sets = {Training = 6, validation = 3}', "challenges[0].splits.sets",
     "set name 'Training' may only use"),
    ('seed = "x"', "challenges[0].splits.seed", "seed must be a whole number"),
    ('stratify = ["center", "site"]', "challenges[0].splits.stratify",
     "stratify must list among center, class, value"),
    ('stratify = ["value"]', "challenges[0].splits", "missing required key 'value'"),
    ('stratify = ["value"]\nvalue = "edss"\nbins = [3, 1]', "challenges[0].splits.bins",
     "bins must be increasing edges"),
    ('folds = 5', "challenges[0].splits.folds", "unknown key 'folds'"),
])
def test_the_event_files_splits_are_checked_naming_the_key(
        tmp_path: Path, change: str, key: str, message: str | None) -> None:
    head, _, _ = change.partition(" =")
    lines = [line for line in EVENT.splitlines() if not line.startswith(f"{head} =")]
    at = lines.index("[challenges.splits]") + 1
    text = "\n".join(lines[:at] + change.splitlines() + lines[at:])
    if message is None:  # the event as given: accepted
        assert parse_event(_event(tmp_path, text)).challenge("nodules-3d").splits is not None
        return
    with pytest.raises(EventFileError, match=message) as caught:
        parse_event(_event(tmp_path, text))
    assert caught.value.key == key


def test_a_set_the_splits_do_not_declare_is_refused(tmp_path: Path) -> None:
    text = EVENT.replace('truth = "set:validation"', 'truth = "set:final"')
    with pytest.raises(EventFileError, match="names set 'final', which \\[challenges.splits\\] "
                                             "does not declare; its sets: training, "
                                             "validation, test") as caught:
        parse_event(_event(tmp_path, text))
    assert caught.value.key == "challenges[0].truth"
    # Every kind with a truth writer takes its truth from a set; the others are refused.
    assert {"binary-probability", "regression", "segmentation-surface", "segmentation-3d",
            "detection", "nodule-task"} <= set(truth_from_set())
    assert all(final.truth_from_set(k) for k in truth_from_set())
    text = EVENT.replace('kind = "binary-probability"', 'kind = "segmentation-surface"')
    assert parse_event(_event(tmp_path, text)).challenge("nodules-3d").truth_set == "validation"


def test_a_question_without_splits_is_not_split(tmp_path: Path) -> None:
    lines = EVENT.split("[challenges.splits]")
    text = lines[0].replace('truth = "set:validation"\nrelease = "set:validation"\n', "")
    text = text.replace('kind = "binary-probability"', 'kind = "regression"')
    (tmp_path / "event").mkdir()
    (tmp_path / "event" / "edss.csv").write_text("id,value\n1,2.5\n2,4\n")
    text = text.replace('duration_minutes = 60', 'duration_minutes = 60\ntruth = "edss.csv"')
    challenge = parse_event(_event(tmp_path, text + "[[centers]]" + lines[1].split(
        "[[centers]]", 1)[1])).challenge("nodules-3d")
    with pytest.raises(NoSplitDeclared, match="add a \\[challenges.splits\\] table"):
        plan_of(challenge)


def test_an_exam_of_the_set_without_its_label_stops_the_truth(tmp_path: Path) -> None:
    challenge = parse_event(_event(tmp_path)).challenge("nodules-3d")
    rows = [final.ExamRow(4, None, "malignant"), final.ExamRow(2, None, "benign")]
    assert final.truth_csv(challenge, rows) == "id,label\n2,0\n4,1\n"
    with pytest.raises(SplitRefused, match="exam 7 of the set has no benign / malignant"):
        final.truth_csv(challenge, [*rows, final.ExamRow(7, None, None)])
