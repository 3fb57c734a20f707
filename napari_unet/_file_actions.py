"""The dock's file actions: export masks, save and open sessions, export bioimage.io packages.

A mixin of :class:`~napari_unet._widget.UNetTrainerWidget`: each action runs in a napari thread
worker (:meth:`FileActions._run_disk_job`) and reports on the dock's message line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtWidgets import QFileDialog

if TYPE_CHECKING:
    from napari.layers import Labels

    from ._inputs import LayerPixels


def _save_session(path: str, pixels: LayerPixels, strokes, **options) -> Path:
    """Read the image and copy the strokes, then save the session (worker thread)."""
    import numpy as np

    from ._inputs import whole
    from .core.io.session import save_session

    channels_first = pixels.read(whole(pixels.shape))
    several = channels_first.shape[0] > 1
    image = channels_first if several else channels_first[0]
    return save_session(path, image, np.array(strokes, copy=True), channel_axis=0 if several else None, **options)


class FileActions:
    """Masks, sessions and packages written or read in the background (needs the dock's ``viewer``,
    ``image_combo``, ``strokes_combo``, ``model``, ``export_worker``, ``show_message`` and
    ``_update_buttons``)."""

    def layer_files(self) -> list[str]:
        """The files the viewer's layers were opened from: inputs, never replaced by a save or export
        (see :mod:`napari_unet.core.io.ownership`)."""
        return [str(layer.source.path) for layer in self.viewer.layers if layer.source.path]

    # ---- masks --------------------------------------------------------------------------------
    def masks_layer(self) -> Labels | None:
        """What Export masks writes: the selected Labels layer if it is shown and not the strokes (e.g. the
        instances), else the chosen image's prediction, else the selected Labels layer."""
        from napari.layers import Labels

        active = self.viewer.layers.selection.active
        active = active if isinstance(active, Labels) else None  # the viewer may be a proxy: no type() here
        if active is not None and active.visible and active is not self.strokes_combo.value:
            return active
        image = self.image_combo.value
        if image is not None and f"{image.name} prediction" in self.viewer.layers:
            return self.viewer.layers[f"{image.name} prediction"]
        return active

    def export_masks(self, path: str) -> None:
        """Write :meth:`masks_layer` as an OME-Zarr label image at ``path`` in a background worker."""
        import numpy as np
        from superqt.utils import create_worker

        from .core.io.label_writer import write_label_image
        from .core.io.ownership import LABELS, PREDICTION

        layer = self.masks_layer()
        if layer is None:
            self.show_message("nothing to export: predict first, or select a Labels layer")
            return
        data = layer.data[0] if layer.multiscale else layer.data
        if isinstance(data, np.ndarray):
            data = data.copy()  # what is on screen now, whatever is painted during the export
        image = self.image_combo.value
        is_prediction = image is not None and layer.name == f"{image.name} prediction"
        class_names = self.model.config.class_names if is_prediction and self.model is not None else ()
        name = layer.name
        self.show_message(f"exporting {name}…")
        self._run_disk_job(
            create_worker(
                write_label_image,
                data,
                path,
                spacing=tuple(layer.scale),
                translation=tuple(layer.translate),
                class_names=class_names,
                inputs=self.layer_files(),
                kind=PREDICTION if is_prediction else LABELS,
                _start_thread=False,
                _ignore_errors=True,
            ),
            lambda written: self.show_message(f"{name} exported to {written}"),
            "masks not exported",
        )

    def _export_dialog(self) -> None:
        path = QFileDialog.getSaveFileName(self, "Export masks as OME-Zarr", "", "OME-Zarr (*.zarr)")[0]
        if path:
            self.export_masks(path)

    def _export_finished(self) -> None:
        self.export_worker = None
        self._update_buttons()

    # ---- sessions -----------------------------------------------------------------------------
    def save_session(self, path: str) -> None:
        """Save the chosen image, its strokes and the model to one OME-Zarr project (in the background:
        the worker reads the layers' arrays, so a lazy image is never read on the GUI thread)."""
        from superqt.utils import create_worker

        from . import _layers
        from ._inputs import LayerPixels

        image, strokes = self.image_combo.value, self.strokes_combo.value
        if image is None or strokes is None:
            self.show_message("choose an image and its strokes layer first")
            return
        self._run_disk_job(
            create_worker(
                _save_session,
                path,
                LayerPixels.of(image),
                strokes.data,
                model=self.model,
                spacing=_layers.spatial_transform(image)["scale"],
                image_name=image.name,
                inputs=self.layer_files(),
                _start_thread=False,
                _ignore_errors=True,
            ),
            lambda written: self.show_message(f"session saved to {written}"),
            "session not saved",
        )

    def open_session(self, path: str) -> None:
        """Open a saved session: its image and strokes as layers, its model as the current one."""
        from superqt.utils import create_worker

        from .core.io.session import load_session

        def show(session) -> None:
            name = session.image_name or Path(path).stem
            kwargs = {"scale": session.spacing} if session.spacing else {}
            image = self.viewer.add_image(session.image, name=name, channel_axis=session.channel_axis, **kwargs)
            image = image[0] if isinstance(image, list) else image
            strokes = self.viewer.add_labels(session.strokes, name=f"{name} strokes", **kwargs)
            self.image_combo.value, self.strokes_combo.value = image, strokes
            self.model = session.model
            self.show_message(f"session {path} opened" + ("" if session.model else " (no model yet)"))

        self._run_disk_job(
            create_worker(load_session, path, _start_thread=False, _ignore_errors=True), show, "session not opened"
        )

    def _run_disk_job(self, worker, on_done, failure: str) -> None:
        """Run a save/open/export ``worker``; its result goes to ``on_done``, an error to the message line."""
        self.export_worker = worker
        worker.returned.connect(on_done)
        worker.errored.connect(lambda error: self.show_message(f"{failure}: {error}"))
        worker.finished.connect(self._export_finished)
        worker.start()
        self._update_buttons()

    def _save_session_dialog(self) -> None:
        path = QFileDialog.getSaveFileName(self, "Save session as", "", "napari-unet session (*.zarr)")[0]
        if path:
            self.save_session(path)

    def _open_session_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open session (.zarr folder)")
        if path:
            self.open_session(path)

    # ---- bioimage.io -------------------------------------------------------------------------
    def export_bioimageio(self, path: str) -> None:
        """Write the current model as a bioimage.io package at ``path``, tested on a crop of the chosen
        image (or the sample nuclei), in a background worker."""
        from superqt.utils import create_worker

        from ._inputs import LayerPixels, whole
        from .core.bioimageio.bioimageio_export import export_bioimageio

        if self.model is None:
            self.show_message("train or load a model first")
            return
        image = self.image_combo.value
        source = LayerPixels.of(image) if image is not None else None
        # a lazy image: the sample makes the test input, not a huge read
        pixels = source.read(whole(source.shape)) if source is not None and not source.lazy else None
        if pixels is not None and (pixels.shape[0] != self.model.in_channels or pixels.ndim - 1 != self.model.dim):
            pixels = None  # e.g. a 2D model of a Z-stack: the sample makes the test input
        self.show_message("exporting and testing the bioimage.io package…")
        self._run_disk_job(
            create_worker(
                export_bioimageio,
                self.model,
                path,
                image=pixels,
                inputs=self.layer_files(),
                _start_thread=False,
                _ignore_errors=True,
            ),
            lambda written: self.show_message(f"bioimage.io package written to {written} (passed its test)"),
            "package not exported",
        )

    def _bioimageio_dialog(self) -> None:
        path = QFileDialog.getSaveFileName(self, "Export bioimage.io package", "", "bioimage.io package (*.zip)")[0]
        if path:
            self.export_bioimageio(path if path.endswith(".zip") else f"{path}.zip")
