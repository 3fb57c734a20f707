"""The Python API: ``train``, ``predict``, ``load_model``; the CLI and the widget call these same pieces."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .errors import UserInputError
from .infer.inference import Prediction
from .infer.inference import predict as _predict
from .memory import items_that_fit
from .models.config import TrainConfig
from .models.devices import resolve_device
from .models.model import Model
from .models.model_sources import AUTO, default_start, open_model
from .models.precision import check_precision
from .train.messages import Report
from .train.patch_plan import default_batch_size, default_patch_size
from .train.training import train_steps
from .validation import (
    as_channels_first,
    check_annotations,
    check_batch_size,
    check_count,
    check_image_values,
    check_spacing,
    check_spatial_ndim,
    check_train_settings,
)


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
    init: Model | str | os.PathLike | None = AUTO,
    base_channels: int = 16,
    depth: int = 4,
) -> tuple[Model, np.ndarray]:
    """Check ``image`` ``(C, *spatial)`` and strokes, and build the model to train.

    Returns the model (a copy of ``init`` adapted to the painted classes, or a new network for ``None``) and
    the strokes as uint8. ``init="auto"`` starts from :data:`.model_sources.DEFAULT_START` where it fits the
    image and strokes (2D, grey or 8-bit RGB, one object class; see :func:`.model_sources.default_start`).
    ``dim`` defaults to the image's spatial dimensionality (3D volumes train a 3D model). Refuses an
    empty image and bad settings, and warns about NaN or constant images (see :mod:`.validation`).
    """
    spatial = image.shape[1:]
    check_image_values(image)
    if dim is not None and (isinstance(dim, bool) or dim not in (2, 3)):
        raise UserInputError(f"--dim must be 2 or 3, got {dim!r}")
    spacing = check_spacing(spacing, len(spatial))
    check_count(base_channels, "base_channels")
    check_count(depth, "depth")
    annotations = check_annotations(annotations, spatial)
    num_classes = max(2, int(annotations.max()))
    if isinstance(init, str) and init == AUTO:
        init = default_start(image, num_classes, dim, new_network_shape=(base_channels, depth) != (16, 4))
    if init is not None:  # a model object is copied: training never changes the caller's model
        start = copy.deepcopy(init) if isinstance(init, Model) else open_model(init)
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
        check_spatial_ndim(spatial, dim)
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
    init: Model | str | os.PathLike | None = AUTO,
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
    (same classes: all weights kept; other class count: new output layer); the default, ``"auto"``,
    starts 2D grey and RGB images with one object class from the shipped ``nuclei-2d-dsb`` (it beat a
    new network on real images of every kind, docs/benchmarks.md) and anything else from a new network;
    ``None`` always trains a new one. ``base_channels`` and ``depth`` shape a new network (other values
    than the defaults also mean a new network under ``"auto"``; ignored with a model ``init``). Extra keyword
    arguments go to :class:`TrainConfig` (``batch_size``, ``patch_size``, ``learning_rate``...).
    """
    config = TrainConfig(steps=steps, time_budget=time_budget, device=device, seed=seed, **settings)
    check_train_settings(config)
    check_precision(config.precision)
    channels_first = as_channels_first(image, channel_axis)
    if seed is not None:  # the initial weights too: the same seed gives the same model
        torch.manual_seed(seed)
    model, annotations = prepare_model(
        channels_first, labels, dim=dim, spacing=spacing, init=init, base_channels=base_channels, depth=depth
    )
    patch = tuple(config.patch_size or default_patch_size(model, channels_first.shape[1:]))[-model.dim :]
    fits = items_that_fit(model.config.network, patch, resolve_device(device), training=True)
    check_batch_size(config.batch_size or default_batch_size(model), fits, f"patches of {'×'.join(map(str, patch))}")
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
    keep_specks: bool = False,
) -> Prediction:
    """Segment ``image`` with a model (object or directory); see :func:`core.infer.inference.predict`
    (``keep_specks`` keeps the pieces of the mask far smaller than the image's objects)."""
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
        keep_specks=keep_specks,
    )
