"""How many torch threads the training worker uses: whichever of "every core" and "one fewer" trains
faster right now, found by timing steps and checked again now and then.

On an idle 2-core machine two threads train about 1.5× faster than one; on a busy one (napari drawing,
other programs) two threads waited for each other and trained 80× slower (docs/benchmarks.md). Torch's
thread count is per thread: set here, it leaves the GUI thread alone.
"""

from __future__ import annotations

import os
import time

TRIAL_STEPS = 4  # steps timed per choice...
TRIAL_S = 2.0  # ...or fewer, once a choice has taken this long
RETRY_S = 60.0  # the choice is timed again this often


class ThreadTuner:
    """Call :meth:`step_took` with each plain training step's seconds; :attr:`threads` is the count
    in use (set on the calling thread with ``torch.set_num_threads``)."""

    def __init__(self, cores: int | None = None) -> None:
        cores = cores or os.cpu_count() or 1
        self.choices = sorted({max(1, cores - 1), cores})
        self._times: dict[int, list[float]] = {}
        self._trying = list(self.choices)
        self._next_trial = 0.0
        self.threads = self.choices[0]
        self._use(self._trying[0])

    def _use(self, threads: int) -> None:
        import torch

        self.threads = threads
        torch.set_num_threads(threads)
        self._times[threads] = []

    def step_took(self, seconds: float) -> None:
        if not self._trying:
            if time.perf_counter() >= self._next_trial and len(self.choices) > 1:
                self._trying = list(self.choices)
                self._use(self._trying[0])
            return
        times = self._times[self.threads]
        times.append(seconds)
        if len(times) < TRIAL_STEPS and sum(times) < TRIAL_S:
            return
        self._trying.pop(0)
        if self._trying:
            self._use(self._trying[0])
            return
        best = min(self.choices, key=lambda n: sum(self._times[n]) / len(self._times[n]))
        self._use(best)
        self._next_trial = time.perf_counter() + RETRY_S
