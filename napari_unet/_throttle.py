"""Show the latest of many quick updates at most a few times a second (main thread)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, QTimer

_NOTHING = object()


class Throttled:
    """``throttled(value)`` calls ``show(value)`` at once when nothing was shown in the last ``interval_ms``;
    otherwise it keeps ``value`` and shows the latest one kept when the interval ends, so the last value is
    always shown and ``show`` runs at most once per interval."""

    def __init__(self, show: Callable[[Any], None], interval_ms: int, parent: QObject | None = None) -> None:
        self._show = show
        self._pending: Any = _NOTHING
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.flush)

    def __call__(self, value: Any) -> None:
        if self._timer.isActive():
            self._pending = value
            return
        self._show(value)
        self._timer.start()

    def flush(self) -> None:
        """Show the value kept back, if any, now."""
        if self._pending is _NOTHING:
            return
        value, self._pending = self._pending, _NOTHING
        self._show(value)
        self._timer.start()
