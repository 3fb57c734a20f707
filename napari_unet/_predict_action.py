"""The dock's Predict all: the current model over the whole chosen image in a napari thread worker, in
memory with instances and uncertainty, or block by block into a zarr on disk for a lazy image.

A mixin of :class:`~napari_unet._widget.UNetTrainerWidget` (needs its ``viewer``, ``image_combo``,
``model``, ``status``, ``predict_worker``, ``show_message`` and ``_update_buttons``).
"""

from __future__ import annotations

import atexit
import functools
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ._inputs import whole as _whole

if TYPE_CHECKING:
    from .core.io.io import ImageData
    from .core.models.model import Model

Progress = Callable[[int, int], None]


def _predict_in_memory(model: Model, pixels, spacing: tuple[float, ...], progress: Progress):
    """Labels, instances and uncertainty of a ``(C, *spatial)`` numpy image (worker thread)."""
    from .core.api import predict
    from .core.instances.postprocess import certainty, instances_from_labels
    from .core.instances.uncertainty import entropy

    prediction = predict(model, pixels, channel_axis=0, probabilities=True, progress=progress)
    instances = instances_from_labels(prediction.labels, spacing, certainty=certainty(prediction.probabilities))
    return prediction.labels, instances, entropy(prediction.probabilities)


def _predict_to_zarr(model: Model, image: ImageData, out: Path, progress: Progress):
    """Predict a zarr/dask image block by block into the OME-Zarr ``out`` (worker thread); the labels
    come back as its full-resolution zarr array, on disk and writable (corrections can be painted)."""
    import zarr

    from .core.infer.zarr_output import predict_to_zarr

    predict_to_zarr(model, image, out, progress=progress)
    return zarr.open_array(str(out / "0"), mode="r+")


def _timed(run: Callable[[], object], after: threading.Event | None = None) -> tuple[object, float]:
    """``run()``'s result and the seconds it took (worker thread), once ``after`` is set (the last final
    prediction has ended its piece: two predictions at once would hold GBs on a 3D image)."""
    if after is not None:
        after.wait()
    started = time.perf_counter()
    return run(), time.perf_counter() - started


class PredictAction:
    """Predict all (see the module docstring)."""

    def predict_all(self) -> None:
        """Run the current model on the whole chosen image in a background worker. An image held in
        memory is predicted in memory, with instances and uncertainty; a zarr/dask one block by block
        into a zarr on disk (labels only: the others would need the whole image in memory)."""
        from superqt.utils import create_worker

        from ._inputs import LayerPixels

        image = self.image_combo.value
        if image is None or self.model is None:
            self.show_message("choose an image and train or load a model first")
            return
        pixels = LayerPixels.of(image)
        channels = pixels.data.shape[-1] if pixels.rgb else 1
        if not self.model.accepts_channels(channels):
            self.show_message(f"the model takes {self.model.in_channels} channel(s) but the image has {channels}")
            return
        previous = self._quit_final_prediction()
        progress = {"done": 0, "total": 0}  # written by the worker, read by the timer below
        run = self._prediction_run(image, pixels, progress)
        unit = "blocks" if pixels.lazy else "tiles"

        def show_progress() -> None:
            if progress["total"]:
                self.status.setText(f"predicting {image.name}: {progress['done']}/{progress['total']} {unit}")

        self.predict_worker = create_worker(_timed, run, previous, _start_thread=False, _ignore_errors=True)
        self.predict_worker.returned.connect(functools.partial(self._show_prediction, image, self.model, pixels.lazy))
        self.predict_worker.errored.connect(self._prediction_failed)
        self.predict_worker.finished.connect(self._prediction_finished)
        self._progress_timer.timeout.connect(show_progress)
        self._progress_timer.start()
        self.show_message(f"predicting {image.name}…")
        self.predict_worker.start()
        self._update_buttons()

    def _prediction_run(self, image, pixels, progress: dict) -> Callable[[], object]:
        """What the worker runs for ``image``: into a zarr for a lazy one, else in memory."""
        from . import _layers

        def record(done: int, total: int) -> None:
            progress["done"], progress["total"] = done, total

        scale, model = _layers.spatial_transform(image)["scale"], self.model
        if pixels.lazy:
            from .core.io.io import ImageData

            source = ImageData(pixels.data, spacing=scale, channel_axis=-1 if pixels.rgb else None)
            out = self._scratch() / f"{re.sub(r'[^A-Za-z0-9_-]', '_', image.name)}.zarr"
            return functools.partial(_predict_to_zarr, model, source, out, record)
        return lambda: _predict_in_memory(model, pixels.read(_whole(pixels.shape)), scale, record)

    def _show_prediction(self, image, model: Model, lazy: bool, result) -> None:
        """Put the worker's outputs in layers named after ``image`` (main thread)."""
        from . import _layers

        outputs, seconds = result
        name, shape, transform = image.name, _layers.spatial_shape(image), _layers.spatial_transform(image)
        layer_name = f"{name} prediction"
        if lazy:
            _layers.prediction_layer(self.viewer, layer_name, shape, transform, model.num_classes, data=outputs)
            self.show_message(
                f"predicted {name} in {seconds:.1f} s, block by block: no instances or uncertainty "
                "(they need the whole image in memory)"
            )
            return
        labels, instances, uncertainty = outputs
        layer = _layers.prediction_layer(self.viewer, layer_name, shape, transform, model.num_classes)
        _layers.write_region(layer, tuple(slice(0, s) for s in shape), labels)
        _layers.instances_layer(self.viewer, f"{name} instances", instances, transform)
        _layers.uncertainty_layer(self.viewer, f"{name} uncertainty", uncertainty, transform)
        self.show_message(
            f"predicted {name} in {seconds:.1f} s: {int(instances.max())} objects; Suggest shows where to paint next"
        )

    def _scratch(self) -> Path:
        """This dock's folder for zarr-backed predictions, made on first use. It lives as long as
        Python does: their layers (and corrections painted on them) outlive the dock."""
        if self._scratch_folder is None:
            self._scratch_folder = Path(tempfile.mkdtemp(prefix="napari-unet-"))
            atexit.register(shutil.rmtree, self._scratch_folder, ignore_errors=True)
        return self._scratch_folder

    def _prediction_failed(self, error: Exception) -> None:
        self.show_message(f"prediction failed: {error}")

    def _prediction_finished(self) -> None:
        self._progress_timer.stop()
        self._progress_timer.timeout.disconnect()
        self.status.setText("")
        self.predict_worker = None
        self._update_buttons()
