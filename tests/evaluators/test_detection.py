"""detection (server/evaluators/detection.py): the nodules truth, candidates tables as real
tools write them, the hit rule, a FROC and its CPM computed by hand, the rank bootstrap."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from server.evaluators import ScoringOptions
from server.evaluators.detection import (
    FP_RATES,
    DetectionTruth,
    details_froc,
    detection_truth,
    froc,
    froc_metrics,
    match_exam,
    read_candidates,
    resampled_cpm,
    score_candidate_bytes,
    score_candidates,
    sensitivity_at,
)
from server.evaluators.result import Invalid
from server.evaluators.truth import TruthError, clear_cache

# Four exams. 001: nodules N1 (radius 5) and N2 (radius 3); 002: N3 (radius 4); 003: none;
# 004: N4 (radius 10), which no candidate finds. Four nodules, four exams.
TRUTH = """id,x,y,z,diameter_mm
001,0,0,0,10
001,40,0,0,6
002,0,0,0,8
003,,,,
004,-50,20,10,20
"""
# c1 hits N1 (distance √3) at 0.9; c2 hits N1 too, at 0.6: only the higher counts, c2 is
# neither a TP nor an FP. c3 is on N2's sphere (distance 3 = radius: a hit) at 0.4. c4 hits
# nothing: FP at 0.4 (tied with c3). c5 is 4.01 mm from N3 (radius 4): FP at 0.35. c6 hits N3
# at 0.3. c7, c8 in the exam without nodules: FPs at 0.4 and 0.05.
CANDIDATES = [
    ("001", 1.0, 1.0, 1.0, 0.9),     # c1
    ("001", 0.0, 4.9, 0.0, 0.6),     # c2
    ("001", 40.0, 0.0, 3.0, 0.4),    # c3
    ("001", 100.0, 0.0, 0.0, 0.4),   # c4
    ("002", 0.0, 0.0, 4.01, 0.35),   # c5
    ("002", 0.0, 0.0, 0.0, 0.3),     # c6
    ("003", 0.0, 0.0, 0.0, 0.4),     # c7
    ("003", 5.0, 5.0, 5.0, 0.05),    # c8
]
# TPs: 0.9 (N1), 0.4 (N2), 0.3 (N3); FPs: 0.4, 0.4, 0.35, 0.05; 4 exams, 4 nodules.
# Thresholds and points (FP per exam, sensitivity):
#   origin          (0,    0)
#   t = 0.9:  1 TP  (0,    0.25)
#   t = 0.4:  2 TP, 2 FP (c3 ties c4 and c7: one diagonal step)  (0.5, 0.5)
#   t = 0.35: 2 TP, 3 FP  (0.75, 0.5)
#   t = 0.3:  3 TP, 3 FP  (0.75, 0.75)
#   t = 0.05: 3 TP, 4 FP  (1.0,  0.75)
# At 1/8: on the diagonal from (0, .25) to (.5, .5): .25 + .25 × (.125 / .5) = .3125
# At 1/4: .25 + .25 × (.25 / .5) = .375
# At 1/2: the point (.5, .5): .5
# At 1: the last point (1, .75): .75; at 2, 4, 8: past the curve, flat: .75
EXPECTED_CURVE = ([0, 0, 0.5, 0.75, 0.75, 1.0], [0, 0.25, 0.5, 0.5, 0.75, 0.75])
EXPECTED_AT = [0.3125, 0.375, 0.5, 0.75, 0.75, 0.75, 0.75]
EXPECTED_CPM = (0.3125 + 0.375 + 0.5 + 4 * 0.75) / 7          # 4.1875 / 7 = 0.598214…
HEADER = ["id", "x", "y", "z", "probability"]


@pytest.fixture(scope="module")
def truth_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("detection") / "nodules.csv"
    path.write_text(TRUTH)
    return path


@pytest.fixture(scope="module")
def truth(truth_path: Path) -> DetectionTruth:
    return detection_truth(truth_path)


def frame(rows: list[tuple[object, ...]] = CANDIDATES) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=HEADER)


def csv_bytes(df: pd.DataFrame, **options: object) -> bytes:
    buffer = io.StringIO()
    df.to_csv(buffer, **{"index": False, **options})  # type: ignore[arg-type]
    return buffer.getvalue().encode(str(options.get("encoding", "utf-8")))


def problems(truth: DetectionTruth, data: bytes, name: str = "candidates.csv",
             **limits: int) -> list[tuple[str, str]]:
    with pytest.raises(Invalid) as caught:
        read_candidates(data, name, truth, **limits)
    return [(p.code, p.message) for p in caught.value.problems]


def test_the_truth_lists_every_exam_with_its_nodules(truth: DetectionTruth) -> None:
    assert truth.ids == ("001", "002", "003", "004")
    assert truth.nodule_count == 4 and len(truth.nodules["003"]) == 0
    np.testing.assert_array_equal(truth.nodules["001"], [[0, 0, 0, 10], [40, 0, 0, 6]])


def test_the_hand_computed_froc(truth: DetectionTruth) -> None:
    candidates = read_candidates(csv_bytes(frame()), "candidates.csv", truth)
    score = score_candidates(truth, candidates)
    assert score.details["ids"] == ["001", "002", "003", "004"]
    assert score.details["nodules"] == [2, 1, 0, 1]
    assert score.details["hits"] == [[0.9, 0.4], [0.3], [], []]
    assert score.details["false_positives"] == [[0.4], [0.35], [0.4, 0.05], []]
    curve = froc(np.array([0.9, 0.4, 0.3]), np.array([0.4, 0.35, 0.4, 0.05]), 4, 4)
    np.testing.assert_allclose(curve.fp_rates, EXPECTED_CURVE[0], atol=1e-12)
    np.testing.assert_allclose(curve.sensitivities, EXPECTED_CURVE[1], atol=1e-12)
    metrics = score.metrics
    assert metrics["froc_cpm"] == pytest.approx(EXPECTED_CPM, abs=1e-12)
    assert [metrics[k] for k in ("sens_fp_1_8", "sens_fp_1_4", "sens_fp_1_2", "sens_fp_1",
                                 "sens_fp_2", "sens_fp_4", "sens_fp_8")] == pytest.approx(
        EXPECTED_AT, abs=1e-12)
    assert metrics["sensitivity_max"] == pytest.approx(0.75)
    assert metrics["fp_per_exam_max"] == pytest.approx(1.0)
    assert score.warnings == ()


def test_a_nodule_hit_twice_counts_once_and_a_candidate_may_find_two() -> None:
    nodules = np.array([[0, 0, 0, 10], [6, 0, 0, 10]], dtype=float)  # overlapping spheres
    points = np.array([[3, 0, 0], [0, 0, 0], [0, 0, 6], [0, 0, 5.000001]], dtype=float)
    tp, fp = match_exam(nodules, points, np.array([0.2, 0.7, 0.5, 0.9]))
    # (3,0,0) is in both; (0,0,0) in the first only; (0,0,6) in neither (6 > 5); (0,0,5.000001)
    # just outside the first's radius and 7.8 mm from the second.
    assert tp.tolist() == [0.7, 0.2] and fp.tolist() == [0.5, 0.9]
    tp, fp = match_exam(nodules, np.zeros((0, 3)), np.zeros(0))
    assert tp.size == 0 and fp.size == 0


def test_cpm_reads_the_curve_between_and_beyond_its_points() -> None:
    # (0,0) → (0,.2) a vertical step → (1,.6) → (3,.8), then nothing: the curve stops at 3.
    f, s = np.array([0, 0, 1, 3.0]), np.array([0, 0.2, 0.6, 0.8])
    rates = (0.0, 0.125, 0.5, 1.0, 2.0, 3.0, 8.0)
    # 0: the top of the step, .2; 1/8: .2 + .4 × .125 = .25; 1/2: .2 + .4 × .5 = .4;
    # 1: .6; 2: .6 + .2 × (1 / 2) = .7; 3: .8; 8: past the last point, .8.
    expected = [0.2, 0.25, 0.4, 0.6, 0.7, 0.8, 0.8]
    assert sensitivity_at(f, s, rates).tolist() == pytest.approx(expected, abs=1e-12)
    # Where no two points share a rate, this is numpy's linear interpolation.
    f2, s2 = np.array([0, 0.3, 1.1, 2.5]), np.array([0, 0.1, 0.45, 0.5])
    assert sensitivity_at(f2, s2, FP_RATES).tolist() == pytest.approx(
        np.interp(FP_RATES, f2, s2).tolist(), abs=1e-12)
    # A system without false positives: every rate reads its final sensitivity.
    assert sensitivity_at(np.array([0.0, 0.0]), np.array([0, 0.5]), FP_RATES).tolist() == \
        [0.5] * 7
    # A stack of curves is read row by row.
    stacked = sensitivity_at(np.stack([f, f]), np.stack([s, s / 2]), (2.0,))
    assert stacked[:, 0].tolist() == pytest.approx([0.7, 0.35])


@pytest.mark.parametrize("writer", ["csv", "french", "openpyxl", "xlsxwriter", "luna16",
                                    "no-header", "reordered"])
def test_candidates_written_by_real_tools_score_the_same(
        truth: DetectionTruth, tmp_path: Path, writer: str) -> None:
    df = frame()
    name = "candidates.csv"
    if writer == "csv":
        data = csv_bytes(df)
    elif writer == "french":  # French Excel: semicolons, decimal commas, Windows-1252, BOM-less
        data = csv_bytes(df, sep=";", decimal=",", encoding="cp1252")
        assert b";0,9" in data
    elif writer in ("openpyxl", "xlsxwriter"):
        name = "candidates.xlsx"
        numeric = df.assign(id=df["id"].astype(int))   # Excel keeps 001 as the number 1
        numeric.to_excel(tmp_path / name, index=False, engine=writer)
        data = (tmp_path / name).read_bytes()
    elif writer == "luna16":
        data = csv_bytes(df.rename(columns={"id": "seriesuid", "x": "coordX", "y": "coordY",
                                            "z": "coordZ"}))
    elif writer == "no-header":
        data = csv_bytes(df, header=False)
    else:
        data = csv_bytes(df[["probability", "z", "id", "y", "x"]])
    result = score_candidate_bytes(truth, data, name, ScoringOptions())
    assert result.status == "scored", result.errors
    assert result.metrics["froc_cpm"] == pytest.approx(EXPECTED_CPM, abs=1e-12)


def test_every_problem_of_a_candidates_table_is_listed(truth: DetectionTruth) -> None:
    rows = [*CANDIDATES,
            ("009", 1, 2, 3, 0.5),                     # not an exam of the challenge
            ("001", "NaN", 0, 0, 0.5),                 # a coordinate that is not finite
            ("002", 0, 0, 0, 1.5), ("003", 0, 0, 0, -0.1),  # probabilities outside [0, 1]
            ("004", "abc", 0, 0, 0.5),                 # not a number
            ("004", 1, 2, None, 0.5),                  # no z
            ("", 1, 2, 3, 0.5)]                        # no id
    found = problems(truth, csv_bytes(frame(rows)))
    codes = [code for code, _ in found]
    assert sorted(codes) == sorted(["unknown_id", "not_finite", "out_of_range",
                                    "not_a_number", "missing_value", "empty_id"])
    messages = dict(found)
    assert messages["unknown_id"] == "candidates.csv: 1 id not in this challenge: 009 (row 10)"
    # Two rows with the same problem are one line naming both.
    assert messages["out_of_range"] == ("candidates.csv: probability is outside [0, 1] in 2 "
                                        "rows: row 12 (id 002): 1.5, row 13 (id 003): -0.1")
    assert messages["not_finite"] == "candidates.csv: x is not finite in row 11 (id 001): 'NaN'"
    assert messages["missing_value"] == "candidates.csv: no z in row 15 (id 004)"


def test_a_missing_column_an_index_and_too_many_candidates_are_refused(
        truth: DetectionTruth) -> None:
    assert problems(truth, csv_bytes(frame().drop(columns="probability"))) == [(
        "missing_column", "candidates.csv: no column probability in the header (id, x, y, z); "
        "the columns are id,x,y,z,probability")]
    (code, message), = problems(truth, csv_bytes(frame(), index=True))
    assert code == "too_many_columns" and "index=False" in message
    (code, message), = problems(truth, csv_bytes(frame(), header=False).replace(
        b"0.9\n", b"0.9,7\n", 1))
    assert code == "too_many_columns" and "row 1" in message
    (code, message), = problems(truth, csv_bytes(frame()), max_candidates=3)
    assert code == "too_many_candidates"
    assert message == ("candidates.csv: 1 exam has more than 3 candidates: 001 (4); keep each "
                       "exam's 3 most probable")
    (code, _), = problems(truth, b"")
    assert code == "empty"
    (code, _), = problems(truth, b"id x y z probability\n001 1 2 3 0.5\n")
    assert code == "unsupported_separator"


def test_a_header_alone_is_a_system_that_found_nothing(truth: DetectionTruth) -> None:
    result = score_candidate_bytes(truth, b"id,x,y,z,probability\n", "none.csv",
                                   ScoringOptions())
    assert result.status == "scored" and result.metrics["froc_cpm"] == 0.0
    assert [w.code for w in result.warnings] == ["no_candidates"]
    constant = score_candidate_bytes(
        truth, csv_bytes(frame([(i, x, y, z, 0.5) for i, x, y, z, _ in CANDIDATES])),
        "c.csv", ScoringOptions())
    assert [w.code for w in constant.warnings] == ["constant_predictions"]


@pytest.mark.parametrize(("text", "expected"), [
    ("id,x,y,z,diameter_mm\n001,0,0,0,\n", "row 2: diameter_mm '' of id 001 is not a finite"),
    ("id,x,y,z,diameter_mm\n001,0,0,0,0\n", "row 2: diameter_mm 0 of id 001 is not above 0"),
    ("id,x,y,z,diameter_mm\n001,inf,0,0,5\n", "row 2: x 'inf' of id 001 is not a finite"),
    ("id,x,y,z,diameter_mm\n001,0,0,0,5\n001,,,,\n", "row 3: exam 001 is listed without a "
                                                      "nodule, but row 2 gives it one"),
    ("id,x,y,z,diameter_mm\n001,0,0,0,5\n001,0,0,0,5\n", "row 3: repeats row 2"),
    ("id,x,y,z,diameter_mm\n001,,,,\n", "no exam has a nodule"),
    ("id,x,y,z,diameter_mm\n,0,0,0,5\n", "row 2: empty id"),
    ("id,x,y,z\n001,0,0,0\n", "no column diameter_mm in the header"),
    ("id,x,y,z,diameter_mm\n", "no exam;"),
])
def test_a_bad_truth_is_refused_naming_the_file_and_row(tmp_path: Path, text: str,
                                                        expected: str) -> None:
    path = tmp_path / "nodules.csv"
    path.write_text(text)
    clear_cache()
    with pytest.raises(TruthError) as caught:
        detection_truth(path)
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_the_bootstrap_draws_exams_with_their_nodules_and_false_positives(
        truth: DetectionTruth) -> None:
    details = score_candidates(
        truth, read_candidates(csv_bytes(frame()), "c.csv", truth)).details
    draws = np.array([[0, 1, 2, 3],     # the exams themselves: the full CPM
                      [0, 0, 2, 3],     # 001 twice, 003, 004
                      [2, 2, 2, 2]])    # only the exam without a nodule
    # [0, 0, 2, 3]: 5 nodules; TPs 0.9 ×2, 0.4 ×2; FPs 0.4 ×2 (c4), 0.4 (c7), 0.05; 4 exams.
    # Points: (0, 0) → t 0.9: (0, 2/5) → t 0.4: (3/4, 4/5) → t 0.05: (1, 4/5).
    # 1/8: 2/5 + 2/5 × (1/8)/(3/4) = 7/15; 1/4: 8/15; 1/2: 10/15; 1 to 8: 4/5.
    # CPM = (7/15 + 8/15 + 10/15 + 4 × 4/5) / 7 = (25/15 + 48/15) / 7 = 73/105.
    cpm = resampled_cpm(details, draws)
    assert cpm[0] == pytest.approx(EXPECTED_CPM, abs=1e-12)
    assert cpm[1] == pytest.approx(73 / 105, abs=1e-12)
    assert np.isnan(cpm[2])
    # Every draw agrees with scoring the drawn exams' details through every threshold.
    rng = np.random.default_rng(5)
    for draw in rng.integers(0, 4, size=(30, 4)):
        drawn = {"ids": [details["ids"][k] for k in draw],
                 **{key: [details[key][k] for k in draw]
                    for key in ("nodules", "hits", "false_positives")}}
        expected = (froc_metrics(details_froc(drawn))["froc_cpm"]
                    if sum(drawn["nodules"]) else np.nan)
        np.testing.assert_allclose(resampled_cpm(details, draw[None, :]), [expected],
                                   atol=1e-12)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "cp1252"])
def test_candidates_in_every_encoding_a_spreadsheet_writes(truth: DetectionTruth,
                                                           encoding: str) -> None:
    """Excel's "CSV UTF-8" (BOM), "Unicode text" (UTF-16, tabs) and the ANSI code page."""
    sep = "\t" if encoding == "utf-16" else ";"
    data = csv_bytes(frame(), sep=sep, decimal=",", encoding=encoding)
    result = score_candidate_bytes(truth, data, "candidats.txt", ScoringOptions())
    assert result.status == "scored", result.errors
    assert result.metrics["froc_cpm"] == pytest.approx(EXPECTED_CPM, abs=1e-12)


def test_the_bootstrap_agrees_with_the_full_curve_on_random_systems() -> None:
    """Random exams with many false positives and rounded (tied) probabilities: the
    bootstrap's few points give the CPM of every threshold's curve on each draw."""
    rng = np.random.default_rng(11)
    for _ in range(5):
        n = int(rng.integers(3, 12))
        nodules = rng.integers(0, 4, n).tolist()
        details = {"ids": [str(k) for k in range(n)], "nodules": nodules,
                   "hits": [np.round(rng.random(int(rng.integers(0, c + 1))), 1).tolist()
                            for c in nodules],
                   "false_positives": [np.round(rng.random(int(rng.integers(0, 30))), 1)
                                       .tolist() for _ in range(n)]}
        draws = rng.integers(0, n, size=(20, n))
        got = resampled_cpm(details, draws)
        for draw, value in zip(draws, got, strict=True):
            drawn = {key: [details[key][k] for k in draw] for key in details}
            if sum(drawn["nodules"]):
                assert value == pytest.approx(froc_metrics(details_froc(drawn))["froc_cpm"],
                                              abs=1e-12)
            else:
                assert np.isnan(value)


def test_a_combined_challenge_puts_the_nodules_on_its_own_exams(truth: DetectionTruth) -> None:
    from server.evaluators.detection import on_exams

    placed = on_exams(truth, ["004", "001", "002", "003", "005"])
    assert placed.ids == ("004", "001", "002", "003", "005")
    assert len(placed.nodules["005"]) == 0 and placed.nodule_count == 4
    assert placed.index.find("5") == "005"
    with pytest.raises(TruthError, match="nodules of 1 exam that the challenge does not "
                                         "have: 004"):
        on_exams(truth, ["001", "002", "003"])


def test_candidates_outside_their_exams_volume_are_a_warning(truth: DetectionTruth) -> None:
    """Voxel indices given for millimetres: truth-free, from the exams' geometry alone."""
    volumes = {i: (np.array([-200.0, -200, -300]), np.array([200.0, 200, 300]))
               for i in truth.ids}
    candidates = read_candidates(csv_bytes(frame()), "c.csv", truth)
    assert score_candidates(truth, candidates, volumes).warnings == ()
    voxels = frame([(i, x + 250, y + 250, z, p) for i, x, y, z, p in CANDIDATES])
    (warning,) = score_candidates(
        truth, read_candidates(csv_bytes(voxels), "c.csv", truth), volumes).warnings
    assert warning.code == "outside_exam"
    assert warning.message.startswith("c.csv: 8 candidates lie outside their exam's volume, "
                                      "so they find no nodule: 001 (4), 002 (2), 003 (2).")


def test_a_candidate_on_an_irrelevant_finding_is_ignored(tmp_path: Path) -> None:
    """LUNA16's irrelevant findings: counted in no sensitivity, and a candidate on one (and on
    no nodule) is neither a true nor a false positive."""
    path = tmp_path / "nodules.csv"
    path.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm,excluded\n"
                    "A,0,0,0,10,0\nA,30,0,0,4,1\nB,,,,,\nC,5,5,5,6,1\n")
    clear_cache()
    truth = detection_truth(path)
    assert truth.ids == ("A", "B", "C") and truth.nodule_count == 1
    np.testing.assert_array_equal(truth.irrelevant["C"], [[5, 5, 5, 6]])
    rows = [("A", 0, 0, 1, 0.9),      # the nodule: TP 0.9
            ("A", 30, 0, 1, 0.95),    # on the irrelevant finding of A: ignored
            ("C", 5, 5, 5, 0.99),     # on C's irrelevant finding: ignored
            ("B", 0, 0, 0, 0.5)]      # an FP
    score = score_candidates(truth, read_candidates(csv_bytes(frame(rows)), "c.csv", truth))
    assert score.details["hits"] == [[0.9], [], []]
    assert score.details["false_positives"] == [[], [0.5], []]
    # (0, 0) → t 0.9: (0, 1) → t 0.5: (1/3, 1): every sensitivity 1.
    assert score.metrics["froc_cpm"] == 1.0
    # Without a header, the sixth column is the flag.
    path.write_text("A,0,0,0,10,\nA,30,0,0,4,1\n")
    clear_cache()
    assert detection_truth(path).nodule_count == 1
    path.write_text("A,0,0,0,10,yes\n")
    clear_cache()
    with pytest.raises(TruthError, match="row 1: irrelevant 'yes' of id A is not 0 or 1"):
        detection_truth(path)
    # A candidate inside both a nodule and an irrelevant finding finds the nodule.
    nodules, other = np.array([[0.0, 0, 0, 10]]), np.array([[2.0, 0, 0, 10]])
    tp, fp = match_exam(nodules, np.array([[1.0, 0, 0], [6.0, 0, 0]]), np.array([0.3, 0.2]),
                        other)
    assert tp.tolist() == [0.3] and fp.size == 0
