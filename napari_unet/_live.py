"""One live training session in napari: previews stream into a prediction layer, strokes stream to
the trainer, corrections on the prediction become strokes. Everything here runs on the main thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from . import _layers
from ._worker import TrainingJob

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

    from .core.messages import Report
    from .core.model import Model

FIRST_PREVIEW_S = 1.5
PREVIEW_INTERVAL_S = 1.0
STROKE_SYNC_S = 0.25


class LiveSession:
    """Drives a :class:`TrainingJob` from napari layers.

    Inputs are snapshotted at construction. ``on_report(report)``, ``on_message(text)`` and
    ``on_finished(model_or_None)`` let the dock show progress.
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        image: Image,
        strokes: Labels,
        *,
        dim: int | None,
        init: Model | None,
        intensity_probability: float = 0.0,
        on_report: Callable[[Report], None],
        on_message: Callable[[str], None],
        on_finished: Callable[[Model | None], None],
    ) -> None:
        from .core.validation import check_annotations

        self.viewer = viewer
        self.image_layer: Image | None = image
        self.strokes_layer: Labels | None = strokes
        self.shape = _layers.spatial_shape(image)
        self.transform = _layers.spatial_transform(image)
        self.prediction_name = f"{image.name} prediction"
        self.on_report, self.on_message, self.on_finished = on_report, on_message, on_finished
        pixels = _layers.image_array(image)
        strokes_snapshot = check_annotations(np.array(strokes.data, copy=True), self.shape)
        self.num_classes = max(2, int(strokes_snapshot.max()))
        self.model_dim = dim or (init.dim if init is not None else min(len(self.shape), 3))
        spacing = self.transform["scale"] if self.model_dim == 3 else None
        self.job = TrainingJob(
            pixels,
            strokes_snapshot,
            dim=dim,
            spacing=spacing,
            init=init,
            image_name=image.name,
            intensity_probability=intensity_probability,
        )
        self.started = time.perf_counter()
        self.last_preview = self.started - PREVIEW_INTERVAL_S + FIRST_PREVIEW_S
        self.preview_pending = False
        self.strokes_dirty = False
        self.last_stroke_sync = 0.0
        self.previews_shown = 0
        self._tiles = self._tile_regions()
        self._next_tile = 0
        self._prediction: Labels | None = None
        self._coloured_classes = self.num_classes
        self.pause_requested = False
        self.stop_requested = False
        worker = self.job.worker
        worker.yielded.connect(self._on_report)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_error)
        worker.paused.connect(self._on_paused)
        strokes.events.paint.connect(self._on_strokes_painted)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        worker.start()

    # ---- control ------------------------------------------------------------------------------
    @property
    def worker(self):
        return self.job.worker

    def stop(self) -> None:
        """End after the current step (also when paused); ``on_finished`` then gets the model."""
        self.stop_requested = True
        self.job.stop()
        if self.worker.is_paused:
            self.worker.resume()

    def toggle_pause(self) -> bool:
        """Pause or resume; returns whether the session is now (being) paused."""
        if self.pause_requested:
            self.worker.resume()
        else:
            self.worker.pause()
        self.pause_requested = not self.pause_requested
        return self.pause_requested

    def _on_paused(self) -> None:
        # Stop, or Resume, came while the pause was on its way (superqt's resume() then did nothing)
        if self.stop_requested or not self.pause_requested:
            self.worker.resume()

    def abort(self) -> None:
        """Quit now without a model (the dock or viewer is closing); no callback fires afterwards."""
        worker = self.worker
        for signal, slot in (
            (worker.yielded, self._on_report),
            (worker.returned, self._on_returned),
            (worker.errored, self._on_error),
            (worker.paused, self._on_paused),
        ):
            signal.disconnect(slot)
        self._disconnect()
        worker.quit()
        if worker.is_paused:
            worker.resume()

    # ---- worker signals (main thread) ---------------------------------------------------------
    def _on_report(self, report: Report) -> None:
        if report.preview is not None:
            self._show_preview(report.preview.region, report.preview.labels)
            self.preview_pending = False
        now = time.perf_counter()
        if self.strokes_dirty and now - self.last_stroke_sync >= STROKE_SYNC_S:
            self._send_strokes()
            self.last_stroke_sync = now
        if not self.preview_pending and now - self.last_preview >= PREVIEW_INTERVAL_S:
            from .core.messages import PreviewRequest

            self.job.send(PreviewRequest(self._next_region()))
            self.preview_pending, self.last_preview = True, now
        self.on_report(report)

    def _on_returned(self, model: Model) -> None:
        self._disconnect()
        self.on_finished(model)

    def _on_error(self, error: Exception) -> None:
        self._disconnect()
        self.on_message(f"training stopped: {error}")
        self.on_finished(None)

    def _disconnect(self) -> None:
        if self.strokes_layer is not None:
            self.strokes_layer.events.paint.disconnect(self._on_strokes_painted)
        if self._prediction is not None:
            self._prediction.events.paint.disconnect(self._on_prediction_painted)
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)

    # ---- previews -----------------------------------------------------------------------------
    def _tile_regions(self) -> list[tuple[slice, ...]]:
        """The whole image in tiles, for progressive refresh after the visible region."""
        from .core.tiling import tile_boxes

        tile = [256] * len(self.shape)
        if self.model_dim == 2:
            tile[:-2] = [1] * (len(self.shape) - 2)
        else:
            tile[:-2] = [32] * (len(self.shape) - 2)
        return list(tile_boxes(self.shape, tile, 0.0, [1] * len(self.shape)))

    def _next_region(self) -> tuple[slice, ...]:
        """Alternate: the region on screen, then the next tile of the rest of the image."""
        if self.previews_shown % 2 == 0 and self.image_layer is not None:
            depth = 0 if self.model_dim == 2 else 8
            return _layers.visible_region(self.viewer, self.image_layer, self.shape, depth)
        region = self._tiles[self._next_tile % len(self._tiles)]
        self._next_tile += 1
        return region

    def _show_preview(self, region: tuple[slice, ...], labels: np.ndarray) -> None:
        if self._prediction is None or self._prediction not in self.viewer.layers:
            self._prediction = _layers.prediction_layer(
                self.viewer, self.prediction_name, self.shape, self.transform, self.num_classes
            )
            self._prediction.events.paint.connect(self._on_prediction_painted)
            self._coloured_classes = self.num_classes
            if self.strokes_layer is not None:  # strokes stay drawn on top, and stay the layer painted on
                layers = self.viewer.layers
                layers.move(layers.index(self._prediction), layers.index(self.strokes_layer))
                layers.selection.active = self.strokes_layer
        if labels.max() > self._coloured_classes:  # a class painted during training: give it a colour
            self._coloured_classes = max(self.num_classes, int(labels.max()))
            self._prediction.colormap = _layers.prediction_colormap(self._coloured_classes)
        _layers.write_region(self._prediction, region, labels)
        self.previews_shown += 1

    # ---- strokes and corrections --------------------------------------------------------------
    def _on_strokes_painted(self, event=None) -> None:
        self.strokes_dirty = True

    def _send_strokes(self) -> None:
        from .core.errors import UserInputError
        from .core.messages import NewAnnotations
        from .core.validation import check_annotations

        self.strokes_dirty = False
        if self.strokes_layer is None:
            return
        try:
            strokes = check_annotations(np.array(self.strokes_layer.data, copy=True), self.shape)
        except UserInputError as error:
            self.on_message(f"strokes not sent: {error}")
            return
        self.num_classes = max(self.num_classes, int(strokes.max()))
        self.job.send(NewAnnotations(strokes))

    def _on_prediction_painted(self, event) -> None:
        """A correction painted on the prediction becomes a stroke (0 = eraser is ignored)."""
        if self.strokes_layer is None:
            self.on_message("the strokes layer was deleted: corrections cannot be recorded")
            return
        for indices, values in _layers.painted_pixels(event.value):
            keep = values > 0
            if keep.any():
                self.strokes_layer.data_setitem(tuple(i[keep] for i in indices), values[keep])
        self.strokes_dirty = True

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        if layer is self.strokes_layer:
            self.strokes_layer = None
            self.on_message("strokes layer deleted: training goes on with the strokes it has")
        elif layer is self.image_layer:
            self.image_layer = None
            self.on_message("image layer deleted: training goes on with its snapshot")
        elif layer is self._prediction:
            self._prediction.events.paint.disconnect(self._on_prediction_painted)
            self._prediction = None
