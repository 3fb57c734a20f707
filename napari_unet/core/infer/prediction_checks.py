"""Checks of an image and tiling options against a model, before anything is predicted or written."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import UserInputError
from ..memory import items_that_fit
from ..models.model import Model
from ..validation import check_batch_size, check_spatial_ndim
from .tile_plan import default_tile_batch, window_shape


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
