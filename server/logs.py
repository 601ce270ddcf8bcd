"""Logging for the server process: repeated warnings and errors are rate-limited.

A flood (sockets refused at the descriptor limit, malformed requests from a stranger's script)
repeats one message thousands of times a second; a disk of tracebacks helps nobody. Each
message template (logger, level, text before formatting) passes `burst` times per `every_s`;
the next one that passes says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RepeatFilter(logging.Filter):
    def __init__(self, burst: int = 5, every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.every_s = every_s
        self._clock = clock
        # key -> (window start, passed in the window, suppressed since the last one passed)
        self._seen: dict[tuple[str, int, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        start, passed, suppressed = self._seen.get(key, (now, 0, 0))
        if now - start >= self.every_s:
            start, passed = now, 0
        if passed >= self.burst:
            self._seen[key] = (start, passed, suppressed + 1)
            return False
        if suppressed:
            record.msg = f"{record.msg} (and {suppressed} more like it left out)"
        self._seen[key] = (start, passed + 1, 0)
        if len(self._seen) > 10_000:  # messages whose text varies: forget the oldest
            self._seen.pop(next(iter(self._seen)))
        return True
