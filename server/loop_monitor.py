"""How late the event loop runs: a ticker that sleeps a fixed step and measures the excess.

Everything the server does for every team shares one loop, so a stall anywhere (a parser that
never yields, a blocking call) delays every request and every clock. The worst lag of the last
`window_s` is reported by `/healthz`; a stall past `warn_s` is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

log = logging.getLogger(__name__)


class LoopMonitor:
    def __init__(self, step_s: float = 0.02, window_s: float = 10.0, warn_s: float = 0.5
                 ) -> None:
        self.step_s = step_s
        self.window_s = window_s
        self.warn_s = warn_s
        self._samples: deque[tuple[float, float]] = deque()  # (loop time, lag)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.step_s)
            now = loop.time()
            lag = max(0.0, now - before - self.step_s)
            self._samples.append((now, lag))
            while self._samples and self._samples[0][0] < now - self.window_s:
                self._samples.popleft()
            if lag >= self.warn_s:
                log.warning("the event loop was blocked for %.0f ms", lag * 1000)

    def worst_lag_s(self) -> float:
        """The worst lag of the last window (a stall still in progress is not seen yet)."""
        return max((lag for _, lag in self._samples), default=0.0)
