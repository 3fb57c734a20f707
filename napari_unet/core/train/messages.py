"""What the trainer and its caller say to each other: the :class:`Report` it yields after each step, and
the messages (:data:`Message`) sent into it with ``send()``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.model import UNET


@dataclass
class Preview:
    """Predicted labels (annotation values) of ``region`` (spatial slices) of the training image."""

    region: tuple[slice, ...]
    labels: np.ndarray


@dataclass
class Report:
    """What the trainer tells after each step (step 0: the pixel classifier is ready, before any U-Net
    step). ``showing``: the candidate previews come from (see :mod:`.selection`); ``held_out_score``:
    its balanced accuracy on the held-out strokes (None when too few strokes to hold any out); for a trained
    start shown as it is (``"start"``), the share of every class's strokes it gets right (all of them).
    ``refit_seconds``: what the strokes received since the last report cost (the pixel classifier's refit);
    ``preview_seconds``: what ``preview`` cost."""

    step: int
    loss: float
    elapsed: float
    steps_per_second: float
    learning_rate: float
    device: str
    preview: Preview | None = None
    showing: str = UNET
    held_out_score: float | None = None
    refit_seconds: float = 0.0
    preview_seconds: float = 0.0


@dataclass
class NewAnnotations:
    """Send this to replace the strokes the trainer samples from (same shape as before)."""

    annotations: np.ndarray


@dataclass
class PreviewRequest:
    """Send this to get the prediction of ``region`` (None: whole image) with the next report."""

    region: tuple[slice, ...] | None = None


@dataclass
class StopTraining:
    """Send this to end training after the current step; the generator then returns the model.

    ``within``: seconds the caller wants the model back in (a user pressing Stop). The end pass (batch-norm
    recalibration, the final held-out score) then takes at most about that: fewer recalibration batches,
    or none (the running statistics of training stay), and no final score when the last one took longer.
    None: the full end pass."""

    within: float | None = None


Message = NewAnnotations | PreviewRequest | StopTraining
