"""Runs the core trainer in a napari thread worker; messages reach it through a thread-safe queue.

The worker thread never touches napari: it gets numpy snapshots when Train is clicked and talks
back only through the worker's ``yielded`` / ``returned`` / ``errored`` signals (main thread).
"""

from __future__ import annotations

import os
import queue
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .core.messages import Message, Report
    from .core.model import Model


class TrainingFailed(Exception):
    """Training broke off. superqt swallows a ``RuntimeError`` raised in a generator worker (no
    ``errored`` signal follows), and most torch failures are ``RuntimeError`` s: they are re-raised
    as this so the dock hears of them."""


def _training_threads() -> int:
    """All cores but one, so the GUI keeps a core to itself."""
    return max(1, (os.cpu_count() or 2) - 1)


class TrainingJob:
    """One training run in the background.

    ``image`` is ``(C, *spatial)``, ``strokes`` the spatial annotations (0/1/2..K);
    ``intensity_probability`` as in :class:`~napari_unet.core.config.TrainConfig`. Use
    :meth:`send` for new strokes and preview requests, :meth:`stop` to end it gracefully (the
    worker's ``returned`` signal then carries the trained model).
    """

    def __init__(
        self,
        image: np.ndarray,
        strokes: np.ndarray,
        *,
        dim: int | None,
        spacing: tuple[float, ...] | None,
        init: Model | None,
        device: str = "auto",
        image_name: str | None = None,
        intensity_probability: float = 0.0,
    ) -> None:
        from napari.qt.threading import create_worker

        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._inputs = {"image": image, "strokes": strokes, "dim": dim, "spacing": spacing, "init": init}
        self._device = device
        self._image_name = image_name
        self._intensity_probability = intensity_probability
        self.worker = create_worker(self._run, _start_thread=False, _ignore_errors=True)

    def send(self, message: Message) -> None:
        """Queue a message for the trainer; it is read after the current step (thread-safe)."""
        self._inbox.put(message)

    def stop(self) -> None:
        """Ask the trainer to finish after the current step and return its model."""
        from .core.messages import StopTraining

        self.send(StopTraining())

    def _drain(self) -> list[Any]:
        messages = []
        while True:
            try:
                messages.append(self._inbox.get_nowait())
            except queue.Empty:
                return messages

    def _run(self) -> Generator[Report, None, Model]:
        """The worker thread's generator: build the model, then relay reports and queued messages."""
        try:
            return (yield from self._train())
        except RuntimeError as error:
            raise TrainingFailed(str(error).splitlines()[0] if str(error) else type(error).__name__) from error

    def _train(self) -> Generator[Report, None, Model]:
        import torch

        from .core.api import prepare_model
        from .core.config import TrainConfig
        from .core.training import train_steps

        torch.set_num_threads(_training_threads())
        image = self._inputs["image"]
        model, annotations = prepare_model(
            image,
            self._inputs["strokes"],
            dim=self._inputs["dim"],
            spacing=self._inputs["spacing"],
            init=self._inputs["init"],
        )
        config = TrainConfig(
            steps=None,
            time_budget=None,
            device=self._device,
            image_name=self._image_name,
            intensity_probability=self._intensity_probability,
        )
        loop = train_steps(model, image, annotations, config)
        received: list[Any] | None = None
        while True:
            try:
                report = loop.send(received)
            except StopIteration as finished:
                return finished.value
            yield report
            received = self._drain() or None
