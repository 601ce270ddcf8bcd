"""The DICOM node's own process: `python -m server.inclusion.node_process SETTINGS`.

The server (server/inclusion/node.py) runs its Storage SCP here rather than in its own
threads: pynetdicom's association threads, the C-STORE handler and the server's event loop
would otherwise share one interpreter lock, and a center's PACS sending a 300-slice series
would slow the web pages and the uploads of everyone else (and be slowed by them).

SETTINGS is a JSON object: `spool`, `centers` (calling AE title → the center's folder),
`quiet_s`, `ae_title`, `host`, `port`, `data_dir` and `reserve_bytes` (the data dir's
free-space reserve, server/storage.py), `parent` (the server's pid) and `tick_s`. The process
speaks lines on its standard output: `port N` once it listens, `closed K` each time K studies
were closed (their markers written), `error TEXT` if it cannot start. It stops, closing its
associations (an unanswered C-STORE is not kept), when its standard input closes, on SIGTERM,
and at once with the server (Linux's parent-death signal): killing the server kills the node
as it would have killed its threads, and the spool's recovery is the same.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from server.inclusion.dicom_node import DicomNode

LOG = logging.getLogger("server.inclusion.node")
_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """SIGKILL to this process when the server dies (Linux); a server already gone: exit."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)


def _say(line: str) -> None:
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # the server is gone: stdin's end stops us too
        pass


def main(argv: list[str]) -> int:
    settings: dict[str, Any] = json.loads(argv[0])
    _die_with(int(settings["parent"]))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    from server.inclusion.node import reserve_check
    from server.storage import Storage

    reserve = settings.get("reserve_bytes")
    storage = Storage(Path(settings["data_dir"]),
                      reserve_bytes=None if reserve is None else int(reserve))
    node = DicomNode(Path(settings["spool"]), centers=settings["centers"],
                     quiet_s=float(settings["quiet_s"]), on_study=lambda _study: None,
                     ae_title=settings["ae_title"], tick_s=None, admit=reserve_check(storage))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        stop.set()

    threading.Thread(target=watch_stdin, name="node-stdin", daemon=True).start()
    try:
        port = node.start(settings["host"], int(settings["port"]))
    except OSError as exc:
        _say(f"error {exc}")
        return 1
    _say(f"port {port}")
    tick = float(settings["tick_s"])
    try:
        while not stop.wait(tick):
            try:
                closed = node.close_quiet()
            except Exception:
                LOG.exception("closing quiet studies failed; trying again at the next tick")
                continue
            if closed:
                _say(f"closed {len(closed)}")
    finally:
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
