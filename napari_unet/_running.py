"""What the dock runs in the background, by kind (a training session, the final prediction after Stop,
Predict all, an export), and ending it all when the dock or the viewer closes.

A mixin of :class:`~napari_unet._widget.UNetTrainerWidget`: the workers live in its ``_running`` dict,
shared with the handler of the widget's ``destroyed`` signal (:func:`abort_all`), which must not hold a
reference to the widget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _heap

if TYPE_CHECKING:
    import threading


RUNNING = ("session", "final", "predict", "export")  # what may run in the background, by kind


def abort_all(running: dict) -> None:
    """Quit whatever still runs (also when the dock is destroyed: no reference to the dead widget)."""
    if running["session"] is not None:
        running["session"].abort()
    for key in RUNNING[1:]:
        if running[key] is not None:
            running[key].quit()


def _slot(key: str, doc: str) -> property:
    """A property that reads and writes ``self._running[key]``."""

    def write(self, value) -> None:
        self._running[key] = value

    return property(lambda self: self._running[key], write, doc=doc)


class RunningWork:
    """The dock's background work, one slot per kind of :data:`RUNNING` (in ``self._running``)."""

    _running: dict
    session = _slot("session", "The training session (:class:`._live.LiveSession`) while it runs, else None.")
    predict_worker = _slot("predict", "Predict all's worker while it runs, else None.")
    export_worker = _slot("export", "Export masks' worker while it runs, else None.")

    @property
    def final_prediction(self):
        """The final model's prediction after Stop (see :mod:`._final_prediction`) while it runs, else None."""
        final = self._running["final"]
        return None if final is None or final.done else final

    @final_prediction.setter
    def final_prediction(self, value) -> None:
        self._running["final"] = value

    def _quit_final_prediction(self) -> threading.Event | None:
        """Another run starts: the final prediction's remaining tiles would overwrite it. Returns the event
        set once it has ended its piece (None when none is running)."""
        final = self.final_prediction
        if final is not None:
            final.quit()
        self.final_prediction = None
        return None if final is None else final.idle

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """End any running worker and wait for it (the dock or the viewer is closing)."""
        from qtpy.QtCore import QThreadPool

        _heap.thaw()
        abort_all(self._running)
        self.session = None
        QThreadPool.globalInstance().waitForDone(timeout_ms)
