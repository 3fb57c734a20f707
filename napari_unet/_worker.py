"""Runs the core trainer in a napari thread worker; messages reach it through a thread-safe queue.

The worker thread never touches napari: it gets the image's pixels (numpy or lazy) and the strokes
array when Train is clicked, copies and reads them itself, and hears of later painting only as small
:class:`StrokeEdit` s. It talks back only through the worker's ``yielded`` / ``returned`` /
``errored`` signals (main thread).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ._inputs import Box, LayerPixels, shift, training_box, whole
from ._previews import first_preview_region
from ._threads import ThreadTuner

if TYPE_CHECKING:
    from .core.models.model import Model
    from .core.train.messages import Message, Report

STROKE_SYNC_S = 0.25  # painted edits reach the trainer at most this often...
SYNC_SHARE = 0.25  # ...and the pixel classifier's refits they cause take at most about this share of the time
FIRST_TIMED_STEP = 3  # earlier reports include the set-up (optimiser, pseudo-labels): not timed
AFTER_POLL_S = 0.05  # how often a worker waiting for the previous final prediction's piece hears Stop
STOP_WITHIN_S = 0.8  # after Stop, the trainer's end pass is cut to about this (the worker ends within a second)


class TrainingFailed(Exception):
    """Training broke off. superqt swallows a ``RuntimeError`` raised in a generator worker (no
    ``errored`` signal follows), and most torch failures are ``RuntimeError`` s: they are re-raised
    as this so the dock hears of them."""


@dataclass
class StrokeEdit:
    """Voxels painted on the strokes layer: ``indices`` (one array per axis) now hold ``values``."""

    indices: tuple[np.ndarray, ...]
    values: np.ndarray


@dataclass
class StrokesRefreshed:
    """The strokes layer was redrawn from its data: napari's undo and redo change it without a paint
    event, so the worker compares its copy of the trained box with the layer's."""


class TrainingJob:
    """One training run in the background.

    ``pixels`` is the image as stored (see :class:`LayerPixels`), ``strokes`` the live spatial strokes
    array (0/1/2..K), copied in the worker; a lazy image is trained on the strokes' box plus context
    (:func:`training_box`), read in the worker. ``intensity_probability`` as in
    :class:`~napari_unet.core.models.config.TrainConfig`. The worker reads nothing before ``after`` is set
    (the previous run's final prediction has ended its piece; a Stop meanwhile returns None). The first
    mask shows the whole box when it is small, else the part of ``visible`` (the region on screen) where
    most strokes are. Use
    :meth:`send` for preview requests and :class:`StrokeEdit` s, :meth:`stop` to end it (the ``returned``
    signal then carries the model).
    """

    def __init__(
        self,
        pixels: LayerPixels,
        strokes: np.ndarray,
        *,
        dim: int | None,
        spacing: tuple[float, ...] | None,
        init: Model | None,
        device: str = "auto",
        image_name: str | None = None,
        intensity_probability: float = 0.0,
        after: threading.Event | None = None,
        visible: Box | None = None,
    ) -> None:
        from superqt.utils import create_worker  # not napari's: its window keeps every worker it made (and
        # through it the job, its model and strokes) in its task list for good: 5-20 MB more per Train

        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._stopping = threading.Event()  # Stop, also heard before the trainer's first report
        self._pixels, self._strokes_source = pixels, strokes
        self._options = {"dim": dim, "spacing": spacing, "init": init}
        self._model_dim = dim or (init.dim if init is not None else min(len(pixels.shape), 3))
        self._device, self._image_name = device, image_name
        self._intensity_probability = intensity_probability
        self._after, self._visible = after, visible
        self.box: Box = whole(pixels.shape)  # what the trainer sees of the image (set in the worker)
        self.edits_outside = 0  # painted voxels outside ``box``: they wait for the next Train
        self.untrained_strokes = False  # set at the end: strokes of the box the returned model was not fitted on
        self.preview_seconds = 0.0  # what the last preview cost the worker (read by the main thread)
        self.tuner: ThreadTuner | None = None
        self._strokes: np.ndarray | None = None
        self._unsent_since: float | None = None  # when edits arrived that the trainer has not seen
        self._last_sync = -float("inf")
        self.sync_seconds = 0.0  # what the last strokes update cost the trainer (the pixel classifier's refit)
        self.refits_sent = self.refits_reported = 0  # strokes updates sent to the trainer, and those it reported on
        self.worker = create_worker(self._run, _start_thread=False, _ignore_errors=True)

    def send(self, message: Message | StrokeEdit | StrokesRefreshed) -> None:
        """Queue a message for the trainer; it is read after the current step (thread-safe)."""
        self._inbox.put(message)

    def stop(self) -> None:
        """Ask the trainer to finish after the current step and return its model, with an end pass short
        enough that the worker ends within about :data:`STOP_WITHIN_S` (see ``StopTraining``)."""
        from .core.train.messages import StopTraining

        self._stopping.set()
        self.send(StopTraining(within=STOP_WITHIN_S))

    def _run(self) -> Generator[Report, None, Model | None]:
        """The worker thread's generator: build the model, then relay reports and queued messages; at the
        end, what the run freed goes back to the system (see :func:`~.core.memory.return_freed_memory`)."""
        from .core.memory import return_freed_memory

        try:
            return (yield from self._train())
        except RuntimeError as error:
            raise TrainingFailed(str(error).splitlines()[0] if str(error) else type(error).__name__) from error
        finally:
            return_freed_memory()

    def _read_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(C, *box)`` pixels and the strokes of the box (worker thread)."""
        if self._pixels.lazy:  # from the live array: edits queued since Train hold absolute values, set
            self.box = training_box(self._strokes_source, self._model_dim)  # again on the copy later
        self._strokes = np.array(self._strokes_source[self.box], copy=True)  # the box only: a big volume's
        return self._pixels.read(self.box), self._strokes  # strokes are not copied whole

    def _train(self) -> Generator[Report, None, Model | None]:

        from .core.api import prepare_model
        from .core.models.config import TrainConfig
        from .core.models.model_sources import AUTO
        from .core.train.training import train_steps

        while self._after is not None and not self._after.wait(AFTER_POLL_S):  # not two 3D runs' memory at once
            if self._stopping.is_set():  # (the previous final prediction quits within a piece)
                return None
        self.tuner = ThreadTuner()  # sets this thread's torch threads
        image, strokes = self._read_inputs()
        options = self._options
        if options["init"] is None:  # no model yet: the API's default start (see core.models.model_sources)
            options = {**options, "init": AUTO}
        model, annotations = prepare_model(image, strokes, **options)
        config = TrainConfig(
            steps=None,
            time_budget=None,
            device=self._device,
            image_name=self._image_name,
            intensity_probability=self._intensity_probability,
        )
        first = first_preview_region(self._visible, self.box, self._strokes)
        loop = train_steps(model, image, annotations, config, interrupted=self._stopping.is_set, preview_region=first)
        return (yield from self._relay(loop))

    def _relay(self, loop: Generator[Report, Any, Model | None]) -> Generator[Report, None, Model | None]:
        """Pass reports on (previews moved back to image coordinates) and queued messages in; keep what
        previews and strokes updates cost the trainer (the reports say) and time steps for the threads."""
        from .core.train.messages import NewAnnotations

        received: list[Any] | None = None
        while True:
            started = time.perf_counter()
            try:
                report = loop.send(received)
            except StopIteration as finished:
                self._receive(self._drain())  # edits painted just before Stop count as untrained too
                self.untrained_strokes = self._untrained(finished.value)
                return finished.value
            took = time.perf_counter() - started
            synced = any(isinstance(message, NewAnnotations) for message in received or ())
            if synced:
                self.sync_seconds = report.refit_seconds
                self.refits_reported += 1
            if report.preview is not None:
                self.preview_seconds = report.preview_seconds
                region = shift(report.preview.region, self.box, inward=False)
                report = replace(report, preview=replace(report.preview, region=region))
            elif not synced and report.step >= FIRST_TIMED_STEP:
                self.tuner.step_took(took)
            yield report
            received = self._receive(self._drain()) or None

    def _untrained(self, model: Model | None) -> bool:
        """Whether the strokes of the trained box differ from those ``model`` was last fitted on (painted
        after the last refit, or during a refit that a Stop cut short)."""
        from .core.train.run_record import painted_counts

        if model is None or not model.config.history:
            return False
        if self._unsent_since is not None:  # edits the trainer never saw
            return True
        painted = {str(value): count for value, count in painted_counts(self._strokes).items()}
        return painted != model.config.history[-1]["painted_voxels"]

    def _drain(self) -> list[Any]:
        messages = []
        while True:
            try:
                messages.append(self._inbox.get_nowait())
            except queue.Empty:
                return messages

    def _receive(self, messages: list[Any]) -> list[Message]:
        """Apply stroke edits to the worker's copy; the trainer's messages (regions moved into the box),
        plus the box's strokes when edits are due: at most every :data:`STROKE_SYNC_S`, and so that the
        refits they cause take about :data:`SYNC_SHARE` of the time; none once Stop is pressed."""
        from .core.train.messages import NewAnnotations, PreviewRequest

        out: list[Message] = []
        refreshed = False
        for message in messages:
            if isinstance(message, StrokeEdit):
                self._apply(message)
            elif isinstance(message, StrokesRefreshed):
                refreshed = True
            elif isinstance(message, PreviewRequest) and message.region is not None:
                region = shift(message.region, self.box, True)
                if region is not None:
                    out.append(PreviewRequest(region))
            else:
                out.append(message)
        if refreshed:
            self._take_unpainted_changes()  # after the edits: the layer is the latest word
        now = time.perf_counter()
        due = now - self._last_sync >= max(STROKE_SYNC_S, self.sync_seconds / SYNC_SHARE)
        stopping = self._stopping.is_set()  # no refit then: the strokes wait in the layer for the next Train
        if self._unsent_since is not None and now - self._unsent_since >= STROKE_SYNC_S and due and not stopping:
            self._unsent_since, self._last_sync = None, now
            self.refits_sent += 1
            out.insert(0, NewAnnotations(self._strokes))
        return out

    def _apply(self, edit: StrokeEdit) -> None:
        """Write ``edit`` into the worker's strokes of the trained box; count what falls outside it."""
        inside = np.all([(i >= b.start) & (i < b.stop) for i, b in zip(edit.indices, self.box)], axis=0)
        self.edits_outside += int((~inside).sum())
        if not inside.any():
            return
        local = tuple(i[inside] - b.start for i, b in zip(edit.indices, self.box))
        self._strokes[local] = np.broadcast_to(edit.values, inside.shape)[inside]
        if self._unsent_since is None:
            self._unsent_since = time.perf_counter()

    def _take_unpainted_changes(self) -> None:
        """Copy what differs between the layer's strokes and the worker's, in the trained box (an undo or
        a redo)."""
        live = np.asarray(self._strokes_source[self.box])
        changed = live != self._strokes
        if changed.any():
            self._strokes[changed] = live[changed]
            if self._unsent_since is None:
                self._unsent_since = time.perf_counter()

    @property
    def strokes_pending(self) -> bool:
        """Whether painted edits wait to reach the trainer (read by the main thread)."""
        return self._unsent_since is not None or not self._inbox.empty()
