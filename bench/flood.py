"""Benchmark: a hostile team's flood of tiny form parts, and what the other teams feel.

Usage:  .venv/bin/python bench/flood.py [--probes 40] [--runs 3]

`podium serve` runs the example event (examples/jfr2019) as a subprocess with its own
embedded PostgreSQL, in a temporary folder, with one scorer (the honest uploads are scored, so
that a team never has three pending). The nodules clock is started.
Each run then:
- **floor**: sends `--probes` small requests (`GET /api/v1/time`, each on a fresh connection)
  to the idle server, 50 ms apart, and records their latencies;
- **flood**: one team posts ~195,000 empty form parts (10 MB with a Content-Length; then
  300,000 chunked ones, no length at all) while another team uploads its CSV, and the same
  probes are sent until the flood ends. The server's own ticker's loop lag (`/healthz`,
  `loop_lag_ms`) is read right after.

Reported: p50 and max probe latency, idle and during each flood, their ratio, and the loop
lag. Targets (issue 12): during a flood the slowest probe stays under 1 s and within 10× the
idle p50 + 100 ms, the loop lag under 100 ms; the honest upload is accepted, the flood refused.
The suite (tests/test_intake_flood.py) checks the outcomes; the times are measured here.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.edge import get, settled, start  # noqa: E402
from tests.helpers import EXAMPLE_DIR, ServerProcess  # noqa: E402
from tests.test_intake_flood import (  # noqa: E402
    NODULES,
    _batches,
    file_part,
    post_flood,
    tiny_parts,
)


def probes(server: ServerProcess, count: int | None, busy: threading.Thread | None
           ) -> list[float]:
    """Latencies of small requests: `count` of them, or as many as fit while `busy` runs."""
    took: list[float] = []
    while (count is None or len(took) < count):
        status, _, seconds = get(server, "/api/v1/time")
        assert status == 200
        took.append(seconds)
        if busy is not None and not busy.is_alive():
            break
        time.sleep(0.05)
    return took


def flood(server: ServerProcess, chunked: bool) -> dict[str, Any]:
    tokens = server.tokens()
    count = 300_000 if chunked else 195_000
    body: Any = ((b"".join(batch) for batch in _batches(tiny_parts(count), 1000)) if chunked
                 else b"".join(tiny_parts(count)) + file_part(NODULES))
    answer: dict[str, Any] = {}

    def attack() -> None:
        with contextlib.suppress(ConnectionError):
            answer["status"] = post_flood(server, tokens["Lumbar Lab"], body, chunked)[0]

    attacker = threading.Thread(target=attack)
    attacker.start()
    honest = server.upload("nodules", tokens["Nodule Hunters"], "p.csv", NODULES)[0]
    during = probes(server, None, attacker)
    attacker.join()
    _, health = server.json("GET", "/healthz")
    return {"during": during, "lag_ms": health["loop_lag_ms"], "honest": honest,
            "flood": answer.get("status", "cut off")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="podium-flood-") as tmp:
        server = ServerProcess(EXAMPLE_DIR / "event.toml", Path(tmp) / "data", None,
                               extra_args=["--scoring-workers", "1"]).start()
        try:
            start(server, "nodules")
            settled(server)
            print("| run | framing | idle p50 ms | idle max ms | flood p50 ms | flood max ms "
                  "| max / idle p50 | loop lag ms | honest | flood |")
            print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
            for run in range(1, args.runs + 1):
                for chunked in (False, True):
                    settled(server)
                    idle = probes(server, args.probes, None)
                    out = flood(server, chunked)
                    p50, worst = statistics.median(idle), max(out["during"])
                    ok = (worst < 1.0 and worst < 10 * p50 + 0.1 and out["lag_ms"] < 100
                          and out["honest"] == 202 and out["flood"] in (400, "cut off"))
                    failed |= not ok
                    print(f"| {run} | {'chunked' if chunked else 'content-length'} "
                          f"| {p50 * 1000:.1f} | {max(idle) * 1000:.1f} "
                          f"| {statistics.median(out['during']) * 1000:.1f} "
                          f"| {worst * 1000:.1f} | {worst / p50:.1f} | {out['lag_ms']:.0f} "
                          f"| {out['honest']} | {out['flood']} |{'' if ok else ' MISSED'}")
        finally:
            server.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
