"""`podium` run in this process, as a shell runs it, for the tests of the commands that talk to
a server (tests/test_submit.py, test_watch.py, test_remote.py)."""

from __future__ import annotations

import concurrent.futures
import socket
from typing import Any

from server.cli import main
from tests.helpers import EXAMPLE_DIR, Client

SUBMISSIONS = EXAMPLE_DIR / "submissions"
NODULES_CSV = SUBMISSIONS / "nodules-nodule-hunters.csv"
EDSS_CSV = SUBMISSIONS / "edss-myelin-minds.csv"
TITLES = {
    "sarcopenia": "Sarcopenia — muscle surface at L3 on CT",
    "nodules": "Pulmonary nodules — probably malignant on 3-D CT",
    "edss": "Multiple sclerosis — EDSS at two years from MRI",
}


def podium(*argv: str) -> int:
    """`podium ARGV…` through `server.cli.main`: its argparse wiring, settings, usage errors
    and exit codes. In a thread of its own, as `podium` runs in a process of its own: the
    command starts its own event loop, which a loop running in this thread (Playwright's)
    would refuse."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(main, list(argv)).result()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def start(server: Client, slug: str, action: str = "start") -> dict[str, Any]:
    status, body = server.json("POST", f"/api/v1/challenges/{slug}/{action}",
                               token=server.tokens()["organizer"], body={})
    assert status == 200, body
    return body
