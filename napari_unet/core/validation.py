"""Checks of user input, done before any work starts; each failure is a one-line UserInputError."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from .errors import UserInputError

if TYPE_CHECKING:
    from .models.config import TrainConfig

MAX_CLASSES = 32


def as_channels_first(image: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """``image`` → ``(C, *spatial)``; ``channel_axis=None`` means one channel."""
    image = np.asarray(image)
    if image.dtype.kind not in "biuf":
        raise UserInputError(f"image dtype {image.dtype} is not numeric: convert it to an integer or float image")
    if channel_axis is None:
        return image[None]
    if not -image.ndim <= channel_axis < image.ndim:
        raise UserInputError(f"channel axis {channel_axis} is out of range for an image of shape {image.shape}")
    return np.moveaxis(image, channel_axis, 0)


def check_spatial_ndim(spatial_shape: tuple[int, ...], dim: int, training: bool = True) -> None:
    """A ``dim``-D model needs YX (2D) or ZYX (2D plane by plane, or 3D) spatial axes; the message
    advises what the caller can change (``training``: the model's dim too; predicting: not)."""
    allowed = (2, 3) if dim == 2 else (3,)
    if len(spatial_shape) not in allowed:
        what = "2D (YX) or 3D (ZYX)" if dim == 2 else "3D (ZYX)"
        if len(spatial_shape) > 3:
            advice = "set --channel-axis for multichannel images, or save one time point or volume as its own image"
        elif training:
            advice = "choose a 2D model (--dim 2, or a 2D --init model)"
        else:
            advice = "use a 2D model for a 2D image"
        raise UserInputError(f"a {dim}D model needs a {what} image but got spatial shape {spatial_shape}: {advice}")


def check_annotations(labels: np.ndarray, spatial_shape: tuple[int, ...]) -> np.ndarray:
    """Validate strokes (0 = unpainted, 1 = background, 2..K = classes); returns them as uint8.

    Refuses float or negative values, a shape other than the image's, nothing painted, a single
    class, and values so large the array is surely an instance mask rather than strokes.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind == "b" or labels.dtype.kind not in "iu":
        raise UserInputError(
            f"labels have dtype {labels.dtype}; strokes must be integers (0 = unpainted, 1 = background, "
            "2.. = objects): save them as an integer image"
        )
    if labels.shape != tuple(spatial_shape):
        raise UserInputError(
            f"labels shape {labels.shape} does not match the image's spatial shape {tuple(spatial_shape)}; "
            "paint the strokes on the same image (and set --channel-axis for multichannel images)"
        )
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise UserInputError(f"labels contain negative value {low}; use 0 = unpainted, 1 = background, 2.. = objects")
    if high > MAX_CLASSES:
        raise UserInputError(
            f"labels go up to {high}, more than {MAX_CLASSES} classes: this looks like an instance mask; "
            "strokes use 1 = background and 2.. for object classes"
        )
    if high == 0:
        raise UserInputError("nothing is painted: paint background (1) and at least one object class (2) first")
    present = np.unique(labels)
    present = present[present > 0]
    if len(present) < 2:
        raise UserInputError(
            f"only class {int(present[0])} is painted: paint background (1) and at least one object class (2)"
        )
    return labels.astype(np.uint8)


SEED_MAX = 2**32 - 1  # numpy's legacy generators take 0..2**32-1; keep seeds portable


def check_region(region: tuple[slice, ...] | None, spatial_shape: tuple[int, ...], name: str) -> None:
    """A clear error unless ``region`` (None: none given) is a non-empty box inside ``spatial_shape``."""
    if region is not None and (
        len(region) != len(spatial_shape) or not all(0 <= r.start < r.stop <= n for r, n in zip(region, spatial_shape))
    ):
        raise UserInputError(f"the {name} {region} does not lie inside the image of shape {spatial_shape}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_count(value, name: str, minimum: int = 1) -> int:
    """An integer (not a bool, not a float) of at least ``minimum``; ``name`` says where it came from."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise UserInputError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise UserInputError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def check_positive(value, name: str) -> float:
    """A finite number above 0 (``float('nan')`` and ``inf`` are refused)."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise UserInputError(f"{name} must be a finite number above 0, got {value!r}")
    return float(value)


def check_share(value, name: str) -> float:
    """A finite number in [0, 1]."""
    if not _is_number(value) or not 0 <= value <= 1:
        raise UserInputError(f"{name} must be a number from 0 to 1, got {value!r}")
    return float(value)


def check_stop(steps, time_budget) -> None:
    """At least one stop condition: ``steps`` (a whole number ≥ 1) or ``time_budget`` (seconds, finite, > 0)."""
    if steps is None and time_budget is None:
        raise UserInputError("give steps or time_budget (--steps, --time-budget), or training would never stop")
    if steps is not None:
        check_count(steps, "steps (--steps)")
    if time_budget is not None:
        check_positive(time_budget, "the time budget (--time-budget, seconds)")


def check_non_negative(value, name: str) -> float:
    """A finite number of at least 0."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise UserInputError(f"{name} must be a finite number of at least 0, got {value!r}")
    return float(value)


def check_train_settings(settings: TrainConfig) -> None:
    """Every number and switch of a training run (:class:`TrainConfig`), before any work starts."""
    check_stop(settings.steps, settings.time_budget)
    check_seed(settings.seed)
    if settings.batch_size is not None:
        check_count(settings.batch_size, "the batch size (--batch-size)")
    if settings.patch_size is not None:
        if not isinstance(settings.patch_size, (list, tuple)):
            raise UserInputError(f"patch_size must be a list of whole numbers, got {settings.patch_size!r}")
        for size in settings.patch_size:
            check_count(size, "patch_size")
    if settings.learning_rate is not None:
        check_positive(settings.learning_rate, "learning_rate")
    check_positive(settings.smoothness_sigma, "smoothness_sigma")
    for name in ("weight_decay", "smoothness_weight", "region_weight", "pseudo_label_weight", "start_label_weight"):
        check_non_negative(getattr(settings, name), name)
    check_share(settings.elastic_probability, "elastic_probability")
    check_share(settings.pseudo_label_confidence, "pseudo_label_confidence")
    check_share(settings.start_veto, "start_veto")
    check_share(settings.uniform_patch_share, "uniform_patch_share")
    check_share(settings.intensity_probability, "the intensity augmentation share (--intensity-augmentation)")
    for name in ("augment", "prefetch"):
        value = getattr(settings, name)
        if not isinstance(value, bool) and not (name == "prefetch" and value is None):
            raise UserInputError(f"{name} must be True or False, got {value!r}")


def check_seed(seed) -> int | None:
    """None, or a whole number from 0 to 2**32 - 1."""
    if seed is None:
        return None
    seed = check_count(seed, "the seed (--seed)", minimum=0)
    if seed > SEED_MAX:
        raise UserInputError(f"the seed (--seed) must be at most {SEED_MAX} (2**32 - 1), got {seed}")
    return seed


def check_spacing(spacing, spatial_ndim: int) -> tuple[float, ...] | None:
    """None, or one finite voxel size above 0 per spatial axis (the last ``spatial_ndim`` of a longer
    list are not taken silently: the length must match)."""
    if spacing is None:
        return None
    values = list(spacing) if isinstance(spacing, (list, tuple, np.ndarray)) else [spacing]
    if not all(_is_number(v) and math.isfinite(v) and v > 0 for v in values):
        raise UserInputError(
            f"spacing (--spacing) must be finite voxel sizes above 0, got {tuple(values)}: give e.g. 2 1 1 for ZYX"
        )
    if len(values) != spatial_ndim:
        raise UserInputError(
            f"spacing (--spacing) {tuple(values)} needs one value per spatial axis, {spatial_ndim} for this image"
        )
    return tuple(float(v) for v in values)


def check_batch_size(batch_size: int, limit: int, item: str, flag: str = "--batch-size") -> None:
    """``batch_size`` items must fit in free memory, where ``limit`` of them fit (see :mod:`.memory`)."""
    if batch_size > limit:
        fits = f"at most {limit}" if limit >= 1 else "none"
        raise UserInputError(
            f"{flag} {batch_size} does not fit in free memory ({fits} {item} would): use a smaller {flag}"
        )


def check_tiling(tile_size, overlap, batch_size) -> None:
    """Tile size (whole numbers ≥ 1), overlap in [0, 1) and tiles per pass (≥ 1) of tiled prediction."""
    if not _is_number(overlap) or not 0 <= overlap < 1:
        raise UserInputError(f"the tile overlap (--overlap) must be at least 0 and below 1, got {overlap!r}")
    for size in [tile_size] if not isinstance(tile_size, (list, tuple)) else tile_size:
        if size is not None:
            check_count(size, "the tile size (--tile-size)")
    if batch_size is not None:
        check_count(batch_size, "the batch size (tiles per pass, --batch-size)")


def check_image_values(image: np.ndarray) -> None:
    """Refuse an empty ``(C, *spatial)`` image; warn (one line each) about NaN/inf pixels and about
    channels holding a single value, where a model has nothing to see. One pass per channel, no copy."""
    image = np.asarray(image)
    if image.size == 0:
        raise UserInputError(f"the image is empty (channels-first shape {image.shape}): choose another image")
    non_finite = 0
    constant = []
    for index, channel in enumerate(image):
        finite = np.isfinite(channel) if channel.dtype.kind == "f" else None
        count = channel.size if finite is None else int(np.count_nonzero(finite))
        non_finite += channel.size - count
        if count:
            low = channel.min(where=finite, initial=np.inf) if finite is not None else channel.min()
            high = channel.max(where=finite, initial=-np.inf) if finite is not None else channel.max()
            if low == high:
                constant.append((index, low))
    if non_finite == image.size:
        _warn("the image holds no finite value (all NaN or infinite): there is nothing in it to learn or segment")
        return
    if non_finite:
        _warn(f"{non_finite} of {image.size} pixel values are NaN or infinite: treated as the dark level")
    for index, value in constant:
        which = f"channel {index} of the image" if image.shape[0] > 1 else "the image"
        _warn(f"{which} is constant (every finite value is {value}): there is nothing in it to learn or segment")


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=4)
