"""GUI tests run a real napari viewer (under Xvfb in CI) and fail on workers left running."""

from __future__ import annotations

from weakref import WeakKeyDictionary

import pytest


@pytest.fixture(autouse=True)
def _no_dangling_workers(monkeypatch):
    """Every QRunnable started in a test must have finished when it ends (napari's guard, condensed)."""
    from qtpy.QtCore import QThreadPool

    original_start = QThreadPool.start
    used: WeakKeyDictionary = WeakKeyDictionary()

    def recording_start(self, runnable, priority=0):
        used[self] = True
        original_start(self, runnable, priority)

    monkeypatch.setattr(QThreadPool, "start", recording_start)
    yield
    busy = []
    for pool in list(used):
        pool.waitForDone(3000)
        if pool.activeThreadCount():
            busy.append(pool)
    assert not busy, "a worker thread was still running after the test"


@pytest.fixture
def trainer(make_napari_viewer, qtbot):
    """A viewer with the 2D sample and the trainer dock opened through the plugin manifest."""
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "nuclei_2d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "U-Net trainer")
    yield viewer, widget
    widget.shutdown()


@pytest.fixture
def make_napari_viewer(make_napari_viewer):
    """napari's fixture, with the dock's garbage-collector freeze ended before napari checks for leaked
    viewers (a test that fails before closing its dock would leave the process frozen)."""
    from napari_unet import _heap

    yield make_napari_viewer
    _heap.thaw()
