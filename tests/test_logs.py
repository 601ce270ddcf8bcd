"""Repeated log lines are rate-limited; distinct ones and access lines are not."""

from __future__ import annotations

import logging

from server.logs import RepeatFilter


def record(msg: str, level: int = logging.ERROR, name: str = "asyncio") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_a_repeated_error_passes_a_few_times_per_window_then_says_how_many_were_left_out(
        ) -> None:
    now = [0.0]
    limit = RepeatFilter(burst=3, every_s=10, clock=lambda: now[0])
    passed = [limit.filter(record("socket.accept() out of system resource"))
              for _ in range(1000)]
    assert passed.count(True) == 3
    assert limit.filter(record("another message"))
    assert limit.filter(record("info lines always pass", logging.INFO))
    now[0] = 10.0
    again = record("socket.accept() out of system resource")
    assert limit.filter(again)
    assert again.getMessage().endswith("(and 997 more like it left out)")
