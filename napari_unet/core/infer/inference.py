"""Prediction of a whole image: input checks, the chosen candidate (U-Net, pixel classifier or blend), tiled
U-Net passes with out-of-memory and overflow retries, labels."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserInputError
from ..models.devices import resolve_device
from ..models.model import BLEND, PIXEL_CLASSIFIER, Model
from ..models.precision import check_precision, precision_name, resolve_precision, use_fixed_shape_tuning
from ..train.features import check
from ..validation import as_channels_first, check_image_values, check_tiling
from .prediction_checks import check_image_for_model, check_tile_memory
from .predictor import tile_predictor
from .sliding_window import sliding_window
from .specks import without_specks
from .tile_plan import default_tile_batch, half_window, window_shape
from .tiling import fitted_window


@dataclass
class Prediction:
    """``labels``: spatial, uint8 in annotation values (1 = background, 2.. = classes), specks removed unless
    asked to keep them (:mod:`.specks`); ``probabilities``: ``(K, *spatial)`` float32 (the model's own) or None."""

    labels: np.ndarray
    probabilities: np.ndarray | None = None


def labels_from_probabilities(
    probabilities: np.ndarray, keep_specks: bool = False, dim: int | None = None
) -> np.ndarray:
    """``(K, *spatial)`` probabilities → uint8 labels in annotation values (1 = background, 2..K): the most
    likely class, less the specks (:mod:`.specks`, judged over the last ``dim`` axes, the model's) unless
    ``keep_specks``."""
    labels = (probabilities.argmax(0) + 1).astype(np.uint8)
    return labels if keep_specks else without_specks(labels, dim)


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
    predictor: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> np.ndarray:
    """Blended class probabilities ``(K, *spatial)`` of a normalised ``(C, *spatial)`` image
    (``batch_size`` tiles per pass, default :func:`default_tile_batch`; tiles of at most ``tile_size``,
    shrunk to cover the image with as few as that size needs, see :func:`.tiling.fitted_tile`; the
    network runs in ``precision``, see :mod:`.precision`, and blending is float32). The model itself is
    left as it was (device, layout, mode): a private copy predicts (:mod:`.predictor`); a caller predicting
    many small images with one model passes its own ``predictor`` (a :func:`.predictor.tile_predictor` of
    the model in ``precision``), so that copy is made once.

    When the device runs out of memory, the pass is retried with half the tiles per pass, then
    with half the tile size, with a warning each time; only one pooling unit per tile is too much.
    A pass that overflows reduced precision is redone in float32, with a warning.
    """
    device = torch.device(device)
    dtype = resolve_precision(precision, device)
    use_fixed_shape_tuning(device)
    batch_size = batch_size or default_tile_batch(device)
    requested = window_shape(model, image.shape[1:], tile_size)
    multiple = (1,) * (image.ndim - 1 - model.dim) + model.config.network.size_multiple
    tiled = functools.partial(
        sliding_window, image=image, overlap=overlap, multiple=multiple, outputs=model.num_classes, device=device
    )
    predictor = predictor or tile_predictor(model.network, device, dtype)
    while True:
        window = fitted_window(image.shape[1:], requested, overlap, multiple)
        try:
            probabilities = tiled(predictor, window=window, batch_size=batch_size, progress=progress)
        except torch.cuda.OutOfMemoryError:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            smaller = half_window(model, requested)
            if batch_size > 1:
                batch_size //= 2
                change = f"{batch_size} tile(s) per pass"
            elif smaller != requested:
                requested = smaller
                change = f"tiles of {'×'.join(map(str, fitted_window(image.shape[1:], smaller, overlap, multiple)))}"
            else:
                advice = "close other programs" + (" or use --device cpu" if device.type != "cpu" else "")
                raise UserInputError(
                    f"out of {device.type} memory even for one tile of {'×'.join(map(str, window))}: {advice}"
                ) from None
            warnings.warn(f"out of {device.type} memory: retrying with {change}", RuntimeWarning, stacklevel=2)
            continue
        if dtype == torch.float32 or torch.isfinite(probabilities).all():
            return probabilities.cpu().numpy()
        warnings.warn(f"prediction overflowed {precision_name(dtype)}: redone in float32", RuntimeWarning, stacklevel=2)
        dtype = torch.float32
        predictor = tile_predictor(model.network, device, dtype)


def chosen_probabilities(
    model: Model,
    image: np.ndarray,
    progress: Callable[[int, int], None] | None = None,
    interrupted: Callable[[], bool] | None = None,
    classifier_image: np.ndarray | None = None,
    **unet_settings,
) -> np.ndarray:
    """``(K, *spatial)`` probabilities of a normalised ``(C, *spatial)`` image from the model's chosen
    candidate (:attr:`Model.chosen`): its pixel classifier (on ``classifier_image``, see
    :meth:`Model.classifier_input`; None: ``image``), its U-Net (:func:`predict_normalized`, which takes
    ``unet_settings``) or their blend. ``interrupted`` is asked between tiles and the classifier's
    blocks; when it says so, :class:`~napari_unet.core.train.features.Interrupted` is raised."""
    check(interrupted)
    classifier_image = image if classifier_image is None else classifier_image
    if model.chosen == PIXEL_CLASSIFIER:
        probabilities = model.pixel_classifier.probabilities(classifier_image, interrupted=interrupted)
        if progress is not None:
            progress(1, 1)
        return probabilities

    def tiles_done(done: int, total: int) -> None:
        check(interrupted)
        if progress is not None:
            progress(done, total)

    probabilities = predict_normalized(model, image, progress=tiles_done, **unet_settings)
    if model.chosen == BLEND:
        forest = model.pixel_classifier.probabilities(classifier_image, interrupted=interrupted)
        return model.combine(forest, probabilities)
    return probabilities


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
    keep_specks: bool = False,
) -> Prediction:
    """Segment a raw image (``channel_axis`` for multichannel) with ``model``.

    A 3D model needs ZYX; a 2D model takes YX or ZYX (then plane by plane). Labels use the
    annotation values (1 = background, 2.. = classes): the most likely class, less pieces far smaller than
    the image's objects (:mod:`.specks`) unless ``keep_specks``; ``probabilities`` are the model's
    own. ``precision``: see :mod:`.precision`.
    """
    check_tiling(tile_size, overlap, batch_size)
    check_precision(precision)
    channels_first = as_channels_first(image, channel_axis)
    check_image_for_model(model, channels_first.shape, channel_axis)
    check_image_values(channels_first)
    device = resolve_device(device)
    check_tile_memory(model, channels_first.shape[1:], tile_size, batch_size, device)
    ranges = model.intensity_ranges(channels_first)  # once, for the network's input and the classifier's
    normalized = model.normalize(channels_first, ranges)
    probs = chosen_probabilities(
        model,
        normalized,
        classifier_image=model.classifier_input(channels_first, normalized, ranges),
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        precision=precision,
        progress=progress,
    )
    return Prediction(labels_from_probabilities(probs, keep_specks, model.dim), probs if probabilities else None)
