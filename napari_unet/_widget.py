"""The "U-Net trainer" dock: pick layers, Train / Pause / Stop, save/load/export models, predict.

It holds no maths: it snapshots layers and drives the core through :class:`LiveSession` and
napari thread workers.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox
from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import qthrottled

from . import _heap
from ._file_actions import FileActions
from ._loss_plot import LossPlot
from ._predict_action import PredictAction
from ._running import RUNNING, RunningWork, abort_all
from ._suggestions import SuggestionsPanel

if TYPE_CHECKING:
    import napari

    from .core.models.model import Model
    from .core.train.messages import Report

MODEL_CHOICES = {"auto (3D for volumes)": None, "2D (plane by plane)": 2, "3D": 3}
NO_PRETRAINED = "—"
# The status and loss curve are redrawn at most this often: a redraw per step (reports come 10-30 times a
# second) halved the dock's training speed under software OpenGL (docs/benchmarks.md)
REPORT_REDRAW_MS = 500


class UNetTrainerWidget(FileActions, PredictAction, RunningWork, QWidget):
    """Paint strokes, train a U-Net live, correct its prediction, save the model."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.model: Model | None = None
        self._running: dict = dict.fromkeys(RUNNING)  # shared with the destroyed handler
        self._scratch_folder: Path | None = None
        self._make_controls()
        self._lay_out()
        self._connect()
        self._load_engine()
        self._update_buttons()

    def _make_controls(self) -> None:
        from .core.models.model_sources import PRETRAINED

        self.image_combo = ComboBox(choices=self._layer_choices("Image"))
        self.strokes_combo = ComboBox(choices=self._layer_choices("Labels"))
        self.model_combo = ComboBox(choices=list(MODEL_CHOICES), value=next(iter(MODEL_CHOICES)))
        self.model_combo.tooltip = (
            "Auto: a 3D network for a volume, 2D for a plane. 2D (plane by plane) trains about twice\n"
            "as many steps per second on a volume, but the 3D network gave the better masks on test\n"
            "volumes, even after 30 s on a CPU (docs/benchmarks.md)."
        )
        self.pretrained_combo = ComboBox(choices=[NO_PRETRAINED, *PRETRAINED], value=NO_PRETRAINED)
        self.pretrained_combo.tooltip = "\n".join(f"{name}: {about}" for name, about in PRETRAINED.items())
        self.other_images_check = QCheckBox("Also for images that look different")
        self.other_images_check.setToolTip(
            "Train with random contrast, brightness and noise (the CLI's --intensity-augmentation 1):\n"
            "the model then also works on images from another microscope, stain or noise level,\n"
            "but fits the painted image more slowly (docs/benchmarks.md)."
        )
        self.new_strokes_button = QPushButton("New strokes layer")
        self.train_button = QPushButton("Train")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.save_button = QPushButton("Save model…")
        self.load_button = QPushButton("Load model…")
        self.bioimageio_button = QPushButton("Export bioimage.io…")
        self.bioimageio_button.setToolTip("write the model as a tested bioimage.io package (.zip)")
        self.predict_button = QPushButton("Predict all")
        self.export_button = QPushButton("Export masks…")
        self.save_session_button = QPushButton("Save session…")
        self.open_session_button = QPushButton("Open session…")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.loss_plot = LossPlot()
        self._show_report = qthrottled(self._draw_report, timeout=REPORT_REDRAW_MS, leading=True, parent=self)
        self.suggestions = SuggestionsPanel(
            self.viewer, lambda: self.image_combo.value, lambda: self.strokes_combo.value, self.show_message
        )
        self._progress_timer = QTimer(self)
        self._progress_timer.setInterval(200)

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("Image", self.image_combo.native)
        strokes_row = QHBoxLayout()
        strokes_row.addWidget(self.strokes_combo.native, 1)
        strokes_row.addWidget(self.new_strokes_button)
        form.addRow("Strokes", strokes_row)
        form.addRow("Model", self.model_combo.native)
        form.addRow("Pretrained", self.pretrained_combo.native)
        form.addRow("", self.other_images_check)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Paint 1 on background, 2 (3, …) on objects."))
        for buttons in (
            (self.train_button, self.pause_button, self.stop_button),
            (self.save_button, self.load_button, self.bioimageio_button),
            (self.predict_button, self.export_button),
            (self.save_session_button, self.open_session_button),
        ):
            row = QHBoxLayout()
            for button in buttons:
                row.addWidget(button)
            layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.message)
        layout.addWidget(self.suggestions)
        layout.addStretch(1)

    def _connect(self) -> None:
        self.new_strokes_button.clicked.connect(self._new_strokes)
        self.train_button.clicked.connect(self.train)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stop)
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button.clicked.connect(self._load_dialog)
        self.bioimageio_button.clicked.connect(self._bioimageio_dialog)
        self.pretrained_combo.changed.connect(self._pretrained_chosen)
        self.predict_button.clicked.connect(self.predict_all)
        self.export_button.clicked.connect(self._export_dialog)
        self.save_session_button.clicked.connect(self._save_session_dialog)
        self.open_session_button.clicked.connect(self._open_session_dialog)
        self.image_combo.changed.connect(self.suggestions.clear)
        self.image_combo.changed.connect(self._update_buttons)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self._reset_choices)
        self.viewer.layers.events.removed.connect(_heap.thaw)  # a removed layer must be collectable
        # closeEvent reaches only top-level windows: also stop workers when napari quits or the dock goes
        from qtpy.QtWidgets import QApplication

        QApplication.instance().aboutToQuit.connect(self.shutdown)
        self.destroyed.connect(functools.partial(abort_all, self._running))
        self.destroyed.connect(_heap.thaw)

    # ---- layer choices ------------------------------------------------------------------------
    def _layer_choices(self, kind: str):
        def choices(_widget=None):
            return [(layer.name, layer) for layer in self.viewer.layers if type(layer).__name__ == kind]

        return choices

    def _reset_choices(self, event=None) -> None:
        self.image_combo.reset_choices()
        self.strokes_combo.reset_choices()
        self._update_buttons()

    def _new_strokes(self) -> None:
        from ._layers import new_strokes_layer

        image = self.image_combo.value
        if image is None:
            self.show_message("open an image first")
            return
        layer = new_strokes_layer(self.viewer, image)
        self.strokes_combo.value = layer

    # ---- training -----------------------------------------------------------------------------
    def train(self) -> None:
        """Snapshot the chosen layers and start training (fine-tuning the current model, if any)."""
        from ._live import LiveSession
        from .core.errors import UserInputError

        image, strokes = self.image_combo.value, self.strokes_combo.value
        if image is None or strokes is None:
            self.show_message("choose an image and a strokes layer (or click 'New strokes layer')")
            return
        init = self.model
        dim = MODEL_CHOICES[self.model_combo.value]
        note = ""
        if init is not None and dim is not None and dim != init.dim:
            init = None  # the user asked for another kind of network: start afresh
            note = f" (a new {dim}D network: the current model is {self.model.dim}D)"
        previous = self._quit_final_prediction()
        _heap.freeze_long_lived()  # again, if a removed layer thawed it (the previous run is let go of first)
        try:
            self.session = LiveSession(
                self.viewer,
                image,
                strokes,
                dim=dim,
                init=init,
                intensity_probability=1.0 if self.other_images_check.isChecked() else 0.0,
                on_report=self._on_report,
                on_message=self.show_message,
                on_finished=self._on_finished,
                after=previous,
            )
        except UserInputError as error:
            self.show_message(str(error))
            return
        self.loss_plot.clear()
        if init is None:
            with self.pretrained_combo.changed.blocked():
                self.pretrained_combo.value = NO_PRETRAINED
        self.show_message(f"training{note}… paint more strokes at any time, or correct the prediction")
        self._update_buttons()

    def toggle_pause(self) -> None:
        if self.session is not None:
            self.pause_button.setText("Resume" if self.session.toggle_pause() else "Pause")

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()

    def _on_report(self, report: Report) -> None:
        self.loss_plot.add(report.loss)
        self._show_report(report)

    def _draw_report(self, report: Report) -> None:
        from ._status import describe

        self.loss_plot.update()
        self.status.setText(describe(report))

    def _on_finished(self, model: Model | None) -> None:
        self._show_report.flush()
        self.final_prediction = self.session.final
        if model is not None:
            self.model = model
            with self.pretrained_combo.changed.blocked():  # the current model is no longer the shipped one
                self.pretrained_combo.value = NO_PRETRAINED
            job = self.session.job
            waiting = (
                "; the strokes painted last (or outside the trained region) wait for the next Train"
                if job.untrained_strokes or job.edits_outside
                else ""
            )
            self.show_message(
                "training stopped: the mask on screen is the final model's (the rest of the image follows); "
                f"Save model keeps it, Train continues from it{waiting}"
            )
        self.session = None
        self.pause_button.setText("Pause")
        self._update_buttons()

    # ---- models and prediction ----------------------------------------------------------------
    def save_model(self, path: str) -> None:
        from .core.errors import UserInputError

        try:
            self.model.save(path, inputs=self.layer_files())
        except (UserInputError, OSError) as error:
            self.show_message(f"model not saved: {error}")
            return
        self.show_message(f"model saved to {path}")

    def load_model(self, source: str, label: str | None = None) -> None:
        """Make ``source`` the current model: a model directory, a bioimage.io .zip napari-unet
        exported, or a pretrained name; Train then fine-tunes it. ``label`` names it in messages."""
        from .core.errors import UserInputError
        from .core.models.model_sources import open_model

        try:
            self.model = open_model(source)
        except UserInputError as error:
            self.show_message(str(error))
            return
        if label is None or label != self.pretrained_combo.value:
            with self.pretrained_combo.changed.blocked():
                self.pretrained_combo.value = NO_PRETRAINED
        self.show_message(f"loaded {label or source}: Train fine-tunes it, Predict all applies it")
        self._update_buttons()

    def _pretrained_chosen(self, name: str) -> None:
        from .core.models.model_sources import pretrained_path

        if name != NO_PRETRAINED:  # the shipped model, whatever folders the working directory holds
            self.load_model(str(pretrained_path(name)), label=name)

    def _save_dialog(self) -> None:
        path = QFileDialog.getSaveFileName(self, "Save model folder")[0]
        if path:
            self.save_model(path)

    def _load_dialog(self) -> None:
        path = QFileDialog.getOpenFileName(
            self, "Load model: its config.json, or a bioimage.io package", "", "model (config.json *.zip)"
        )[0]
        if path:
            self.load_model(str(Path(path).parent) if Path(path).name == "config.json" else path)

    # ---- display ------------------------------------------------------------------------------
    def show_message(self, text: str) -> None:
        self.message.setText(text)

    def _load_engine(self) -> None:
        """Import the trainer now, with torch and scikit-learn's forest (about 1.5 s, once per session), so
        that the first Train of a session shows its first mask as soon as later ones, and freeze what
        exists (:mod:`._heap`: short full garbage collections from now on); show the device."""
        import sklearn.ensemble  # noqa: F401  the pixel classifier's forest, imported on its first fit

        from .core.api import prepare_model  # noqa: F401  the trainer
        from .core.models.devices import resolve_device

        _heap.freeze_long_lived()
        self.status.setText(f"device: {resolve_device('auto')}")

    def _update_buttons(self) -> None:
        training = self.session is not None
        busy = training or self.predict_worker is not None or self.export_worker is not None
        self.train_button.setEnabled(not busy)
        self.pause_button.setEnabled(training)
        self.stop_button.setEnabled(training)
        self.save_button.setEnabled(self.model is not None and not training)
        self.load_button.setEnabled(not busy)
        self.pretrained_combo.enabled = not busy
        self.bioimageio_button.setEnabled(self.model is not None and not busy)
        self.predict_button.setEnabled(self.model is not None and not busy)
        self.export_button.setEnabled(not busy)
        self.save_session_button.setEnabled(not busy)
        self.open_session_button.setEnabled(not busy)
        self.suggestions.update_state()

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)

    def changeEvent(self, event) -> None:
        """The dock's × only unparents the widget (napari keeps it alive): stop training then."""
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.shutdown()
        super().changeEvent(event)
