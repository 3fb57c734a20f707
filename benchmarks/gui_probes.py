"""What the GUI benchmark measures in a running viewer, and how it runs Qt: peak resident memory, how late a
10 ms QTimer's ticks come (event-loop stalls) and the full garbage collections among them, and Qt's own
event loop with timers, as napari runs it."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable

import numpy as np

TICK_MS = 10


class MemoryPeak:
    """Resident memory sampled every 20 ms in a thread: ``peak`` bytes since :meth:`start`."""

    def __init__(self) -> None:
        self.peak = self.start_rss = 0
        self._running = False

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def start(self) -> None:
        self.start_rss = self.peak = self.rss()
        self._running = True
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)

    def stop(self) -> None:
        self._running = False


class LoopProbe:
    """A 10 ms QTimer: a stall is how much later than 10 ms each tick comes. Also times Python's full
    (generation 2) garbage collections, on any thread: they hold the GIL, so the event loop waits too."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.ticks: list[float] = []
        self.full_collections: list[tuple[float, float]] = []  # (start, seconds)
        self._collecting_since: float | None = None
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        gc.callbacks.append(self._on_collection)

    def _on_collection(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._collecting_since = time.perf_counter()
        elif self._collecting_since is not None:
            self.full_collections.append((self._collecting_since, time.perf_counter() - self._collecting_since))
            self._collecting_since = None

    def stop(self) -> None:
        self.timer.stop()
        gc.callbacks.remove(self._on_collection)

    def summary(self) -> dict:
        stalls = np.clip(np.diff(self.ticks) * 1000 - TICK_MS, 0, None)
        worst = int(stalls.argmax())
        worst_span = (self.ticks[worst], self.ticks[worst + 1])
        in_worst = sum(s for start, s in self.full_collections if worst_span[0] <= start < worst_span[1])
        return {
            f"stall_{name}_ms": round(float(np.percentile(stalls, q)), 1) for name, q in [("p50", 50), ("p95", 95)]
        } | {
            "stall_max_ms": round(float(stalls.max()), 1),
            "timer_ticks": len(self.ticks),
            "full_gc_count": len(self.full_collections),
            "full_gc_max_ms": round(max((s for _, s in self.full_collections), default=0.0) * 1000, 1),
            "full_gc_in_longest_stall_ms": round(in_worst * 1000, 1),
        }


def timed_full_collection() -> float:
    """Seconds one full garbage collection takes now, in the viewer with the dock: what the event loop
    waits whenever Python runs one (whether one ran during the measured run depends on its counters)."""
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started


def run_event_loop(seconds: float, every: list[tuple[float, Callable[[], None]]]) -> None:
    """Run Qt's own event loop for ``seconds``, as napari does, calling each ``(interval_s, slot)`` on a
    QTimer (a busy loop of ``processEvents`` would take the GIL from the training thread a thousand times
    a second, and hide stalls that a sleeping event loop shows)."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop, timers = QEventLoop(), []
    for interval, slot in every:
        timer = QTimer()
        timer.setInterval(int(interval * 1000))
        timer.timeout.connect(slot)
        timer.start()
        timers.append(timer)
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    for timer in timers:
        timer.stop()
