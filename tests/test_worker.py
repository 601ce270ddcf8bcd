"""Scoring in worker processes (server/worker.py): a scoring past its time limit, a scorer that
died between two submissions."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import psutil
import pytest

from server.keys import SCORING
from server.worker import ScoringProcess
from tests.helpers import EXAMPLE_DIR, AppServer, ServerProcess, scorers_of, wait_for
from tests.test_intake import SUBMISSIONS, start


def _scorers() -> set[int]:
    """The in-process servers' live scoring processes."""
    return {p.pid for p in scorers_of(os.getpid())}


def test_a_scoring_past_its_time_limit_is_marked_failed_and_the_queue_moves_on(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    """Each file goes to a scorer stopped by SIGSTOP, which can never answer however the
    machine schedules it: the server gives up at the limit, kills it, starts another, and
    the next file is handled by that one (stopped in its turn)."""
    before = _scorers()
    server = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=1,
                       config_overrides={"scoring_timeout_s": 0.5}).start()
    stopped: list[int] = []
    try:
        tokens = server.tokens()
        start(server, "nodules")
        # Its first scorer is ready once the slot asks for work under its claimant name (a
        # replacement is started, and waited for, before the timed-out file's result).
        wait_for(lambda: server.app[SCORING]._claimant, what="the scoring slot to start")
        csv = (SUBMISSIONS / "nodules-nodule-hunters.csv").read_bytes()
        for team in ("Lumbar Lab", "Nodule Hunters"):
            [scorer] = wait_for(lambda: found if len(
                found := _scorers() - before - set(stopped)) == 1 else None,
                what="the server's scorer")
            os.kill(scorer, signal.SIGSTOP)
            stopped.append(scorer)
            status, result = server.upload("nodules", tokens[team], "p.csv", csv, "?wait=60")
            assert status == 202 and result["status"] == "invalid", result
            assert [e["code"] for e in result["errors"]] == ["scoring_failed"]
            assert "longer than 0.5 s" in result["errors"][0]["message"]
        wait_for(lambda: not set(stopped) & _scorers(), what="the stopped scorers to be killed")
    finally:
        server.stop()
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow  # the scorers are children of a server process
def test_a_scorer_that_died_is_replaced_before_it_costs_a_submission(
        server_process: ServerProcess) -> None:
    server = server_process
    tokens = server.tokens()
    start(server, "nodules")
    assert server.process is not None
    scorers = wait_for(lambda: found if len(found := server.scorers()) == 2 else None,
                       what="the server's two scorers")
    for scorer in scorers:
        scorer.kill()  # a scorer dies (out of memory, a segfault in a decoder…)
    wait_for(lambda: not any(_running(p) for p in scorers), what="the scorers to die")
    csv = (SUBMISSIONS / "nodules-nodule-hunters.csv").read_bytes()
    for team in ("Lumbar Lab", "Nodule Hunters"):
        status, result = server.upload("nodules", tokens[team], "p.csv", csv, "?wait=60")
        assert result["status"] == "scored", result
    replaced = server.scorers()
    assert replaced and not {p.pid for p in replaced} & {p.pid for p in scorers}


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_scorer_loads_the_challenges_truths_before_its_first_file(tmp_path: Path) -> None:
    """A child decodes every challenge's truth at its start (a 3-D challenge's exams take
    seconds to read), says which it holds, and does so again when it is replaced; a truth it
    cannot read is left to the submission that needs it."""
    good = (("nodule-task", str(EXAMPLE_DIR / "truth" / "nodules-3d")),
            ("regression", str(EXAMPLE_DIR / "truth" / "edss.csv")))
    missing = ("binary-probability", str(tmp_path / "gone.csv"))
    scorer = ScoringProcess(truths=(*good, missing))
    try:
        assert scorer.loaded == list(good)
        job = {"kind": "nodule-task", "truth": good[0][1], "options": {"tolerance_mm": 1.0},
               "path": str(EXAMPLE_DIR / "submissions" / "nodules-3d-nodule-hunters.zip"),
               "name": "nodules-3d.zip", "hu_low": None, "hu_high": None}
        assert scorer.score(job, 300)["status"] == "scored"
        scorer.process.kill()
        scorer.process.join(10)
        scorer.loaded = []
        assert scorer.score(job, 300)["status"] == "scored"  # replaced, and loaded again
        assert scorer.loaded == list(good)
    finally:
        scorer.stop()


def test_a_scorer_forks_with_its_libraries_loaded_and_single_threaded() -> None:
    """Scorers fork from a fork server that imported server/scorer_preload.py: a new scorer
    holds numpy, SciPy and the evaluators before its first job, its numerical libraries run
    one thread (OpenBLAS would start one per core otherwise), and a replacement is forked from
    the same server, not imported again."""
    first = ScoringProcess()
    try:
        process = psutil.Process(first.process.pid)
        maps = " ".join(m.path for m in process.memory_maps())
        assert "_multiarray_umath" in maps and "scipy/ndimage" in maps, maps[:500]
        assert process.num_threads() == 1
        forkserver = process.parent()
        assert "multiprocessing.forkserver" in " ".join(forkserver.cmdline())
        first.process.kill()
        first.process.join(10)
        first.start()  # as score() does when the child has died
        assert psutil.Process(first.process.pid).parent().pid == forkserver.pid
    finally:
        first.stop()
