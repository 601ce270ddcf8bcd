"""Scoring in worker processes, fed from the queue kept in PostgreSQL.

Each server process runs a few scoring slots; each slot owns one child process (forked from a
fork server started fresh, which shares no state with the event loop and has the numerical
libraries loaded once: server/scorer_preload.py) and scores one submission at a time in it.
A submission that crashes its worker or runs past the time limit is marked `invalid` with
`scoring_failed`, the child is replaced, and the queue moves on. Each child runs under an
address-space limit (RLIMIT_AS): a file that would need more memory than that fails inside the
child as `invalid` `too_large`, and the host keeps its memory for the server, the database and
the other slot.

A slot claims work with its process's *presence* connection id: if the process dies, PostgreSQL
closes that session, and any other process sees the claim as abandoned and scores it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import resource
import socket
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg

from server import kinds
from server.queries import decode_json
from server.submission import announce, claim_next, record_result

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
IDLE_POLL_S = 1.0
DEFAULT_MEMORY_MB = 4096
# A scorer scores one file at a time: numerical libraries' thread pools would only reserve
# address space (tens of MiB per core) and compete with the server for the cores.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


PRELOAD = ["server.scorer_preload"]


def scorer_context() -> Any:
    """The multiprocessing context scorers start in: a fork server, itself started (once per
    server process, and again if it dies) as a fresh interpreter that imports PRELOAD, so a
    scorer forks from a clean process with its libraries loaded instead of importing them."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


class WorkerCrashed(Exception):
    pass


def limit_memory(memory_mb: int) -> None:
    """Caps this process's address space (0: no cap). The hard limit too: nothing a file makes
    the scorer do can raise it again."""
    if memory_mb <= 0:
        return
    limit = memory_mb * 1024**2
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


Truths = tuple[tuple[str, str], ...]  # (kind, truth path) of each challenge


def _serve(conn: Connection, memory_mb: int = DEFAULT_MEMORY_MB, truths: Truths = (),
           extra_kinds: str = "") -> None:
    """The child process: load the challenges' truths, say which, then score jobs until the
    pipe closes. `extra_kinds` is the server's PODIUM_KINDS as the child starts: the fork
    server's environment is the one it had when it started."""
    # Scoring can wait a few milliseconds; uploads in the last-minute rush cannot.
    os.nice(10)
    os.environ.update(SINGLE_THREADED)  # before numpy is imported, below
    limit_memory(memory_mb)
    from server.evaluators import ScoringOptions, evaluate, load_truth
    from server.event import scoring_options

    if os.environ.get(kinds.EXTRA_ENV, "") != extra_kinds:
        os.environ[kinds.EXTRA_ENV] = extra_kinds
        kinds.discover()

    # Decoded once here, before any file arrives: the first submission of a challenge of
    # 3-D volumes is scored at once instead of waiting for its exams to be read.
    loaded = []
    for kind, truth in truths:
        try:
            load_truth(kind, Path(truth))
            loaded.append((kind, truth))
        except Exception as exc:  # noqa: BLE001 - the submission that needs it will say why
            log.warning("scorer: the truth of a %s challenge at %s is not loaded (%s)",
                        kind, truth, exc)
    conn.send({"ready": loaded})

    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        # The challenge's kind options by name (server.event.scoring_options); a job of a
        # server that predates them carries the HU window only.
        options = (scoring_options(job["options"]) if job.get("options") is not None
                   else ScoringOptions.from_hu(job["hu_low"], job["hu_high"]))
        try:
            result = evaluate(job["kind"], Path(job["truth"]), Path(job["path"]), options,
                              name=job.get("name"))
            # Per-exam values (for plots and rank stability) travel beside the public result.
            answer = {**result.to_json(), "details": getattr(result, "details", None)}
        except MemoryError:  # outside the file's reading (the truth, the result): say so
            answer = {"status": "invalid", "errors": [{
                "code": "too_large",
                "message": f"scoring this file needed more than the scorer's {memory_mb} MiB "
                           "of memory; tell the organizers (podium serve "
                           "--scoring-memory-mb)"}]}
        conn.send(answer)


class ScoringProcess:
    """One child process and the pipe to it."""

    def __init__(self, memory_mb: int = DEFAULT_MEMORY_MB, truths: Truths = ()) -> None:
        self._context = scorer_context()
        self.memory_mb = memory_mb
        self.truths = truths
        self.loaded: list[tuple[str, str]] = []  # the truths the child holds decoded
        self.process: Any = None
        self.conn: Connection | None = None
        self.start()

    def start(self) -> None:
        """Blocking (run in a thread): starts the child and waits while it loads the truths."""
        parent, child = self._context.Pipe()
        self.process = self._context.Process(target=_serve,
                                             args=(child, self.memory_mb, self.truths,
                                                   os.environ.get(kinds.EXTRA_ENV, "")),
                                             daemon=True, name="podium-scorer")
        self.process.start()
        child.close()
        self.conn = parent
        try:
            ready = parent.recv()
            self.loaded = [(str(k), str(t)) for k, t in ready["ready"]]
        except (EOFError, OSError):  # died while loading: score() replaces it
            self.loaded = []

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(5)

    def score(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Blocking: run in a thread. TimeoutError or WorkerCrashed replace the child."""
        if not self.process.is_alive():  # died while idle: no submission should pay for that
            self.stop()
            self.start()
        assert self.conn is not None
        try:
            self.conn.send(job)
            answered = self.conn.poll(timeout)
            result: dict[str, Any] | None = self.conn.recv() if answered else None
        except (EOFError, OSError) as exc:  # the child died: its pipe is closed
            self.stop()
            self.start()
            raise WorkerCrashed(str(exc)) from exc
        if result is None:
            self.stop()
            self.start()
            raise TimeoutError
        return result


@dataclass
class Scoring:
    """The scoring side of one server process."""

    pool: asyncpg.Pool
    database_url: str
    slots: int
    timeout_s: float
    memory_mb: int = DEFAULT_MEMORY_MB

    def __post_init__(self) -> None:
        self._presence: asyncpg.Connection | None = None
        self._claimant = ""
        self._presence_lock = asyncio.Lock()
        self._work_available = asyncio.Event()

    def wake(self) -> None:
        """Idle slots look at the queue now instead of at their next poll."""
        self._work_available.set()

    def on_submission(self, event: dict[str, Any]) -> None:
        """The listener's announcement of a status change: a queued file is work, whichever
        process received it."""
        if event.get("status") == "queued":
            self.wake()

    async def claimant(self) -> str:
        """This process's claimant name, from a live presence session (reopened after a
        database restart: claims made under the old session are then anyone's to retry)."""
        async with self._presence_lock:
            if self._presence is None or self._presence.is_closed():
                self._presence = await asyncpg.connect(self.database_url)
                pid = await self._presence.fetchval("SELECT pg_backend_pid()")
                self._claimant = f"{pid}:{socket.gethostname()}:{os.getpid()}"
            return self._claimant

    async def run(self) -> None:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT kind, truth_path FROM challenge WHERE in_event "
                                    "ORDER BY position")
        truths = tuple((r["kind"], r["truth_path"]) for r in rows)
        processes = await asyncio.gather(*(asyncio.to_thread(ScoringProcess, self.memory_mb,
                                                             truths)
                                           for _ in range(self.slots)))
        try:
            await asyncio.gather(*(self._slot(p) for p in processes))
        finally:
            for p in processes:
                await asyncio.to_thread(p.stop)
            if self._presence is not None:
                with contextlib.suppress(Exception):
                    await self._presence.close()

    async def _slot(self, process: ScoringProcess) -> None:
        while True:
            try:
                claimant = await self.claimant()
                async with self.pool.acquire() as conn:
                    job = await claim_next(conn, claimant)
                    if job is not None:
                        await announce(conn, job["id"], job["slug"], job["team_id"], "scoring")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("could not claim work (%s); retrying", exc)
                job = None
            if job is None:
                self._work_available.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work_available.wait(), IDLE_POLL_S)
                continue
            await self._score(process, claimant, job)

    async def _score(self, process: ScoringProcess, claimant: str,
                     job: asyncpg.Record) -> None:
        from server.evaluators import SCORER_VERSION

        status, metrics, errors, details, warnings = "invalid", None, [], None, []
        if job["attempts"] > MAX_ATTEMPTS:
            errors = [_failure(f"scoring was interrupted {MAX_ATTEMPTS} times; the organizers "
                               "have been told")]
        else:
            payload = {"kind": job["kind"], "truth": job["truth_path"],
                       "path": job["stored_path"], "hu_low": job["hu_low"],
                       "hu_high": job["hu_high"], "name": job["filename"],
                       "options": decode_json(job["options"])}
            try:
                result = await asyncio.to_thread(process.score, payload, self.timeout_s)
                status = result["status"]
                metrics = result.get("metrics")
                errors = result.get("errors", [])
                details = result.get("details")
                warnings = result.get("warnings", [])
            except TimeoutError:
                errors = [_failure(f"scoring took longer than {self.timeout_s:g} s and was "
                                   "stopped; check the file, then tell the organizers")]
            except WorkerCrashed:
                errors = [_failure("the scorer crashed on this file; tell the organizers")]
        if errors and errors[0]["code"] == "scoring_failed":
            log.error("submission %s: %s", job["id"], errors[0]["message"])
        async with self.pool.acquire() as conn:
            stored = await record_result(conn, job["id"], claimant, status, metrics, errors,
                                         SCORER_VERSION, details, warnings)
        if not stored:
            log.warning("submission %s was claimed by another process meanwhile", job["id"])


def _failure(message: str) -> dict[str, Any]:
    return {"code": "scoring_failed", "message": message}
