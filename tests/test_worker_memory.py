"""Each scoring child runs under an address-space limit (RLIMIT_AS): a file that needs more
memory than that is `invalid` `too_large`, and the same child scores the next file."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from server.worker import ScoringProcess
from tests.evaluators.factory import png_mask, table_csv, write_exam, write_zip
from tests.helpers import EXAMPLE_DIR, ServerProcess

pytestmark = pytest.mark.slow

MiB = 1024**2
NODULES = (EXAMPLE_DIR / "submissions" / "nodules-nodule-hunters.csv").read_bytes()
SHAPE = (4096, 4096)  # a large exam: its float64 mask takes 128 MiB, within the member's cap


def npy(mask: np.ndarray, dtype: str) -> bytes:
    out = io.BytesIO()
    np.save(out, mask.astype(dtype), allow_pickle=False)
    return out.getvalue()


@pytest.fixture(scope="module")
def large_exam(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A truth of one 4096 × 4096 exam, an honest uint8 mask zip and a float64 one."""
    root = tmp_path_factory.mktemp("large")
    truth = root / "truth"
    mask = np.zeros(SHAPE, dtype=bool)
    mask[1000:3000, 1200:2800] = True
    write_exam(truth / "images" / "big.dcm", np.zeros(SHAPE, dtype=np.int16), (0.5, 0.5))
    (truth / "masks").mkdir(parents=True)
    (truth / "masks" / "big.png").write_bytes(png_mask(mask))
    surfaces = table_csv({"big": float(mask.sum()) * 0.25}, header=("id", "surface_mm2"))
    honest = write_zip(root / "honest.zip", {"big.npy": npy(mask, "uint8"),
                                             "surfaces.csv": surfaces})
    wide = write_zip(root / "wide.zip", {"big.npy": npy(mask, "float64"),
                                         "surfaces.csv": surfaces})
    return truth, honest, wide


def job(truth: Path, submission: Path) -> dict[str, object]:
    return {"kind": "segmentation-surface", "truth": str(truth), "path": str(submission),
            "hu_low": None, "hu_high": None}


def test_a_file_needing_more_than_the_limit_is_too_large_and_the_next_is_scored(
        large_exam: tuple[Path, Path, Path]) -> None:
    truth, honest, wide = large_exam
    # What a scorer's address space is once it has loaded this truth and scored a file.
    probe = ScoringProcess(memory_mb=0)
    try:
        assert probe.score(job(truth, honest), 300)["status"] == "scored"
        loaded = psutil.Process(probe.process.pid).memory_info().vms
    finally:
        probe.stop()
    # Room for the honest file (about 100 MiB at its peak), not for the float64 one (two
    # copies of 128 MiB while it is read).
    limit_mb = loaded // MiB + 160
    scorer = ScoringProcess(memory_mb=limit_mb)
    try:
        pid = scorer.process.pid
        assert scorer.score(job(truth, honest), 300)["status"] == "scored"
        limits = psutil.Process(pid).rlimit(psutil.RLIMIT_AS)  # set before its first job
        assert limits == (limit_mb * MiB, limit_mb * MiB)
        result = scorer.score(job(truth, wide), 300)
        assert result["status"] == "invalid", result
        assert [e["code"] for e in result["errors"]] == ["too_large"]
        assert "more memory to read than a scorer may use" in result["errors"][0]["message"]
        assert scorer.score(job(truth, honest), 300)["status"] == "scored"
        assert scorer.process.pid == pid  # the same child: it was never at risk
    finally:
        scorer.stop()


def test_podium_serve_sets_the_limit_on_its_scorers(example_event: Path, database_url: str,
                                                    tmp_path: Path) -> None:
    server = ServerProcess(example_event, tmp_path / "data", database_url,
                           extra_args=["--scoring-memory-mb", "3000",
                                       "--scoring-workers", "2"]).start()
    try:
        assert server.process is not None
        tokens = server.tokens()
        server.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
        status, result = server.upload("nodules", tokens["Lumbar Lab"], "p.csv", NODULES,
                                       "?wait=60")
        assert result["status"] == "scored", result  # the scorers are past their start-up
        scorers = server.scorers()
        assert len(scorers) == 2
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
                s.rlimit(psutil.RLIMIT_AS)[0] == psutil.RLIM_INFINITY for s in scorers):
            time.sleep(0.1)  # the idle one sets it as it starts, before its first job
        for scorer in scorers:
            assert scorer.rlimit(psutil.RLIMIT_AS) == (3000 * MiB, 3000 * MiB)
        assert psutil.Process(server.process.pid).rlimit(psutil.RLIMIT_AS)[0] == \
            psutil.RLIM_INFINITY  # the server itself is not limited
    finally:
        server.stop()
