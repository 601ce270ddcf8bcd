"""Uploads through the API: every format, every refusal, concurrency, memory, and kill -9."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openpyxl
import psutil
import pytest

from server.intake import RateLimiter, safe_filename
from tests.helpers import (
    EXAMPLE_DIR,
    PODIUM,
    ROOT,
    AppServer,
    Client,
    ServerProcess,
    add_teams,
    run,
    set_challenge_keys,
    wait_for,
)

SUBMISSIONS = EXAMPLE_DIR / "submissions"


def start(server: Client, *slugs: str) -> None:
    organizer = server.tokens()["organizer"]
    for slug in slugs:
        status, body = server.json("POST", f"/api/v1/challenges/{slug}/start", organizer, {})
        assert status == 200, body


def offline_score(event: Path, slug: str, path: Path) -> dict[str, Any]:
    out = subprocess.run([*PODIUM, "score", "--event", str(event), "--challenge", slug,
                          str(path)], capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout)


def edss_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["id", "edss"])
    for line in (SUBMISSIONS / "edss-myelin-minds.csv").read_text().splitlines()[1:]:
        exam, value = line.split(",")
        sheet.append([exam, float(value)])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_each_format_is_scored_as_offline(server: AppServer) -> None:
    tokens = server.tokens()
    start(server, "sarcopenia", "nodules", "edss")
    cases = [
        ("sarcopenia", "Lumbar Lab", "masks.zip", (SUBMISSIONS / "sarcopenia-lumbar-lab.zip")),
        ("nodules", "Nodule Hunters", "probabilities.csv",
         SUBMISSIONS / "nodules-nodule-hunters.csv"),
        ("edss", "Myelin Minds", "edss.xlsx", None),
    ]
    for slug, team, name, path in cases:
        content = path.read_bytes() if path else edss_xlsx()
        status, receipt = server.upload(slug, tokens[team], name, content, "?wait=60")
        assert status == 202, receipt
        assert receipt["sha256"] == hashlib.sha256(content).hexdigest()
        assert receipt["size"] == len(content) and receipt["filename"] == name
        assert receipt["status"] == "scored", receipt
        _, full = server.json("GET", f"/api/v1/submissions/{receipt['id']}", tokens["jury"])
        if path is not None:
            assert full["metrics"] == offline_score(server.event, slug, path)["metrics"]
        assert full["scorer_version"].startswith("podium-scorer/")
        assert full["metrics"]["mse" if slug == "edss" else "dice" if slug == "sarcopenia"
                               else "auc"] >= 0
    # team_feedback: "status" hides the metrics from the team, "score" shows them.
    _, own = server.json("GET", "/api/v1/challenges/nodules/submissions",
                         tokens["Nodule Hunters"])
    assert len(own) == 1 and "metrics" not in own[0] and own[0]["errors"] == []
    _, own = server.json("GET", "/api/v1/challenges/edss/submissions", tokens["Myelin Minds"])
    assert "mse" in own[0]["metrics"]


def test_a_bad_file_is_stored_and_scored_invalid_with_its_problems(
        server: AppServer) -> None:
    tokens = server.tokens()
    start(server, "nodules")
    status, result = server.upload("nodules", tokens["Lumbar Lab"], "p.csv",
                                   b"id,probability\nNOD001,1.3\n", "?wait=60")
    assert status == 202 and result["status"] == "invalid"
    codes = {e["code"] for e in result["errors"]}
    assert {"out_of_range", "missing_id"} <= codes


def test_refusals(example_event: Path, database_url: str, tmp_path: Path) -> None:
    set_challenge_keys(example_event, "nodules", max_submissions=2, max_upload_mb=0.01)
    server = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=0).start()
    try:
        tokens = server.tokens()
        csv = (SUBMISSIONS / "nodules-nodule-hunters.csv").read_bytes()
        status, body = server.upload("nodules", tokens["Lumbar Lab"], "a.csv", csv)
        assert (status, body["error"]["code"]) == (403, "not_started")
        start(server, "nodules", "edss")
        status, body = server.upload("edss", tokens["Lumbar Lab"], "a.csv", csv)
        assert (status, body["error"]["code"]) == (403, "not_registered")
        status, body = server.upload("lungs", tokens["Lumbar Lab"], "a.csv", csv)
        assert (status, body["error"]["code"]) == (404, "unknown_challenge")
        status, body = server.upload("nodules", tokens["Lumbar Lab"], "big.csv",
                                     b"x" * 20_000)
        assert (status, body["error"]["code"]) == (413, "too_large")
        for _ in range(2):
            status, body = server.upload("nodules", tokens["Lumbar Lab"], "a.csv", csv)
            assert status == 202, body
        status, body = server.upload("nodules", tokens["Lumbar Lab"], "a.csv", csv)
        assert (status, body["error"]["code"]) == (409, "submission_limit")
        # Nothing is scored here (no scoring workers): the pending bound applies.
        for _ in range(3):
            assert server.upload("edss", tokens["Myelin Minds"], "e.csv", csv)[0] == 202
        status, body = server.upload("edss", tokens["Myelin Minds"], "e.csv", csv)
        assert (status, body["error"]["code"]) == (429, "too_many_pending")
        status, _, raw = server.request("POST", "/api/v1/challenges/edss/submissions",
                                        tokens["Pixel Anatomy"], b"{}",
                                        {"Content-Type": "application/json"})
        assert status == 400 and json.loads(raw)["error"]["code"] == "bad_upload"
        server.json("POST", "/api/v1/challenges/nodules/close", tokens["organizer"], {})
        status, body = server.upload("nodules", tokens["Nodule Hunters"], "a.csv", csv)
        assert (status, body["error"]["code"]) == (403, "deadline_passed")
        assert body["error"]["deadline"] and body["error"]["server_time"]
        # Refused uploads left nothing behind.
        _, listed = server.json("GET", "/api/v1/challenges/nodules/submissions",
                                tokens["jury"])
        assert len(listed) == 2
        stored = list((tmp_path / "data" / "submissions").rglob("*"))
        assert not [p for p in stored if p.name.endswith(".part")]
    finally:
        server.stop()


def test_rate_limiter_bursts_then_refills() -> None:
    limiter = RateLimiter(burst=3, every_s=10)
    assert [limiter.take(1, now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take(1, now=0.0) == pytest.approx(10.0)
    assert limiter.take(2, now=0.0) == 0.0  # per team
    assert limiter.take(1, now=5.0) == pytest.approx(5.0)
    assert limiter.take(1, now=10.0) == 0.0


def test_safe_filename() -> None:
    assert safe_filename("C:\\Users\\team\\preds final.csv") == "preds_final.csv"
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("") == "upload"
    assert safe_filename("masks.nii.gz") == "masks.nii.gz"
    assert len(safe_filename("a" * 300 + ".zip")) <= 100


def many_teams_event(event: Path, count: int) -> list[str]:
    names = [f"Team {i:02d}" for i in range(count)]
    add_teams(event, names, ["nodules"])
    return names


def test_twenty_concurrent_uploads(example_event: Path, database_url: str,
                                   tmp_path: Path) -> None:
    names = many_teams_event(example_event, 20)
    server = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=2).start()
    try:
        tokens = server.tokens()
        start(server, "nodules")
        csv = (SUBMISSIONS / "nodules-nodule-hunters.csv").read_bytes()
        barrier = threading.Barrier(20)

        def send(name: str) -> tuple[int, Any]:
            barrier.wait()
            return server.upload("nodules", tokens[name], "p.csv", csv, "?wait=60")

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(send, names))
        assert [status for status, _ in results] == [202] * 20
        assert {body["status"] for _, body in results} == {"scored"}
        assert len({body["id"] for _, body in results}) == 20
    finally:
        server.stop()


@pytest.mark.slow  # 300 MB through the server; its own process, so its RSS is its own
def test_a_300_mb_upload_is_streamed(example_event: Path, database_url: str,
                                     tmp_path: Path) -> None:
    big = tmp_path / "big.zip"
    with big.open("wb") as handle:
        block = os.urandom(1024 * 1024)
        for _ in range(300):
            handle.write(block)
    expected = hashlib.sha256(big.read_bytes()).hexdigest()
    server = ServerProcess(example_event, tmp_path / "data", database_url,
                           extra_args=["--scoring-workers", "0"]).start()
    try:
        start(server, "sarcopenia")
        assert server.process is not None
        process = psutil.Process(server.process.pid)
        idle = process.memory_info().rss
        peak = idle
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, process.memory_info().rss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            receipt = upload_file(server, "sarcopenia", server.tokens()["Lumbar Lab"], big)
        finally:
            done.set()
            sampler.join()
        assert receipt["sha256"] == expected and receipt["size"] == 300 * 1024 * 1024
        assert peak - idle < 200 * 1024 * 1024, f"grew by {(peak - idle) / 2**20:.0f} MB"
    finally:
        server.stop()


def upload_file(server: Client, slug: str, token: str, path: Path) -> dict[str, Any]:
    """Streams a file from disk with aiohttp, as a team's script would."""
    import aiohttp

    async def go() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            with path.open("rb") as handle:
                form = aiohttp.FormData()
                form.add_field("file", handle, filename=path.name)
                async with session.post(f"{server.url}/api/v1/challenges/{slug}/submissions",
                                        data=form,
                                        headers={"Authorization": f"Bearer {token}"}) as resp:
                    body: dict[str, Any] = await resp.json()
                    assert resp.status == 202, body
                    return body

    return run(go())


@pytest.mark.slow  # a server process killed, restarted, 36 uploads scored
def test_kill_9_during_a_burst_loses_nothing_acknowledged(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    names = many_teams_event(example_event, 12)
    data_dir = tmp_path / "data"
    server = ServerProcess(example_event, data_dir, database_url).start()
    tokens = server.tokens()
    start(server, "nodules")
    sent: dict[str, bytes] = {}
    acknowledged: list[dict[str, Any]] = []
    lock = threading.Lock()
    first_acknowledged = threading.Event()

    def send(index: int) -> None:
        name = names[index % len(names)]
        # A different first probability per upload: every file is distinct and valid.
        content = (SUBMISSIONS / "nodules-nodule-hunters.csv").read_bytes().replace(
            b"NOD001;0,372", f"NOD001;0,{index:03d}".encode())
        with lock:
            sent[hashlib.sha256(content).hexdigest()] = content
        try:
            status, body = server.upload("nodules", tokens[name], f"u{index}.csv", content)
        except OSError:
            return  # the server died under this request: not acknowledged
        if status == 202:
            with lock:
                acknowledged.append(body)
            first_acknowledged.set()

    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(send, i) for i in range(36)]
        # Killed in the middle of the burst: once something was acknowledged, while the rest
        # is still in flight.
        assert first_acknowledged.wait(120), "no upload was acknowledged"
        server.stop(signal.SIGKILL)
        for future in futures:
            future.result()
    assert 0 < len(acknowledged) < 36, "the kill did not land in the middle of the burst"

    server.start()
    try:
        organizer = tokens["organizer"]

        def all_done() -> list[dict[str, Any]] | None:
            _, stored = server.json("GET", "/api/v1/challenges/nodules/submissions", organizer)
            return stored if all(s["status"] in ("scored", "invalid") for s in stored) \
                else None

        stored = wait_for(all_done, timeout=120, what="every stored submission to be scored")
        by_id = {s["id"]: s for s in stored}
        for receipt in acknowledged:
            assert receipt["id"] in by_id, receipt
            assert by_id[receipt["id"]]["sha256"] == receipt["sha256"]
        for s in stored:
            # Unacknowledged ones are absent or complete: every stored one is a whole upload.
            assert s["sha256"] in sent and s["size"] == len(sent[s["sha256"]])
            assert s["status"] == "scored", (s, s.get("errors"))
        files = [p for p in (data_dir / "submissions").rglob("*") if p.is_file()]
        assert len([p for p in files if not p.name.startswith(".")]) >= len(stored)
    finally:
        server.stop()


def test_submit_then_read_back_as_each_role(server: AppServer) -> None:
    tokens = server.tokens()
    start(server, "nodules")
    csv = (SUBMISSIONS / "nodules-nodule-hunters.csv").read_bytes()
    status, receipt = server.upload("nodules", tokens["Lumbar Lab"], "p.csv", csv, "?wait=60")
    assert status == 202
    path = f"/api/v1/submissions/{receipt['id']}"
    assert server.json("GET", path, tokens["Lumbar Lab"])[0] == 200
    status, body = server.json("GET", path, tokens["Nodule Hunters"])
    assert (status, body["error"]["code"]) == (404, "unknown_submission")
    for role in ("jury", "organizer"):
        status, body = server.json("GET", path, tokens[role])
        assert status == 200 and "auc" in body["metrics"]
    _, listed = server.json("GET", "/api/v1/challenges/nodules/submissions",
                            tokens["Nodule Hunters"])
    assert listed == []


def test_podium_score_exit_codes(tmp_path: Path) -> None:
    event = EXAMPLE_DIR / "event.toml"
    good = subprocess.run([*PODIUM, "score", "--event", str(event), "--challenge", "edss",
                           str(SUBMISSIONS / "edss-myelin-minds.csv")], capture_output=True,
                          text=True, cwd=ROOT)
    assert good.returncode == 0 and json.loads(good.stdout)["status"] == "scored"
    bad = tmp_path / "bad.csv"
    bad.write_text("id,value\nMS001,11\n")
    invalid = subprocess.run([*PODIUM, "score", "--event", str(event), "--challenge", "edss",
                              str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert invalid.returncode == 1
    assert {e["code"] for e in json.loads(invalid.stdout)["errors"]} >= {"out_of_range"}
    usage = subprocess.run([*PODIUM, "score", "--event", str(event), "--challenge", "lungs",
                            str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert usage.returncode == 2 and "lungs" in usage.stderr


def test_each_format_through_the_command_line(server: AppServer, tmp_path: Path) -> None:
    tokens = server.tokens()
    start(server, "sarcopenia", "edss")
    xlsx = tmp_path / "edss.xlsx"
    xlsx.write_bytes(edss_xlsx())
    for slug, team, path in [("sarcopenia", "Pixel Anatomy",
                              SUBMISSIONS / "sarcopenia-lumbar-lab.zip"),
                             ("edss", "Pixel Anatomy", xlsx),
                             ("edss", "Myelin Minds", SUBMISSIONS / "edss-myelin-minds.csv")]:
        result = subprocess.run(
            [*PODIUM, "submit", "--server", server.url, "--token", tokens[team],
             "--challenge", slug, "--json", "--wait", "60", str(path)],
            capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert body["status"] == "scored"
        assert body["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
