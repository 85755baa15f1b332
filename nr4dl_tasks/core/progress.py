"""Progress lines for long stage loops: done/total, speed against real time, and the time left.

A 40-minute show spends minutes in each model stage; without these lines its
task log is silent until the stage ends, and a stuck task looks like a slow
one. Every loop that may run for more than a few seconds counts the seconds of
audio it has handled here, and a line is logged whenever `every` seconds of
work passed since the last one (so at least every 10 s while work arrives at
least that often: one clip, chunk or window is far shorter).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("nr4dl")

EVERY_SECONDS = 10.0


def clock_text(seconds: float) -> str:
    """12s, 3m05s, 1h02m: short enough for a log line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts audio seconds done out of `total` and logs `doing: done of total ..., Nx real time, ETA ...`."""

    def __init__(
        self, doing: str, total: float, every: float = EVERY_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.doing, self.total, self.every, self.clock = doing, max(float(total), 0.0), every, clock
        self.done = 0.0
        self.began = self.last = clock()

    def add(self, seconds: float) -> None:
        """`seconds` more of audio handled."""
        self.set(self.done + seconds)

    def set(self, done: float) -> None:
        """`done` seconds of audio handled so far; logs when a line is due."""
        self.done = min(float(done), self.total) if self.total else float(done)
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (self.clock() if now is None else now) - self.began
        speed = self.done / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = clock_text((self.total - self.done) / speed) if speed > 0 else "unknown"
        return f"{self.doing}: {self.done:.0f} of {self.total:.0f} s of audio{share}, {speed:.1f}x real time, ETA {eta}"
