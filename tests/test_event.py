"""The event file: the example parses; every bad case is refused naming file, key and line."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from server.errors import EventFileError
from server.event import check_truth, parse_event
from tests.helpers import EXAMPLE_EVENT


def test_example_event_parses() -> None:
    event = parse_event(EXAMPLE_EVENT)
    assert [c.slug for c in event.challenges] == ["sarcopenia", "nodules", "edss", "nodules-3d"]
    assert [c.duration.total_seconds() for c in event.challenges] == [3600, 7200, 3600, 7200]
    assert event.challenge("nodules-3d").kind == "nodule-task"
    assert event.challenge("nodules-3d").options == {"tolerance_mm": 1.0}
    sarcopenia = event.challenge("sarcopenia")
    assert sarcopenia.kind == "segmentation-surface"
    assert sarcopenia.hu_window == (-29.0, 150.0)
    assert sarcopenia.truth == EXAMPLE_EVENT.parent / "truth" / "sarcopenia"
    assert event.challenge("edss").freeze_window == timedelta(minutes=10)
    assert event.challenge("nodules").counts == "last"
    assert event.challenge("nodules").upload_grace == timedelta(seconds=30)  # documented default
    assert [t.name for t in event.teams][:2] == ["Lumbar Lab", "Nodule Hunters"]


def edit(event_file: Path, old: str, new: str, count: int = 1) -> None:
    text = event_file.read_text()
    assert old in text, old
    event_file.write_text(text.replace(old, new, count))


def line_of(event_file: Path, needle: str, occurrence: int = 1) -> int:
    lines = [n for n, line in enumerate(event_file.read_text().splitlines(), 1) if needle in line]
    return lines[occurrence - 1]


def refused(event_file: Path) -> EventFileError:
    with pytest.raises(EventFileError) as info:
        check_truth(parse_event(event_file))
    error = info.value
    assert error.path == str(event_file.resolve())
    assert str(event_file.resolve()) in str(error)
    return error


def test_unknown_key_in_a_challenge(example_event: Path) -> None:
    edit(example_event, 'slug = "nodules"', 'slug = "nodules"\nduration_minute = 5')
    error = refused(example_event)
    assert error.key == "challenges[1].duration_minute"
    assert error.line == line_of(example_event, "duration_minute =")
    assert "unknown key 'duration_minute'" in str(error)
    assert f":{error.line}:" in str(error)


def test_unknown_top_level_table(example_event: Path) -> None:
    example_event.write_text(example_event.read_text() + "\n[scoring]\nfast = true\n")
    error = refused(example_event)
    assert "unknown key 'scoring'" in str(error)


def test_unknown_key_in_event_and_team(example_event: Path) -> None:
    edit(example_event, 'timezone = "Europe/Paris"', 'timezone = "Europe/Paris"\nvenue = "Paris"')
    error = refused(example_event)
    assert (error.key, error.line) == ("event.venue", line_of(example_event, "venue ="))


def test_unknown_key_in_team(example_event: Path) -> None:
    edit(example_event, 'name = "Nodule Hunters"', 'name = "Nodule Hunters"\nemail = "x@y"')
    error = refused(example_event)
    assert (error.key, error.line) == ("teams[1].email", line_of(example_event, "email ="))


def test_missing_truth_file(example_event: Path) -> None:
    edit(example_event, 'truth = "truth/edss.csv"', 'truth = "truth/edss-final.csv"')
    error = refused(example_event)
    assert error.key == "challenges[2].truth"
    assert error.line == line_of(example_event, "edss-final.csv")
    assert "'truth/edss-final.csv' not found" in str(error)


def test_truth_of_the_wrong_kind(example_event: Path) -> None:
    edit(example_event, 'truth = "truth/sarcopenia"', 'truth = "truth/nodules.csv"')
    error = refused(example_event)
    assert error.key == "challenges[0].truth"
    assert "must be a folder" in str(error)


def test_team_naming_an_unknown_challenge(example_event: Path) -> None:
    edit(example_event, 'challenges = ["nodules", "nodules-3d"]',
         'challenges = ["nodule", "nodules-3d"]')
    error = refused(example_event)
    assert error.key == "teams[1].challenges"
    assert error.line == line_of(example_event, '["nodule", ')
    assert "unknown challenge 'nodule'" in str(error)


def test_duplicate_slug(example_event: Path) -> None:
    edit(example_event, 'slug = "edss"', 'slug = "nodules"')
    error = refused(example_event)
    assert error.key == "challenges[2].slug"
    assert "used by two challenges" in str(error)


@pytest.mark.parametrize(("old", "new", "key", "message"), [
    ('kind = "regression"', 'kind = "classification"', "challenges[2].kind", "must be one of"),
    ("duration_minutes = 120", "duration_minutes = 0", "challenges[1].duration_minutes",
     "must be a number > 0"),
    ("duration_minutes = 120", 'duration_minutes = "2h"', "challenges[1].duration_minutes",
     "must be a number > 0"),
    ('slug = "edss"', 'slug = "EDSS 2019"', "challenges[2].slug", "may only use"),
    ('counts = "last"', 'counts = "first"', "challenges[0].counts", "must be one of"),
    ("max_submissions = 30", "max_submissions = 0", "challenges[0].max_submissions",
     "whole number >= 1"),
    ('leaderboard = "teams"', 'leaderboard = "everyone"', "challenges[2].leaderboard",
     "must be one of"),
    ("freeze_minutes = 10", "freeze_minutes = 90", "challenges[2].freeze_minutes",
     "longer than the challenge"),
    ("hu_window = [-29, 150]", "hu_window = [150, -29]", "challenges[0].hu_window",
     "low < high"),
    ("upload_grace_seconds = 30", "upload_grace_seconds = -1",
     "challenges[0].upload_grace_seconds", ">= 0"),
    ('timezone = "Europe/Paris"', 'timezone = "Paris"', "event.timezone", "unknown time zone"),
])
def test_bad_values(example_event: Path, old: str, new: str, key: str, message: str) -> None:
    edit(example_event, old, new)
    error = refused(example_event)
    assert error.key == key
    assert message in str(error)
    assert error.line == line_of(example_event, new.split(" =")[0] + " =",
                                 occurrence=1 + _earlier(example_event, new))


def _earlier(event_file: Path, new: str) -> int:
    # Which occurrence of the key is the edited one (keys repeat across challenges).
    key = new.split(" =")[0] + " ="
    lines = event_file.read_text().splitlines()
    edited = next(n for n, line in enumerate(lines) if line.strip() == new)
    return sum(1 for line in lines[:edited] if line.strip().startswith(key))


def test_hu_window_on_a_table_challenge(example_event: Path) -> None:
    edit(example_event, 'truth = "truth/edss.csv"', 'truth = "truth/edss.csv"\nhu_window = [0, 1]')
    error = refused(example_event)
    assert error.key == "challenges[2].hu_window"
    assert "segmentation-surface challenges only" in str(error)


def test_toml_syntax_error_gives_the_line(example_event: Path) -> None:
    edit(example_event, 'title = "Pulmonary', 'title = Pulmonary')
    error = refused(example_event)
    assert error.line == line_of(example_event, "title = Pulmonary")
    assert "invalid TOML" in str(error)


def test_missing_required_key(example_event: Path) -> None:
    edit(example_event, 'title = "Multiple sclerosis — EDSS at two years from MRI"\n', "")
    error = refused(example_event)
    assert error.key == "challenges[2]"
    assert "missing required key 'title'" in str(error)
    assert error.line == line_of(example_event, "[[challenges]]", occurrence=3)


def test_tokens_given_must_be_long_and_distinct(example_event: Path) -> None:
    text = example_event.read_text()
    example_event.write_text(text.replace(
        "[[challenges]]", '[access]\norganizer_token = "short"\n\n[[challenges]]', 1))
    error = refused(example_event)
    assert error.key == "access.organizer_token"
    assert "at least 16 characters" in str(error)

    token = "a-very-long-shared-token-0001"
    example_event.write_text(text.replace(
        "[[challenges]]", f'[access]\norganizer_token = "{token}"\n\n[[challenges]]', 1)
        .replace('name = "Nodule Hunters"', f'name = "Nodule Hunters"\ntoken = "{token}"'))
    error = refused(example_event)
    assert error.key == "teams[1].token"
    assert "already given to another role" in str(error)


def test_duplicate_team_name_ignoring_case(example_event: Path) -> None:
    edit(example_event, 'name = "Nodule Hunters"', 'name = "lumbar lab"')
    error = refused(example_event)
    assert error.key == "teams[1].name"


def test_missing_event_file(tmp_path: Path) -> None:
    error = refused(tmp_path / "nope.toml")
    assert "not found" in str(error)


def test_no_challenges(tmp_path: Path) -> None:
    path = tmp_path / "event.toml"
    path.write_text('[event]\nname = "Empty"\n')
    error = refused(path)
    assert re.search(r"at least one \[\[challenges\]\]", str(error))


def test_an_id_twice_in_the_truth(example_event: Path) -> None:
    truth = example_event.parent / "truth" / "edss.csv"
    truth.write_text(truth.read_text() + "MS003,4.0\n")
    error = refused(example_event)
    assert error.key == "challenges[2].truth"
    assert error.line == line_of(example_event, 'truth = "truth/edss.csv"')
    assert "MS003" in str(error)


def test_a_truth_with_a_single_class(example_event: Path) -> None:
    truth = example_event.parent / "truth" / "nodules.csv"
    truth.write_text("id,label\n" + "".join(f"N{i},0\n" for i in range(5)))
    error = refused(example_event)
    assert error.key == "challenges[1].truth"


def test_parsing_does_not_read_the_truth(example_event: Path) -> None:
    # Commands that do not score (tokens, export, check-release) must not pay for the truth.
    truth = example_event.parent / "truth" / "edss.csv"
    truth.write_text(truth.read_text() + "MS003,4.0\n")
    event = parse_event(example_event)
    assert event.challenge("edss").truth == truth.resolve()
    with pytest.raises(EventFileError, match="MS003"):
        check_truth(event)


SARCOPENIA_TRUTH = 'truth = "truth/sarcopenia"'
NODULES_TRUTH = 'truth = "truth/nodules.csv"'


def declare(event_file: Path, truth: str, ranking: str) -> None:
    edit(event_file, truth, f"{truth}\nranking = {ranking}")


@pytest.mark.parametrize(("truth", "ranking", "key", "message"), [
    (SARCOPENIA_TRUTH, '{scheme = "borda"}', "challenges[0].ranking.scheme",
     "scheme must be one of"),
    (SARCOPENIA_TRUTH, '{scheme = "sum-of-ranks", metrics = ["dice", "auc"]}',
     "challenges[0].ranking.metrics", "unknown metric 'auc' for this kind"),
    (SARCOPENIA_TRUTH, '{scheme = "sum-of-ranks", metrics = ["dice"], tie_break = "surface_mse"}',
     "challenges[0].ranking.tie_break", "must be one of the ranked metrics"),
    (NODULES_TRUTH, '{scheme = "test-then-rank", metrics = ["auc"]}',
     "challenges[1].ranking.metrics", "computed over the whole set of exams"),
    (SARCOPENIA_TRUTH, '{scheme = "test-then-rank", metrics = ["dice"], alpha = 1.0}',
     "challenges[0].ranking.alpha", "in (0, 1)"),
    (SARCOPENIA_TRUTH, '"sum-of-ranks"', "challenges[0].ranking", "must be a table"),
])
def test_ranking_refused(example_event: Path, truth: str, ranking: str, key: str,
                         message: str) -> None:
    declare(example_event, truth, ranking)
    error = refused(example_event)
    assert error.key == key and message in str(error)
    assert error.line == line_of(example_event, "ranking =")


def test_a_declared_ranking_is_kept_normalised(example_event: Path) -> None:
    declare(example_event, SARCOPENIA_TRUTH,
            '{scheme = "test-then-rank", metrics = ["dice"], missing = 0}')
    event = parse_event(example_event)
    assert event.challenge("sarcopenia").ranking == {
        "scheme": "test-then-rank", "metrics": ["dice"], "missing": {"dice": 0.0},
        "alpha": 0.05, "adjust": "none"}
    assert event.challenge("nodules").ranking is None   # its kind's rule
    from server import kinds
    kind = kinds.of(event.challenge("sarcopenia"))
    assert kind.ranking.scheme == "test-then-rank" and kind.needs_cases
    assert kind.format_json()["ranking"].startswith("number of teams significantly beaten")


def test_kind_options_reach_the_scorer_by_name(example_event: Path) -> None:
    from server.event import scoring_options
    sarcopenia = parse_event(example_event).challenge("sarcopenia")
    assert sarcopenia.options == {"hu_window": [-29.0, 150.0]}
    assert sarcopenia.scoring_options().hu_window == (-29.0, 150.0)
    assert scoring_options({}).hu_window is None
    with pytest.raises(TypeError):
        scoring_options({"no_such_option": 1})


def test_an_option_of_another_kind_is_refused(example_event: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from server import kinds
    monkeypatch.setenv(kinds.EXTRA_ENV, "tests.kinds.toy_count")
    kinds.discover()
    try:
        edit(example_event, SARCOPENIA_TRUTH, f"{SARCOPENIA_TRUTH}\nmax_errors = 3")
        error = refused(example_event)
        assert error.key == "challenges[0].max_errors"
        assert "applies to nodule-count challenges only" in str(error)
    finally:
        monkeypatch.delenv(kinds.EXTRA_ENV)
        kinds.discover()


def test_the_inclusion_tables_of_the_example(example_event: Path) -> None:
    event = parse_event(example_event)
    nodules = event.challenge("nodules-3d").inclusion
    assert nodules is not None and (nodules.target, nodules.wanted, nodules.keep) == (
        30, 33, ("A", "B", "C"))
    assert nodules.criteria.nodules.count.high == 5 and str(nodules.reading) == "double"
    assert event.challenge("nodules").inclusion is None
    assert [(c.name, c.ae_title) for c in event.centers][:2] == [("CHU de Lyon", "CHULYON"),
                                                                 ("CHU de Bordeaux", "CHUBDX")]
    assert event.reviewers[2].challenges == ("nodules-3d",)
    assert [c.email for c in event.centers] == [("imagerie@chu-lyon.example",), (), ()]


@pytest.mark.parametrize(("old", "new", "key", "needle", "message"), [
    ('dimension = "3d"\nmin_slices = 20\nslice_thickness_mm = { below = 1.25 }',
     'dimension = "3d"\nmin_slices = 20\nslice_thickness_mm = { below = 1.25, max = 2 }',
     "challenges[3].inclusion.criteria.slice_thickness_mm.below", "max = 2", "not both"),
    ("target = 30", "target = 0", "challenges[3].inclusion.target", "target = 0",
     "whole number"),
    ("target = 30", "target = 30\nreding = 'double'", "challenges[3].inclusion.reding",
     "reding", "unknown key"),
    ("count = { min = 1, max = 5 }", "count = { min = 1, max = 5 }\ncolour = 1",
     "challenges[3].inclusion.criteria.nodules.colour", "colour = 1", "colour"),
    ('name = "Hôpital Foch"\nchallenges = ["edss"]', 'name = "Hôpital Foch"\n'
     'challenges = ["nodules"]', "centers[2].challenges", 'challenges = ["nodules"]',
     "collects no exams"),
    ('ae_title = "CHUBDX"', 'ae_title = "CHULYON"', "centers[1].ae_title",
     'ae_title = "CHULYON"', "already 'CHU de Lyon'"),
    ('ae_title = "CHUBDX"', 'ae_title = "CHUBDX"\nemail = ["imaging@chu.example", "Jo"]',
     "centers[1].email", "email = [", "such as imaging@chu.example, got 'Jo'"),
    ('ae_title = "CHUBDX"', 'ae_title = "CHUBDX"\nemail = 3', "centers[1].email",
     "email = 3", "an address or a list"),
    ('name = "Dr Petit"', 'name = "dr martin"', "reviewers[2].name", 'name = "dr martin"',
     "used twice"),
])
def test_inclusion_refusals_name_the_key(example_event: Path, old: str, new: str, key: str,
                                         needle: str, message: str) -> None:
    edit(example_event, old, new)
    error = refused(example_event)
    assert error.key == key and message in str(error)
    assert error.line == line_of(example_event, needle, 2 if needle == 'ae_title = "CHULYON"'
                                 else 1)
