"""Rate and ETA for progress lines: `captioner caption` (captions), the trainers (optimizer steps), recaption
(shards of the whole job).

    clock = Clock(total=1000, done=resumed_step)
    ...
    print(f"step {step}/1000 loss ... {clock.line(step)}")     # "2.31 step/s, ETA 0:07:11"
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


def hms(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Clock:
    """Counts from `done` (work finished before this process started, e.g. a resumed step) towards `total`; the rate
    uses only the work done since, so a resume does not inflate it."""

    total: int | None
    done: int = 0
    unit: str = "step"
    now: Callable[[], float] = time.perf_counter
    """the clock (tests pass their own)"""
    start: float | None = None

    def __post_init__(self):
        self.first = self.done
        self.start = self.now() if self.start is None else self.start

    def rate(self, done: int) -> float | None:
        elapsed = self.now() - self.start
        return (done - self.first) / elapsed if done > self.first and elapsed > 0 else None

    def eta(self, done: int) -> float | None:
        rate = self.rate(done)
        return (self.total - done) / rate if rate and self.total is not None else None

    def line(self, done: int) -> str:
        """'2.31 step/s, ETA 0:07:11' ('ETA ?' before the first unit of work; no ETA without a total)."""
        rate, eta = self.rate(done), self.eta(done)
        shown = f"{rate:.3g} {self.unit}/s" if rate else f"? {self.unit}/s"
        if self.total is None:
            return shown
        return f"{shown}, ETA {hms(eta) if eta is not None else '?'}"
