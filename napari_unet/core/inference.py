"""Tiled prediction with Gaussian blending, for any image size, 2D plane by plane or 3D."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .devices import resolve_device
from .errors import UserInputError
from .memory import items_that_fit
from .model import BLEND, PIXEL_CLASSIFIER, Model
from .precision import autocast, check_precision, precision_name, resolve_precision, use_fixed_shape_tuning
from .tiling import gaussian_weights, tile_boxes
from .validation import as_channels_first, check_batch_size, check_image_values, check_spatial_ndim, check_tiling

DEFAULT_TILE = {2: 512, 3: 128}


@dataclass
class Prediction:
    """``labels``: spatial, uint8 in annotation values (1 = background, 2.. = classes);
    ``probabilities``: ``(K, *spatial)`` float32 or None."""

    labels: np.ndarray
    probabilities: np.ndarray | None = None


def window_shape(model: Model, spatial: Sequence[int], tile_size: int | Sequence[int] | None) -> tuple[int, ...]:
    """Tile shape over the image's spatial axes; a 2D model on ZYX gets one plane per tile."""
    if tile_size is None:
        tile_size = DEFAULT_TILE[model.dim]
    tile = [tile_size] * model.dim if isinstance(tile_size, int) else list(tile_size)
    if len(spatial) > model.dim:
        tile = [1] * (len(spatial) - model.dim) + tile
    return tuple(min(t, s) for t, s in zip(tile, spatial))


def default_tile_batch(device: torch.device | str) -> int:
    """Tiles per forward pass: 1 on CPU (as fast as more, and a quarter of the memory), 4 on GPUs."""
    return 1 if torch.device(device).type == "cpu" else 4


def labels_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """``(K, *spatial)`` probabilities → uint8 labels in annotation values (1 = background, 2..K)."""
    return (probabilities.argmax(0) + 1).astype(np.uint8)


def predict_normalized(
    model: Model,
    image: np.ndarray,
    *,
    tile_size: int | Sequence[int] | None = None,
    overlap: float = 0.25,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Blended class probabilities ``(K, *spatial)`` of a normalised ``(C, *spatial)`` image
    (``batch_size`` tiles per pass, default :func:`default_tile_batch`; the network runs in
    ``precision``, see :mod:`.precision`, and blending is float32 on the device).

    When the device runs out of memory, the pass is retried with half the tiles per pass, then
    with half the tile size, with a warning each time; only one pooling unit per tile is too much.
    A pass that overflows reduced precision is redone in float32, with a warning.
    """
    device = torch.device(device)
    dtype = resolve_precision(precision, device)
    use_fixed_shape_tuning(device)
    batch_size = batch_size or default_tile_batch(device)
    window = window_shape(model, image.shape[1:], tile_size)
    while True:
        try:
            probabilities = _blend_tiles(model, image, window, overlap, batch_size, device, dtype, progress)
        except torch.cuda.OutOfMemoryError:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            smaller = _half_window(model, window)
            if batch_size > 1:
                batch_size //= 2
                change = f"{batch_size} tile(s) per pass"
            elif smaller != window:
                window = smaller
                change = f"tiles of {'×'.join(map(str, window))}"
            else:
                advice = "close other programs" + (" or use --device cpu" if device.type != "cpu" else "")
                raise UserInputError(
                    f"out of {device.type} memory even for one tile of {'×'.join(map(str, window))}: {advice}"
                ) from None
            warnings.warn(f"out of {device.type} memory: retrying with {change}", RuntimeWarning, stacklevel=2)
            continue
        if dtype == torch.float32 or np.isfinite(probabilities).all():
            return probabilities
        warnings.warn(f"prediction overflowed {precision_name(dtype)}: redone in float32", RuntimeWarning, stacklevel=2)
        dtype = torch.float32


def chosen_probabilities(
    model: Model,
    image: np.ndarray,
    progress: Callable[[int, int], None] | None = None,
    **unet_settings,
) -> np.ndarray:
    """``(K, *spatial)`` probabilities of a normalised ``(C, *spatial)`` image from the model's chosen
    candidate (:attr:`Model.chosen`): its pixel classifier, its U-Net (:func:`predict_normalized`, which
    takes ``unet_settings``) or their blend."""
    if model.chosen == PIXEL_CLASSIFIER:
        probabilities = model.pixel_classifier.probabilities(image)
        if progress is not None:
            progress(1, 1)
        return probabilities
    probabilities = predict_normalized(model, image, progress=progress, **unet_settings)
    if model.chosen == BLEND:
        return model.combine(model.pixel_classifier.probabilities(image), probabilities)
    return probabilities


def _half_window(model: Model, window: tuple[int, ...]) -> tuple[int, ...]:
    """``window`` halved along the model's axes, kept a multiple of the pooling factor."""
    extra = len(window) - model.dim
    multiples = (1,) * extra + model.config.network.size_multiple
    return tuple(
        w if a < extra else max(m, (w // 2) // m * m) if w > m else w for a, (w, m) in enumerate(zip(window, multiples))
    )


@torch.inference_mode()
def _blend_tiles(
    model: Model,
    image: np.ndarray,
    window: tuple[int, ...],
    overlap: float,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    progress: Callable[[int, int], None] | None,
) -> np.ndarray:
    """One tiled pass with ``window``-shaped tiles, ``batch_size`` per forward pass, the network in ``dtype``."""
    network = model.network.place(device).eval()
    spatial = image.shape[1:]
    extra = len(spatial) - model.dim
    multiple = (1,) * extra + model.config.network.size_multiple
    weights = torch.from_numpy(gaussian_weights(window)).to(device)
    accumulated = torch.zeros((model.num_classes, *spatial), dtype=torch.float32, device=device)
    weight_sum = torch.zeros(spatial, dtype=torch.float32, device=device)
    boxes = list(tile_boxes(spatial, window, overlap, multiple))
    for first in range(0, len(boxes), batch_size):
        batch_boxes = boxes[first : first + batch_size]
        tiles = np.stack([image[(slice(None), *box)] for box in batch_boxes])
        tiles_t = torch.from_numpy(tiles).to(device)
        if extra:  # 2D model on a stack: drop the singleton Z of each tile
            tiles_t = tiles_t.reshape(tiles_t.shape[0], tiles_t.shape[1], *window[extra:])
        with autocast(device, dtype):
            logits = network(tiles_t)
        probabilities = torch.softmax(logits.float(), dim=1)
        probabilities = probabilities.reshape(len(batch_boxes), model.num_classes, *window)
        for box, tile_probabilities in zip(batch_boxes, probabilities):
            accumulated[(slice(None), *box)] += tile_probabilities * weights
            weight_sum[box] += weights
        if progress is not None:
            progress(min(first + batch_size, len(boxes)), len(boxes))
    return (accumulated / weight_sum).cpu().numpy()


def check_image_for_model(
    model: Model, channels_first_shape: Sequence[int], channel_axis: int | None = None, source: str | None = None
) -> None:
    """The ``(C, *spatial)`` image must have the model's channels and a spatial rank it handles;
    ``channel_axis`` is where the channels were (None: the image was read as one channel), ``source``
    what said so (e.g. "its ImageJ metadata"), for the message."""
    shape = tuple(channels_first_shape)
    if 0 in shape:
        raise UserInputError(f"the image is empty (channels-first shape {shape}): choose another image")
    channels = shape[0]
    if not model.accepts_channels(channels):
        wanted = f"{model.in_channels} channel{'s' if model.in_channels > 1 else ''}"
        if channel_axis is None:
            raise UserInputError(
                f"the model takes {wanted} but the image has no channel axis (shape {shape[1:]}): "
                f"set --channel-axis to the axis holding its {model.in_channels} channels"
            )
        said = f", from {source}" if source else ""
        raise UserInputError(
            f"the model takes {wanted} but the image has {channels} (axis {channel_axis}{said}): use a model "
            f"trained on {channels}-channel images, or save the channel{'s' if model.in_channels > 1 else ''} "
            "the model was trained on as an image of its own"
        )
    check_spatial_ndim(shape[1:], model.dim, training=False)


def check_tile_memory(
    model: Model, spatial: Sequence[int], tile_size: int | Sequence[int] | None, batch_size: int | None, device
) -> None:
    """Refuse tiles per pass (or a tile size) that cannot fit in the free memory of ``device``."""
    window = window_shape(model, spatial, tile_size)
    tiles = math.prod(-(-size // edge) for size, edge in zip(spatial, window))
    per_pass = min(batch_size or default_tile_batch(device), tiles)
    fits = items_that_fit(model.config.network, window[-model.dim :], torch.device(device), training=False)
    if per_pass > fits and per_pass > 1:
        check_batch_size(per_pass, fits, f"tiles of {'×'.join(map(str, window[-model.dim :]))}")
    elif fits < 1:
        raise UserInputError(
            f"one tile of {'×'.join(map(str, window[-model.dim :]))} does not fit in free memory: "
            "use a smaller --tile-size"
        )


def predict(
    model: Model,
    image: np.ndarray,
    *,
    channel_axis: int | None = None,
    tile_size: int | Sequence[int] | None = None,
    overlap: float = 0.25,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    probabilities: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Prediction:
    """Segment a raw image (``channel_axis`` for multichannel) with ``model``.

    A 3D model needs ZYX; a 2D model takes YX or ZYX (then plane by plane). Labels use the
    annotation values (1 = background, 2.. = classes). ``precision``: see :mod:`.precision`.
    """
    check_tiling(tile_size, overlap, batch_size)
    check_precision(precision)
    channels_first = as_channels_first(image, channel_axis)
    check_image_for_model(model, channels_first.shape, channel_axis)
    check_image_values(channels_first)
    device = resolve_device(device)
    check_tile_memory(model, channels_first.shape[1:], tile_size, batch_size, device)
    normalized = model.normalize(channels_first)
    probs = chosen_probabilities(
        model,
        normalized,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        precision=precision,
        progress=progress,
    )
    return Prediction(labels_from_probabilities(probs), probs if probabilities else None)
