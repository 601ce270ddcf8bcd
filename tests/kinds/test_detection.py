"""The detection kind end to end (server/kinds/detection.py): a truth file and candidates
tables written by pandas, scored through `evaluate` as the server and `podium score` do; the
board, the ranking, the FROC plot and the rank bootstrap from the stored details."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from server import kinds
from server.deliberation.stability import rank_stability
from server.evaluators import evaluate
from server.ranking import ByMetric

SVG = "{http://www.w3.org/2000/svg}"
# Six exams, two without a nodule; LPS millimetres as ITK gives them.
NODULES = [("LIDC-01", -101.5, 42.25, -210.0, 8.0), ("LIDC-01", 60.0, -10.0, -150.5, 12.0),
           ("LIDC-02", 12.0, 80.0, -300.0, 5.0), ("LIDC-03", None, None, None, None),
           ("LIDC-04", -30.0, -30.0, -99.0, 22.0), ("LIDC-05", None, None, None, None),
           ("LIDC-06", 0.0, 0.0, 0.0, 4.0)]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The truth and three teams' candidates: one finds every nodule first, one finds half
    with false positives ranked above, one sends an .xlsx with LUNA16's column names."""
    folder = tmp_path_factory.mktemp("detection-day")
    truth = folder / "nodules.csv"
    pd.DataFrame(NODULES, columns=["id", "x", "y", "z", "diameter_mm"]).to_csv(truth,
                                                                              index=False)
    rng = np.random.default_rng(16)
    found = [n for n in NODULES if n[1] is not None]
    exams = sorted({n[0] for n in NODULES})

    def near(n: tuple[object, ...], p: float) -> tuple[object, ...]:
        return (n[0], float(n[1]) + 0.5, float(n[2]) - 0.5, float(n[3]), p)  # type: ignore[arg-type]

    def noise(k: int, top: float) -> list[tuple[object, ...]]:
        return [(exams[int(rng.integers(len(exams)))], *(rng.uniform(-400, 400, 3) + 1000),
                 float(rng.uniform(0, top))) for _ in range(k)]

    files = {"truth": truth, "Alpha": folder / "alpha.csv", "Bravo": folder / "bravo.csv",
             "Charlie": folder / "charlie.xlsx"}
    columns = ["id", "x", "y", "z", "probability"]
    pd.DataFrame([near(n, 0.95 - 0.01 * k) for k, n in enumerate(found)] + noise(12, 0.5),
                 columns=columns).to_csv(files["Alpha"], index=False)
    pd.DataFrame([near(n, 0.4) for n in found[:2]] + noise(12, 0.9),
                 columns=columns).to_csv(files["Bravo"], index=False, sep=";", decimal=",")
    pd.DataFrame([near(n, 0.7) for n in found[1:]] + noise(6, 0.75),
                 columns=["seriesuid", "coordX", "coordY", "coordZ", "probability"]
                 ).to_excel(files["Charlie"], index=False, engine="openpyxl")
    return files


def test_the_kind_declares_its_ranking_board_and_format() -> None:
    kind = kinds.get("detection")
    assert kind.ranking == ByMetric("froc_cpm", True) and kind.primary.key == "froc_cpm"
    assert kind.board[0] == "froc_cpm" and kind.cases is None
    assert [m.key for m in kind.metrics][:8] == [
        "froc_cpm", "sens_fp_1_8", "sens_fp_1_4", "sens_fp_1_2", "sens_fp_1", "sens_fp_2",
        "sens_fp_4", "sens_fp_8"]
    described = kind.format_json()
    assert described["files"] == [".csv", ".xlsx"]
    assert "id,x,y,z,probability" in described["description"]
    assert "LPS" in described["description"] and "1000" in described["description"]
    assert described["ranking"] == "FROC CPM, higher wins"


def test_a_day_of_detection_scored_plotted_and_bootstrapped(day: dict[str, Path]) -> None:
    results = {team: evaluate("detection", day["truth"], day[team])
               for team in ("Alpha", "Bravo", "Charlie")}
    for team, result in results.items():
        assert result.status == "scored", (team, result.errors)
        assert all(type(v) is float for v in result.metrics.values())
        json.dumps(result.to_json(details=True))  # what the worker stores
    alpha, bravo, charlie = (results[t].metrics for t in ("Alpha", "Bravo", "Charlie"))
    # Alpha ranks its five hits above everything: sensitivity 1 before any false positive.
    assert alpha["froc_cpm"] == 1.0 and alpha["sensitivity_max"] == 1.0
    assert alpha["fp_per_exam_max"] == pytest.approx(12 / 6)
    assert bravo["sensitivity_max"] == pytest.approx(2 / 5)
    assert charlie["sensitivity_max"] == pytest.approx(4 / 5)
    assert alpha["froc_cpm"] > charlie["froc_cpm"] > bravo["froc_cpm"] > 0
    kind = kinds.get("detection")
    details = {t: r.details_json() for t, r in results.items()}
    assert all(d is not None and d["ids"] == [f"LIDC-0{k}" for k in range(1, 7)]
               for d in details.values())
    plots = kind.plots(details, {"Alpha": "#0072B2", "Bravo": "#D55E00"})  # type: ignore[misc]
    root = ET.fromstring(plots["froc"])
    teams = [g.get("data-team") for g in root.iter(f"{SVG}g") if g.get("class") == "series"]
    assert teams == ["Alpha", "Bravo", "Charlie"]
    stability = rank_stability(kind, details, resamples=200)  # type: ignore[arg-type]
    assert set(stability) == {"Alpha", "Bravo", "Charlie"}
    assert all(0 <= share <= 1 for share in stability.values())


def test_a_bad_candidates_file_is_invalid_with_every_problem(day: dict[str, Path],
                                                              tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,x,y,z,probability\nLIDC-01,1,2,3,2\nLIDC-99,1,2,3,0.5\n"
                   "LIDC-02,1,inf,3,0.5\n")
    result = evaluate("detection", day["truth"], bad, name="notre fichier.csv")
    assert result.status == "invalid"
    assert sorted(p.code for p in result.errors) == ["not_finite", "out_of_range",
                                                     "unknown_id"]
    assert all(p.message.startswith("notre fichier.csv: ") for p in result.errors)
    gone = evaluate("detection", day["truth"], tmp_path / "nothing.csv")
    assert [p.code for p in gone.errors] == ["unreadable"]
