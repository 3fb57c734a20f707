"""What a model's ``config.json`` history keeps about one training run (its card is written from it)."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..models.config import TrainConfig, to_dict
from ..models.precision import precision_name

if TYPE_CHECKING:
    from ..models.model import Model
    from .training import _Run


def software_versions() -> dict[str, str]:
    """Versions that shape a result: napari-unet, torch, numpy, Python."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("napari-unet")
    except PackageNotFoundError:  # a source tree
        ours = "unknown"
    python = platform.python_version()
    return {"napari_unet": ours, "torch": torch.__version__, "numpy": np.__version__, "python": python}


def history_entry(
    run: _Run,
    image: np.ndarray,
    settings: TrainConfig,
    started_at: str,
    step: int,
    loss: float,
    seconds: float,
    stopped: str,
) -> dict[str, Any]:
    """The record of one finished run: the image, the steps and time, the device and precision, the strokes,
    the chosen candidate and the settings that shape the result (``stopped``: why it ended early, or "")."""
    return {
        "date": started_at,
        "image": {"name": settings.image_name, "shape": list(image.shape), "dtype": str(image.dtype)},
        "steps": step,
        "seconds": round(seconds, 3),
        "final_loss": loss,
        "device": str(run.device),
        "precision": precision_name(run.precision),
        **({"started_in": precision_name(run.starting_precision)} if run.starting_precision != run.precision else {}),
        "patch_size": list(run.patch),
        "batch_size": run.batch_size,
        "painted_voxels": {str(k): v for k, v in run.painted.items()},
        "held_out_voxels": len(run.selection.held_labels),
        "chosen": run.selection.chosen,
        "brightness_separation": round(run.separation, 4),
        "region_weight": round(run.region_weight, 4),
        "region_block": list(run.region_block),
        "settings": {
            "steps": settings.steps,
            "time_budget": settings.time_budget,
            "learning_rate": settings.learning_rate,
            "intensity_probability": settings.intensity_probability,
            "pseudo_label_weight": settings.pseudo_label_weight,
            "seed": settings.seed,
        },
        "versions": software_versions(),
        **({"stopped": stopped} if stopped else {}),
    }


def painted_counts(annotations: np.ndarray) -> dict[int, int]:
    """Painted voxels per annotation value (training and held-out strokes together), as the record keeps them."""
    counts = np.bincount(annotations[annotations > 0])  # painted voxels only: no int64 copy of a big image
    return {value: int(count) for value, count in enumerate(counts) if value and count}


def keep_run(model: Model, run: _Run, entry: dict[str, Any]) -> None:
    """Keep in ``model`` what ``run`` chose (the pixel classifier, its settings, the choice) and ``entry``."""
    model.pixel_classifier = run.selection.classifier
    model.config.pixel_classifier = to_dict(run.selection.config)
    model.config.selection = run.selection.record()
    model.config.history.append(entry)
