"""The dock's "Where to paint next" section: the unpainted regions where the model is least sure,
listed and ringed in a Points layer; clicking one takes the user there with the brush ready."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from qtpy.QtWidgets import QGroupBox, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout

from . import _layers

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

WINDOW = 48  # region edge in voxels, in-plane
WINDOW_Z = 8  # and across planes, in 3D
COUNT = 5


class SuggestionsPanel(QGroupBox):
    """A Suggest button and the list of regions it found for the image that ``image()`` returns;
    ``strokes()`` gives the layer whose painted voxels are skipped and which is selected to paint."""

    def __init__(
        self,
        viewer: napari.Viewer,
        image: Callable[[], Image | None],
        strokes: Callable[[], Labels | None],
        on_message: Callable[[str], None],
    ) -> None:
        super().__init__("Where to paint next")
        self.viewer = viewer
        self._image, self._strokes, self._on_message = image, strokes, on_message
        self._targets: list[tuple[float, ...]] = []  # world coordinates of the listed centres
        self.suggest_button = QPushButton("Suggest")
        self.suggest_button.setToolTip("Predict all first: suggestions come from its uncertainty layer")
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        layout = QVBoxLayout(self)
        layout.addWidget(self.suggest_button)
        layout.addWidget(self.list)
        self.suggest_button.clicked.connect(self.suggest)
        self.list.itemClicked.connect(self.go_to)
        self.list.itemActivated.connect(self.go_to)  # Enter on the keyboard
        self.update_state()

    def uncertainty_layer(self) -> Image | None:
        """The chosen image's uncertainty layer (made by Predict all), if there is one."""
        image = self._image()
        if image is None or f"{image.name} uncertainty" not in self.viewer.layers:
            return None
        return self.viewer.layers[f"{image.name} uncertainty"]

    def update_state(self) -> None:
        self.suggest_button.setEnabled(self.uncertainty_layer() is not None)

    def clear(self) -> None:
        self.list.clear()
        self._targets = []

    def suggest(self) -> None:
        """List the most uncertain unpainted regions and ring their centres in "<image> paint here"."""
        import numpy as np

        from .core.instances.uncertainty import suggest_regions

        image, layer = self._image(), self.uncertainty_layer()
        if image is None or layer is None:
            self._on_message("Predict all first: suggestions come from the uncertainty it shows")
            return
        uncertainty = np.asarray(layer.data)
        ndim = uncertainty.ndim
        strokes = self._strokes()
        painted = strokes.data if strokes is not None and strokes.data.shape == uncertainty.shape else None
        window = (WINDOW_Z,) * (ndim - 2) + (WINDOW, WINDOW)
        found = suggest_regions(uncertainty, window=window, count=COUNT, painted=painted)
        centres = np.array([s.center for s in found], float).reshape(-1, ndim)
        scale, translate = np.asarray(layer.scale), np.asarray(layer.translate)
        self.clear()
        self._targets = [tuple(centre * scale + translate) for centre in centres]
        for rank, suggestion in enumerate(found, 1):
            where = ", ".join(str(int(c)) for c in suggestion.center)
            self.list.addItem(f"{rank}. ({where}) uncertainty {suggestion.score:.2f}")
        transform = {"scale": tuple(scale), "translate": tuple(translate)}
        _layers.suggestions_layer(self.viewer, f"{image.name} paint here", centres, transform, size=WINDOW)
        if found:
            self._on_message(f"{len(found)} regions where the model is unsure: click one to paint there")
        else:
            self._on_message("no unpainted region where the model is unsure")

    def go_to(self, item: QListWidgetItem) -> None:
        """Centre the view on the item's region (moving to its plane in 3D) and select the strokes to paint."""
        world = self._targets[self.list.row(item)]
        dims = self.viewer.dims
        offset = dims.ndim - len(world)  # napari aligns layers on their last axes
        for axis, value in enumerate(world):
            if offset + axis not in dims.displayed:
                dims.set_point(offset + axis, value)
        self.viewer.camera.center = tuple(world[axis - offset] for axis in dims.displayed if axis >= offset)
        strokes = self._strokes()
        if strokes is not None:
            strokes.visible = True
            layers = self.viewer.layers
            layers.move(layers.index(strokes), len(layers))  # on top, so new strokes show
            layers.selection.active = strokes
            strokes.mode = "paint"
