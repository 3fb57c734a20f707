"""The Python API: ``train``, ``predict``, ``load_model``; the CLI and the widget call these same pieces."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .config import TrainConfig
from .errors import UserInputError
from .inference import Prediction
from .inference import predict as _predict
from .model import Model
from .model_sources import open_model
from .precision import check_precision
from .training import Report, train_steps
from .validation import as_channels_first, check_annotations, check_spatial_ndim


def load_model(path: str | os.PathLike) -> Model:
    """Read a model: a directory written by :meth:`Model.save`, a bioimage.io ``.zip`` napari-unet
    exported, or a shipped pretrained name (``"nuclei-2d"``, ``"nuclei-3d"``)."""
    return open_model(path)


def prepare_model(
    image: np.ndarray,
    annotations: np.ndarray,
    *,
    dim: int | None = None,
    spacing: Sequence[float] | None = None,
    init: Model | str | os.PathLike | None = None,
    base_channels: int = 16,
    depth: int = 4,
) -> tuple[Model, np.ndarray]:
    """Check ``image`` ``(C, *spatial)`` and strokes, and build the model to train.

    Returns the model (fresh, or ``init`` adapted to the painted classes) and the strokes as uint8.
    ``dim`` defaults to the image's spatial dimensionality (3D volumes train a 3D model).
    """
    spatial = image.shape[1:]
    annotations = check_annotations(annotations, spatial)
    num_classes = max(2, int(annotations.max()))
    if init is not None:
        start = open_model(init)
        if dim is not None and dim != start.dim:
            raise UserInputError(f"--dim {dim} differs from the initial model's dim {start.dim}; drop --dim")
        check_spatial_ndim(spatial, start.dim)
        model = start.adapted_to(num_classes, image.shape[0])
    else:
        if dim is None and len(spatial) not in (2, 3):
            raise UserInputError(
                f"the image has {len(spatial)} spatial axes (shape {tuple(image.shape[1:])}): set the channel axis "
                "(--channel-axis) if one holds channels, or save one time point / one volume as its own image"
            )
        dim = dim or len(spatial)
        if dim not in (2, 3):
            raise UserInputError(f"--dim must be 2 or 3, got {dim}")
        check_spatial_ndim(spatial, dim)
        if spacing is not None and len(spacing) != len(spatial):
            raise UserInputError(f"spacing {tuple(spacing)} needs one value per spatial axis {spatial}")
        if dim == 3 and spacing is None:
            spacing = [1.0] * 3
        model = Model.create(
            dim=dim,
            in_channels=image.shape[0],
            num_classes=num_classes,
            spacing=list(spacing)[-dim:] if spacing is not None else None,
            base_channels=base_channels,
            depth=depth,
        )
    model.config.normalization.fitted = model.intensity_ranges(image)
    return model, annotations


def train(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    dim: int | None = None,
    spacing: Sequence[float] | None = None,
    channel_axis: int | None = None,
    init: Model | str | os.PathLike | None = None,
    steps: int | None = None,
    time_budget: float | None = 60.0,
    device: str = "auto",
    seed: int | None = None,
    callback: Callable[[Report], None] | None = None,
    base_channels: int = 16,
    depth: int = 4,
    **settings,
) -> Model:
    """Train a U-Net on the painted voxels of ``labels`` (0 = unpainted, 1 = background, 2.. = classes).

    ``image`` is YX / ZYX (add ``channel_axis`` for channels); stops after ``steps`` or
    ``time_budget`` seconds, whichever comes first. ``init`` fine-tunes an existing model
    (same classes: all weights kept; other class count: new output layer); ``base_channels`` and
    ``depth`` shape a new network (ignored with ``init``). Extra keyword
    arguments go to :class:`TrainConfig` (``batch_size``, ``patch_size``, ``learning_rate``...).
    """
    if steps is None and time_budget is None:
        raise UserInputError("give steps or time_budget, or training would never stop")
    if steps is not None and steps < 1:
        raise UserInputError(f"steps must be at least 1, got {steps}")
    if time_budget is not None and time_budget <= 0:
        raise UserInputError(f"the time budget must be positive, got {time_budget}")
    if settings.get("batch_size") is not None and settings["batch_size"] < 1:
        raise UserInputError(f"batch size must be at least 1, got {settings['batch_size']}")
    check_precision(settings.get("precision", "auto"))
    channels_first = as_channels_first(image, channel_axis)
    if seed is not None:  # the initial weights too: the same seed gives the same model
        torch.manual_seed(seed)
    model, annotations = prepare_model(
        channels_first, labels, dim=dim, spacing=spacing, init=init, base_channels=base_channels, depth=depth
    )
    config = TrainConfig(steps=steps, time_budget=time_budget, device=device, seed=seed, **settings)
    loop = train_steps(model, channels_first, annotations, config)
    while True:
        try:
            report = next(loop)
        except StopIteration as finished:
            return finished.value
        if callback is not None:
            callback(report)


def predict(
    model: Model | str | os.PathLike,
    image: np.ndarray,
    *,
    channel_axis: int | None = None,
    probabilities: bool = False,
    device: str = "auto",
    precision: str = "auto",
    tile_size: int | Sequence[int] | None = None,
    overlap: float = 0.25,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Prediction:
    """Segment ``image`` with a model (object or directory); see :func:`core.inference.predict`."""
    model = open_model(model)
    return _predict(
        model,
        image,
        channel_axis=channel_axis,
        probabilities=probabilities,
        device=device,
        precision=precision,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        progress=progress,
    )
