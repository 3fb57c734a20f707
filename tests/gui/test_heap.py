"""The dock freezes what exists when it opens (short full garbage collections), and never keeps what the user
removes: a removed layer thaws the freeze and is freed, and the next Train freezes again."""

import gc
import weakref

import numpy as np

from napari_unet import _heap


class _Node:
    """An object in a reference cycle: only a full collection frees it."""

    def __init__(self) -> None:
        self.me = self


def test_a_cycle_dropped_while_frozen_waits_for_the_thaw():
    _heap.thaw()  # whatever an earlier test left
    node = _Node()
    freed = weakref.ref(node)
    _heap.freeze_long_lived()
    try:
        assert _heap.is_frozen() and gc.get_freeze_count() > 0
        frozen = gc.get_freeze_count()
        _heap.freeze_long_lived()  # already frozen: nothing more
        assert gc.get_freeze_count() == frozen
        del node
        gc.collect()
        assert freed() is not None  # why a removed layer must thaw the freeze
    finally:
        _heap.thaw()
    assert not _heap.is_frozen() and gc.get_freeze_count() == 0
    gc.collect()
    assert freed() is None


def test_a_layer_removed_while_the_dock_is_open_is_freed(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "nuclei_2d")
    viewer.add_image(np.zeros((64, 64), np.float32), name="scratch")
    freed = weakref.ref(viewer.layers["scratch"])
    _heap.thaw()
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "U-Net trainer")
    try:
        assert _heap.is_frozen()  # by the dock; the layer existed when it opened: it is frozen
        viewer.layers.remove("scratch")
        assert not _heap.is_frozen()
        # napari's Qt side lets go of the layer's visual on the event loop
        qtbot.waitUntil(lambda: gc.collect() is not None and freed() is None, timeout=10_000)

        widget.train()
        assert widget.session is not None, widget.message.text()
        assert _heap.is_frozen()
        widget.stop()
        qtbot.waitUntil(lambda: widget.session is None, timeout=30_000)
    finally:
        widget.shutdown()
    assert not _heap.is_frozen()
