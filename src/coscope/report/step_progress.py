"""Plain progress lines for long offline jobs: replay, retrace, the HTML report.

A counterfactual report over a long campaign replays every decision several times and may
run for many minutes; without a word it looks hung. :class:`StepLines` is the callback those
jobs call after each decision (``on_step(what, done, total)``); it prints one line to
stderr at the first and last decision of each job and at most every ``every_s`` seconds in
between, so a log under ``| tee`` shows progress without flooding.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

OnStep = Callable[[str, int, int], None]
"""``on_step(what, done, total)``: ``done`` of ``total`` decisions of job ``what`` are done."""


def no_progress(what: str, done: int, total: int) -> None:
    """An :data:`OnStep` that says nothing."""
    del what, done, total


class StepLines:
    """An :data:`OnStep` printing ``"<prefix><what> <done>/<total> decisions"`` lines.

    Args:
        prefix: Put before each line (``"report: "`` where one command runs several jobs).
        stream: Where lines go (default stderr).
        every_s: Least seconds between two lines of one job (first and last always print).
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        prefix: str = "",
        *,
        stream: TextIO | None = None,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefix = prefix
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.clock = clock
        self._last: dict[str, float] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        now = self.clock()
        first = what not in self._last
        if not (first or done >= total or now - self._last[what] >= self.every_s):
            return
        self._last[what] = now
        print(f"{self.prefix}{what} {done}/{total} decisions", file=self.stream, flush=True)
