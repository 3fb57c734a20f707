"""One live training session in napari: previews stream into a prediction layer, painted edits stream to
the trainer, corrections on the prediction become strokes, and after Stop the final model predicts what
is on screen. Everything here runs on the main thread and handles small pieces only: no whole array."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from . import _layers
from ._final_prediction import FinalPrediction
from ._inputs import Box, LayerPixels
from ._previews import PreviewPlan, interval
from ._worker import StrokeEdit, StrokesRefreshed, TrainingJob

if TYPE_CHECKING:
    import threading

    import napari
    from napari.layers import Image, Labels

    from .core.models.model import Model
    from .core.train.messages import Report


def _check_strokes_layer(strokes: Labels, shape: tuple[int, ...]) -> None:
    """The cheap checks (dtype, shape); the values are checked in the worker."""
    from .core.errors import UserInputError

    data = strokes.data
    if np.dtype(data.dtype).kind not in "iu":
        raise UserInputError(f"the strokes layer holds {data.dtype} values: strokes must be whole numbers")
    if tuple(data.shape) != tuple(shape):
        raise UserInputError(
            f"the strokes layer's shape {tuple(data.shape)} is not the image's {tuple(shape)}: "
            "click 'New strokes layer' to paint on the image's grid"
        )


class LiveSession:
    """Drives a :class:`TrainingJob` from napari layers.

    The worker reads the layers' arrays when it starts. ``on_report(report)``, ``on_message(text)``
    and ``on_finished(model_or_None)`` let the dock show progress; after a model comes back,
    :attr:`final` predicts it on screen (then the rest of an image held in memory). The worker reads
    nothing until ``after`` is set (the previous run's final prediction has ended its piece).
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
        after: threading.Event | None = None,
    ) -> None:
        self.viewer = viewer
        self.image_layer: Image | None = image
        self.strokes_layer: Labels | None = strokes
        self.pixels = LayerPixels.of(image)
        self.shape = self.pixels.shape
        _check_strokes_layer(strokes, self.shape)
        self.transform = _layers.spatial_transform(image)
        self.prediction_name = f"{image.name} prediction"
        self.on_report, self.on_message, self.on_finished = on_report, on_message, on_finished
        self.num_classes = init.num_classes if init is not None else 2
        self.model_dim = dim or (init.dim if init is not None else min(len(self.shape), 3))
        self.job = TrainingJob(
            self.pixels,
            strokes.data,
            dim=dim,
            spacing=self.transform["scale"] if self.model_dim == 3 else None,
            init=init,
            image_name=image.name,
            intensity_probability=intensity_probability,
            after=after,
            visible=self._visible(),
        )
        self.plan = PreviewPlan(self.shape, self.model_dim)
        self.last_preview = time.perf_counter() - 1e9
        self.preview_pending = False
        self.previews_shown = 0
        self.final: FinalPrediction | None = None
        self._prediction: Labels | None = None
        self._coloured_classes = self.num_classes
        self.pause_requested = self.stop_requested = False
        before = list(viewer.layers)
        self._layer(live=True)  # now, before the worker competes for the GIL: adding a layer takes napari 0.15 s
        self._made_layer = all(layer is not self._prediction for layer in before)  # removed if nothing is shown
        worker = self.job.worker
        worker.yielded.connect(self._on_report)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_error)
        worker.paused.connect(self._on_paused)
        strokes.events.paint.connect(self._on_strokes_painted)
        strokes.events.set_data.connect(self._on_strokes_refreshed)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        worker.start()

    # ---- control ------------------------------------------------------------------------------
    @property
    def worker(self):
        return self.job.worker

    @property
    def strokes_pending(self) -> bool:
        """Whether painted edits have yet to reach the trainer."""
        return self.job.strokes_pending

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
        self.job.stop()  # also heard while it waits for the last final prediction
        worker.quit()
        if worker.is_paused:
            worker.resume()
        if self.final is not None:
            self.final.quit()

    # ---- worker signals (main thread) ---------------------------------------------------------
    def _on_report(self, report: Report) -> None:
        if report.preview is not None:
            self._show(report.preview.region, report.preview.labels)
            self.previews_shown += 1
            self.preview_pending = False
        now = time.perf_counter()
        if not self.preview_pending and now - self.last_preview >= interval(self.job.preview_seconds):
            from .core.train.messages import PreviewRequest

            self.job.send(PreviewRequest(self.plan.next_region(self._visible())))
            self.preview_pending, self.last_preview = True, now
        self.on_report(report)

    def _on_returned(self, model: Model | None) -> None:
        self._disconnect()
        if model is None:  # stopped while the first mask was being made
            self._remove_unused_layer()
            self.on_message("training stopped before the first mask: nothing was trained")
            self.on_finished(None)
            return
        visible = self._visible()
        if visible is not None:
            rest = [] if self.pixels.lazy else self.plan.rest(visible)
            threads = self.job.tuner.threads if self.job.tuner is not None else 1
            self.final = FinalPrediction(model, self.pixels, self.job.box, visible, rest, self._show_final, threads)
        self.on_finished(model)

    def _on_error(self, error: Exception) -> None:
        self._disconnect()
        self._remove_unused_layer()
        self.on_message(f"training stopped: {error}")
        self.on_finished(None)

    def _disconnect(self) -> None:
        if self.strokes_layer is not None:
            self.strokes_layer.events.paint.disconnect(self._on_strokes_painted)
            self.strokes_layer.events.set_data.disconnect(self._on_strokes_refreshed)
        if self._prediction is not None:
            self._prediction.events.paint.disconnect(self._on_prediction_painted)
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)

    def _remove_unused_layer(self) -> None:
        """A run that showed no mask removes the (empty) prediction layer it made."""
        layer = self._prediction
        if self._made_layer and not self.previews_shown and layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)

    # ---- previews -----------------------------------------------------------------------------
    def _visible(self) -> Box | None:
        """The region on screen (with a 3D model's context planes), None once the image is gone."""
        if self.image_layer is None or self.image_layer not in self.viewer.layers:
            return None
        depth = 0 if self.model_dim == 2 else 8
        return _layers.visible_region(self.viewer, self.image_layer, self.shape, depth)

    def _layer(self, live: bool) -> Labels:
        """The prediction layer, made (under the strokes) if missing; ``live``: corrections count."""
        if self._prediction is None or self._prediction not in self.viewer.layers:
            self._prediction = _layers.prediction_layer(
                self.viewer, self.prediction_name, self.shape, self.transform, self.num_classes
            )
            if live:
                self._prediction.events.paint.connect(self._on_prediction_painted)
            self._coloured_classes = self.num_classes
            if self.strokes_layer is not None and self.strokes_layer in self.viewer.layers:
                layers = self.viewer.layers  # strokes stay drawn on top, and stay the layer painted on
                layers.move(layers.index(self._prediction), layers.index(self.strokes_layer))
                layers.selection.active = self.strokes_layer
        return self._prediction

    def _show(self, region: Box, labels: np.ndarray, live: bool = True) -> None:
        layer = self._layer(live)
        top = int(labels.max())
        if top > self._coloured_classes:  # a class painted during training: give it a colour
            self._coloured_classes = top
            layer.colormap = _layers.prediction_colormap(top)
        _layers.write_region(layer, region, labels)

    def _show_final(self, region: Box, labels: np.ndarray) -> None:
        self._show(region, labels, live=False)

    # ---- strokes and corrections --------------------------------------------------------------
    def _on_strokes_painted(self, event) -> None:
        """Send what the brush changed (a few voxels), never the whole strokes array."""
        for indices, values in _layers.painted_pixels(event.value):
            self.job.send(StrokeEdit(indices, np.asarray(values)))

    def _on_strokes_refreshed(self, event) -> None:
        """Undo and redo redraw the layer without a paint event: the worker looks for what changed."""
        self.job.send(StrokesRefreshed())

    def _on_prediction_painted(self, event) -> None:
        """A correction painted on the prediction becomes a stroke (0 = eraser is ignored); the strokes
        layer's own paint event then sends it to the trainer."""
        if self.strokes_layer is None:
            self.on_message("the strokes layer was deleted: corrections cannot be recorded")
            return
        for indices, values in _layers.painted_pixels(event.value):
            keep = values > 0
            if keep.any():
                self.strokes_layer.data_setitem(tuple(i[keep] for i in indices), values[keep])

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        if layer is self.strokes_layer:
            self.strokes_layer.events.paint.disconnect(self._on_strokes_painted)
            self.strokes_layer = None
            self.on_message("strokes layer deleted: training goes on with the strokes it has")
        elif layer is self.image_layer:
            self.image_layer = None
            self.on_message("image layer deleted: training goes on with what it read")
        elif layer is self._prediction:
            self._prediction.events.paint.disconnect(self._on_prediction_painted)
            self._prediction = None
