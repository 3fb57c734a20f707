"""A long session: many train/stop cycles in one viewer leave threads, sessions and memory flat (twelve
cycles: five to warm up, seven measured; the Stop-latency percentiles over 20 stops are the GUI benchmark's)."""

from __future__ import annotations

import gc
import threading
import tracemalloc
import weakref

TIMEOUT_MS = 60_000
CYCLES = 12
WARM_UP = 5


def test_many_train_stop_cycles_leave_nothing_behind(trainer, qtbot):
    from qtpy.QtCore import QThreadPool

    viewer, widget = trainer
    pool = QThreadPool.globalInstance()
    sessions: list[weakref.ref] = []
    threads_after: list[int] = []
    try:
        for cycle in range(CYCLES):
            widget.train()
            session = widget.session
            assert session is not None, widget.message.text()
            sessions.append(weakref.ref(session))
            del session
            qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 2, timeout=TIMEOUT_MS)
            widget.stop()
            qtbot.waitUntil(lambda: widget.session is None, timeout=TIMEOUT_MS)
            pool.waitForDone(5000)
            gc.collect()
            # Python threads of our own (Qt's pool threads, reused and bounded by the pool, are not counted)
            threads_after.append(sum(not isinstance(t, threading._DummyThread) for t in threading.enumerate()))
            if cycle == WARM_UP - 1:  # torch, previews and layers exist; trace what the next cycles keep
                tracemalloc.start()  # tracing slows every allocation: only the measured cycles pay for it
                baseline = tracemalloc.take_snapshot()
        growth = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(baseline, "filename"))
    finally:
        tracemalloc.stop()
    assert pool.activeThreadCount() == 0
    assert max(threads_after[WARM_UP - 1 :]) <= threads_after[WARM_UP - 1]  # no thread left per cycle
    assert sum(ref() is not None for ref in sessions[:-1]) == 0  # old sessions are freed
    assert growth < 20 * 2**20, f"Python memory grew by {growth / 2**20:.1f} MiB over {CYCLES - WARM_UP} cycles"
    assert len([layer for layer in viewer.layers if layer.name.endswith("prediction")]) <= 1  # no pile-up
