"""`podium tokens` in its three formats, and usage errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

from tests.helpers import EXAMPLE_EVENT, PODIUM, ROOT


def tokens(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODIUM, "tokens", "--event", str(EXAMPLE_EVENT), "--data-dir",
                           str(data_dir), *extra], capture_output=True, text=True, cwd=ROOT)


def test_tokens_in_every_format_agree(tmp_path: Path) -> None:
    as_json = json.loads(tokens(tmp_path, "--format", "json").stdout)
    assert [(r["role"], r["name"]) for r in as_json][:7] == [
        ("organizer", "organizer"), ("jury", "jury"), ("team", "Lumbar Lab"),
        ("team", "Nodule Hunters"), ("team", "Myelin Minds"), ("team", "Pixel Anatomy"),
        ("center", "CHU de Lyon")]
    assert [r["role"] for r in as_json].count("reviewer") == 3
    assert all(r["link"] == f"http://127.0.0.1:8080/login?token={r['token']}" for r in as_json)
    as_csv = list(csv.DictReader(io.StringIO(tokens(tmp_path, "--format", "csv").stdout)))
    assert as_csv == as_json
    table = tokens(tmp_path, "--base-url", "https://podium.example.org/").stdout.splitlines()
    assert len(table) == 12
    assert table[2].split()[:3] == ["team", "Lumbar", "Lab"]
    assert table[2].endswith(f"https://podium.example.org/login?token={as_json[2]['token']}")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = subprocess.run([*PODIUM, "serve"], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2 and "--event" in missing.stderr
    refused = subprocess.run([*PODIUM, "tokens", "--event", str(tmp_path / "none.toml")],
                             capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2 and "event file not found" in refused.stderr


def test_export_needs_a_workbook_or_a_long_table(capsys: object) -> None:
    from server.cli import main

    assert main(["export", "--event", str(EXAMPLE_EVENT)]) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "export needs OUT.xlsx, --challenger FILE.csv, or both" in err


def test_a_reader_that_stops_reading_gets_no_traceback() -> None:
    """`podium score ... | head -c 20`: the pipe closes under the long JSON; one quiet exit."""
    process = subprocess.Popen(
        [*PODIUM, "score", "--event", str(EXAMPLE_EVENT), "--challenge", "nodules-3d",
         str(EXAMPLE_EVENT.parent / "submissions" / "nodules-3d-nodule-hunters.zip")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(20)
    process.stdout.close()  # before the rest of the JSON is written
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=120) in (0, 1)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
