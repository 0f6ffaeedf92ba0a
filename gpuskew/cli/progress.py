"""A one-line progress bar of a run's stages, on stderr, only when stderr is a terminal.

The stages of ``gpuskew run`` are known before it starts (build the demo book, read and validate,
flatten, copy to the device, price, sum, build tables, adherence, write); each reports when it is
done (``progress(stage)``, the callback ``gpuskew.compute`` and ``risk_run`` take). The bar is
redrawn in place after each one (carriage return and spaces, no escape codes) and names the
stage now running, so that a long read or write of a 10^7-position book shows where the run is.
With ``--demo-steps N`` the per-step stages repeat N times. Not a terminal (a scheduler's log):
nothing is drawn; stage timings are in summary.json.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

#: what each stage does, as shown while it runs
STAGE_LABELS: dict[str, str] = {
    "demo": "building the demo book",
    "load": "reading and validating the book",
    "prepare": "flattening positions",
    "to_device": "moving arrays to the backend",
    "greeks": "pricing positions",
    "group_sums": "summing per group",
    "tables": "building output tables",
    "adherence": "checking limits, hedges and quotes",
    "write": "writing outputs",
}

#: the stages of one valuation (one step), in order
STEP_STAGES: tuple[str, ...] = ("load", "prepare", "to_device", "greeks", "tables", "group_sums")

BAR_WIDTH = 24


def run_stages(demo: bool, adherence: bool, steps: int = 1) -> list[str]:
    """Every stage of a ``gpuskew run``, in order."""
    step = list(STEP_STAGES) + (["adherence"] if adherence else [])
    return (["demo"] if demo else []) + step * max(1, steps) + ["write"]


class ProgressBar:
    """``bar(stage)`` marks the next pending ``stage`` done and redraws the bar.

    Disabled (``enabled=False``): every call does nothing. A stage that is not pending is
    ignored, so a run that skips a stage only leaves the bar short of its end until ``write``.
    As a context manager, the bar's line is erased on leaving the block unless the bar finished
    (so that an error message starts on a clean line).
    """

    def __init__(self, stages: Sequence[str], enabled: bool, stream: TextIO | None = None):
        self.stages = list(stages)
        self.enabled = enabled and bool(self.stages)
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.t0 = time.perf_counter()
        self._drawn = 0  # characters of the bar now on the line (0: nothing drawn)
        if self.enabled:
            self._draw()

    def __call__(self, stage: str) -> None:
        if not self.enabled:
            return
        try:
            self.done = self.stages.index(stage, self.done) + 1
        except ValueError:
            return
        self._draw()
        if self.done == len(self.stages):
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.clear()

    def clear(self) -> None:
        """Erase the bar's line (before a log line); the next stage draws it again."""
        if self.enabled and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0

    def line(self) -> str:
        """The bar's text: ``gpuskew [#####-----] 3/8  1.2 s  pricing positions...``."""
        n = len(self.stages)
        filled = BAR_WIDTH * self.done // n
        now = (f"{STAGE_LABELS.get(self.stages[self.done], self.stages[self.done])}..."
               if self.done < n else "done")
        return (f"gpuskew [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {self.done}/{n}  "
                f"{time.perf_counter() - self.t0:.1f} s  {now}")

    def _draw(self) -> None:
        """Overwrite the line with carriage return and spaces (no terminal escape codes, so a
        dumb terminal or a captured stderr shows plain text)."""
        text = self.line()
        self.stream.write("\r" + text.ljust(self._drawn))
        self.stream.flush()
        self._drawn = max(len(text), self._drawn)
