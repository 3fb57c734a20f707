"""A small loss-curve widget (QPainter; no plotting library needed)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QWidget

MAX_POINTS = 2000


class LossPlot(QWidget):
    """Loss per step on a log scale, thinned to at most ``MAX_POINTS`` points."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.losses: list[float] = []
        self.setMinimumHeight(90)

    def clear(self) -> None:
        self.losses = []
        self.update()

    def add(self, loss: float) -> None:
        """Keep ``loss``; it is drawn at the next ``update()`` (the dock calls it a few times a second)."""
        if math.isfinite(loss) and loss > 0:
            self.losses.append(loss)
            if len(self.losses) > MAX_POINTS:
                self.losses = self.losses[::2]

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(38, 41, 48))
        painter.setPen(QColor(150, 150, 150))
        painter.drawText(self.rect().adjusted(4, 2, -4, -2), Qt.AlignmentFlag.AlignTop, "loss (log)")
        if len(self.losses) < 2:
            return
        logs = [math.log10(v) for v in self.losses]
        low, high = min(logs), max(logs)
        span = max(high - low, 1e-6)
        width, height = self.width() - 8, self.height() - 20
        points = [QPointF(4 + width * i / (len(logs) - 1), 16 + height * (high - v) / span) for i, v in enumerate(logs)]
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor(255, 170, 0), 1.5))
        painter.drawPolyline(QPolygonF(points))
        painter.setPen(QColor(200, 200, 200))
        painter.drawText(self.rect().adjusted(4, 2, -4, -2), Qt.AlignmentFlag.AlignRight, f"{self.losses[-1]:.3f}")
