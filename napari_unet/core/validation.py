"""Checks of user input, done before any work starts; each failure is a one-line UserInputError."""

from __future__ import annotations

import numpy as np

from .errors import UserInputError

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


def check_spatial_ndim(spatial_shape: tuple[int, ...], dim: int) -> None:
    """A ``dim``-D model needs YX (2D) or ZYX (2D plane by plane, or 3D) spatial axes."""
    allowed = (2, 3) if dim == 2 else (3,)
    if len(spatial_shape) not in allowed:
        what = "2D (YX) or 3D (ZYX)" if dim == 2 else "3D (ZYX)"
        raise UserInputError(
            f"a {dim}D model needs a {what} image but got spatial shape {spatial_shape}; "
            "set --channel-axis for multichannel images or choose --dim"
        )


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
