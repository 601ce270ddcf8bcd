"""The loop monitor sees a blocked event loop, and forgets it once the window has passed."""

from __future__ import annotations

import asyncio
import time

from server.loop_monitor import LoopMonitor


def test_a_blocked_loop_shows_as_lag_for_the_window_then_is_forgotten() -> None:
    async def go() -> tuple[float, float, float]:
        monitor = LoopMonitor(step_s=0.01, window_s=0.5, warn_s=10)
        task = asyncio.create_task(monitor.run())
        await asyncio.sleep(0.1)
        quiet = monitor.worst_lag_s()
        time.sleep(0.3)  # noqa: ASYNC251 - something holds the loop, on purpose
        await asyncio.sleep(0.05)
        blocked = monitor.worst_lag_s()
        await asyncio.sleep(0.8)
        later = monitor.worst_lag_s()
        task.cancel()
        return quiet, blocked, later

    quiet, blocked, later = asyncio.run(go())
    assert quiet < 0.1 and blocked >= 0.25 and later < 0.1
