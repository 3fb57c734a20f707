"""The dock's status lines while training, in words a biologist reads at a glance: which model draws the
mask on screen, and how often it is right on strokes it was not trained on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core.train.messages import Report

MODEL_WORDS = {
    "pixel classifier": "the quick pixel classifier, a random forest",
    "unet": "the U-Net",
    "blend": "the U-Net blended with the pixel classifier",
    "start": "the pretrained model as it is (every stroke agrees with it)",
}


def describe(report: Report) -> str:
    """Two lines: progress, then the model on screen and its held-out score (see
    :class:`~napari_unet.core.train.messages.Report`)."""
    progress = f"{report.device} · step {report.step} · {report.steps_per_second:.1f} steps/s · {report.elapsed:.0f} s"
    shown = MODEL_WORDS.get(report.showing, report.showing)
    if report.showing == "start":
        check = "paint where it is wrong, and the model trained on your strokes takes over"
    elif report.held_out_score is None:
        check = "too few strokes to keep some back for checking"
    else:
        check = f"{100 * report.held_out_score:.0f}% right on strokes kept back for checking"
    waiting = "; the U-Net joins in once trained, if it does as well" if report.showing == "pixel classifier" else ""
    return f"{progress}\nMask on screen: {shown}{waiting}\n{check}"
