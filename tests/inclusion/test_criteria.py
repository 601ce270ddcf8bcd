"""The criteria parser: the seed's Table 1 reads as declared, and every mistake an organizer
can make is refused with the key named."""

from __future__ import annotations

import tomllib
from datetime import date
from typing import Any

import pytest

from server.inclusion.criteria import (
    Criteria,
    CriteriaError,
    Interval,
    describe,
    parse_criteria,
)
from server.inclusion.violation import Severity

WHERE = "challenges[1].inclusion.criteria"


def parse(text: str) -> Criteria:
    return parse_criteria(tomllib.loads(text), WHERE)


def test_table_1_reads_as_the_seed_says(criteria: dict[str, Criteria]) -> None:
    sarcopenia, nodules, ms = (criteria[k] for k in ("sarcopenia", "nodules",
                                                     "multiple-sclerosis"))
    assert (sarcopenia.modality, sarcopenia.dimension, sarcopenia.kernel) == ("CT", "2d", "soft")
    assert sarcopenia.slice_thickness == Interval(1.25, True, 7.0, True)
    assert sarcopenia.mask and sarcopenia.contrast == "any"
    assert nodules.slice_thickness == Interval(None, True, 1.25, False)
    assert nodules.kernel == "hard" and nodules.kernel_mismatch is Severity.WARNING
    assert nodules.nodules is not None
    assert nodules.nodules.count == Interval(1, True, 5, True)
    assert nodules.nodules.densities == {"solid", "mixed", "ground-glass"}
    assert nodules.nodules.malignant is not None
    assert nodules.nodules.malignant.text() == "volume > 100 mm³ or diameter > 6 mm"
    assert ms.sequence == "flair" and ms.acquisition == {"3d", "2d-axial"}
    fields = {f.name: f for f in ms.clinical}
    assert list(fields) == ["age", "sex", "exam_date", "edss_2y"]
    assert fields["edss_2y"].step == 0.5 and fields["sex"].choices == ("M", "F")
    assert fields["exam_date"].earliest == date(2000, 1, 1)


@pytest.mark.parametrize(("interval", "inside", "outside", "text"), [
    (Interval(None, True, 1.25, False), [0.5, 1.24], [1.25, 1.2500000476837, 1.2499999, 2.5],
     "< 1.25"),
    (Interval(1.25, True, 7, True), [1.25, 1.2499999, 5, 7.0], [1.24, 7.01], "1.25 to 7"),
    (Interval(1, False, 2, True), [1.5, 2], [1, 0.5], "> 1 and ≤ 2"),
    (Interval(18, True, None, True), [18, 90], [17.9], "≥ 18"),
])
def test_intervals_compare_at_a_hundredth_of_a_millimetre(
        interval: Interval, inside: list[float], outside: list[float], text: str) -> None:
    assert all(interval.contains(x) for x in inside)
    assert not any(interval.contains(x) for x in outside)
    assert interval.text() == text


BASE = 'modality = "CT"\ndimension = "3d"\n'


@pytest.mark.parametrize(("text", "key", "says"), [
    ('dimension = "3d"', "modality", "missing required key 'modality'"),
    ('modality = "MRI"\ndimension = "3d"', "modality",
     "modality must be one of 'CT', 'MR', got 'MRI'"),
    ('modality = "CT"', "dimension", "missing required key 'dimension'"),
    (BASE + "slice_thikness_mm = {below = 1.25}", "slice_thikness_mm",
     "unknown key 'slice_thikness_mm'; allowed: acquisition,"),
    (BASE + "slice_thickness_mm = {below = 1.25, max = 2}", "slice_thickness_mm.below",
     "give max (inclusive) or below (exclusive), not both"),
    (BASE + "slice_thickness_mm = {under = 1.25}", "slice_thickness_mm.under",
     "unknown key 'under'; allowed: above, below, max, min"),
    (BASE + "slice_thickness_mm = {}", "slice_thickness_mm",
     "slice_thickness_mm needs min or above, max or below"),
    (BASE + "slice_thickness_mm = {min = 7, max = 1.25}", "slice_thickness_mm",
     "the range ≥ 7 and ≤ 1.25 holds no value"),
    (BASE + 'slice_thickness_mm = {max = "7"}', "slice_thickness_mm.max",
     "max must be a number ≥ 0, got '7'"),
    (BASE + "slice_thickness_mm = 1.25", "slice_thickness_mm",
     "slice_thickness_mm must be a table, got 1.25"),
    (BASE + "min_slices = 1", "min_slices", "min_slices must be a whole number ≥ 2, got 1"),
    (BASE + "min_slices = 20.5", "min_slices", "must be a whole number ≥ 2, got 20.5"),
    ('modality = "CT"\ndimension = "2d"\nmin_slices = 20', "min_slices",
     'min_slices applies to a volume (dimension = "3d")'),
    (BASE + 'kernel = "sharp"', "kernel", "kernel must be one of 'soft', 'hard', 'any'"),
    (BASE + 'kernel_mismatch = "warn"', "kernel_mismatch",
     "kernel_mismatch must be one of 'violation', 'warning', got 'warn'"),
    ('modality = "MR"\ndimension = "3d"\nkernel = "soft"', "kernel",
     "kernel applies to CT (a reconstruction kernel)"),
    (BASE + 'sequence = "flair"', "sequence", "sequence applies to MR"),
    ('modality = "MR"\ndimension = "3d"\nsequence = "t2"', "sequence",
     "sequence must be one of 'flair', 'any', got 't2'"),
    ('modality = "MR"\ndimension = "3d"\nacquisition = ["3d", "axial"]', "acquisition",
     "acquisition 'axial' is not one of '3d', '2d', '2d-axial'"),
    ('modality = "MR"\ndimension = "3d"\nacquisition = "3d"', "acquisition",
     "acquisition must be a non-empty list of names, got '3d'"),
    (BASE + 'contrast = "with"', "contrast", "contrast must be one of 'required'"),
    (BASE + 'mask = "yes"', "mask", "mask must be true or false, got 'yes'"),
    (BASE + 'empty_mask = "allowed"', "empty_mask", "empty_mask applies with mask = true"),
    (BASE + 'kernels = {soft = ["FC43"], hard = ["fc43"]}', "kernels.hard",
     "kernel 'fc43' is both soft and hard"),
    (BASE + 'kernels = {sharp = ["FC43"]}', "kernels.sharp", "unknown key 'sharp'"),
    (BASE + "[nodules]\npositions = \"mm\"", "nodules.count", "missing required key 'count'"),
    (BASE + "[nodules]\ncount = {min = 1, max = 5.5}", "nodules.count.max",
     "max must be a whole number ≥ 0, got 5.5"),
    (BASE + "[nodules]\ncount = {min = 1}\nmalignant = {volume_mm3 = 100}",
     "nodules.malignant.volume_mm3", "unknown key 'volume_mm3'"),
    (BASE + '[nodules]\ncount = {min = 1}\npositions = "pixels"', "nodules.positions",
     "positions must be one of 'mm', 'voxel', got 'pixels'"),
    (BASE + '[nodules]\ncount = {min = 1}\ndensities = ["solid", "Solid"]',
     "nodules.densities", "densities names a value twice"),
    (BASE + "[clinical]", "clinical", "clinical declares no field"),
    (BASE + '[clinical]\nage = {min = 18}', "clinical.age.type",
     "missing required key 'type'"),
    (BASE + '[clinical]\nage = {type = "float"}', "clinical.age.type",
     "type must be one of 'number', 'integer', 'choice', 'date', got 'float'"),
    (BASE + '[clinical]\nsex = {type = "choice"}', "clinical.sex.choices",
     "a choice field needs choices = [...]"),
    (BASE + '[clinical]\nsex = {type = "choice", choices = ["M", "F"], max = 2}',
     "clinical.sex.max", "max does not apply to a choice field"),
    (BASE + '[clinical]\nedss = {type = "number", step = 0}', "clinical.edss.step",
     "step must be > 0"),
    (BASE + '[clinical]\nday = {type = "date", earliest = "2000-01-01"}',
     "clinical.day.earliest", "earliest must be a TOML date (2017-01-01, no quotes)"),
    (BASE + '[clinical]\nday = {type = "date", earliest = 2020-01-01, latest = 2019-01-01}',
     "clinical.day.latest", "latest (2019-01-01) is before earliest (2020-01-01)"),
    (BASE + '[clinical]\nage = {type = "integer", step = 1}', "clinical.age.step",
     "step does not apply to a integer field"),
    (BASE + '[clinical]\nage = {type = "number", optional = 1}', "clinical.age.optional",
     "optional must be true or false, got 1"),
])
def test_a_mistake_is_refused_naming_its_key(text: str, key: str, says: str) -> None:
    with pytest.raises(CriteriaError) as caught:
        parse(text)
    assert caught.value.key == f"{WHERE}.{key}"
    assert says in caught.value.detail
    assert str(caught.value).startswith(f"[{WHERE}.{key}] ")


def test_a_criteria_table_that_is_not_a_table_is_refused() -> None:
    value: Any = ["CT"]
    with pytest.raises(CriteriaError, match=r"must be a table"):
        parse_criteria(value, WHERE)


def test_defaults_check_nothing_they_were_not_asked_to() -> None:
    plain = parse(BASE)
    assert (plain.kernel, plain.contrast, plain.sequence, plain.acquisition) == (
        "any", "any", None, frozenset())
    assert plain.min_slices == 20 and plain.slice_thickness is None and not plain.mask
    extra = parse(BASE + 'kernels = {hard = ["FC43"], soft = ["Xyz1"]}')
    assert extra.extra_kernels == {"fc43": "hard", "xyz1": "soft"}
    masked = parse(BASE + 'mask = true\nempty_mask = "allowed"')
    assert masked.empty_mask == "allowed"


def test_the_criteria_as_a_center_reads_them(criteria: dict[str, Criteria]) -> None:
    assert describe(criteria["sarcopenia"]) == [
        "CT", "one slice (2-D)", "slice thickness 1.25 to 7 mm", "a soft reconstruction kernel",
        "with or without contrast injection", "a binary mask on the exam's grid"]
    assert describe(criteria["nodules"]) == [
        "CT", "a volume (3-D) of at least 20 slices", "slice thickness < 1.25 mm",
        "mostly a hard reconstruction kernel", "with or without contrast injection",
        "1 to 5 nodules, with their positions (density: ground-glass, mixed, solid)",
        "malignant: volume > 100 mm³ or diameter > 6 mm"]
    assert describe(criteria["multiple-sclerosis"]) == [
        "MR", "a volume (3-D) of at least 20 slices", "with or without contrast injection",
        "a FLAIR", "acquired in 3-D or in 2-D axial", "age: a number, 18 to 100",
        "sex: M or F", "exam_date: a date", "edss_2y: a number, 0 to 10, in steps of 0.5"]
