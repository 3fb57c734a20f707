"""Tile shapes and tiles per pass for prediction, from the model and the device."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models.model import Model

# Largest tile edge by model dimension. 2D: 1024 predicted 2.4x faster per image than 512 on 2 CPU
# cores (1536² image, float32; larger tiles waste less on overlap and run the network more efficiently,
# docs/benchmarks.md, issue 21); about 0.5 GB per tile in float32 with 16 base channels.
DEFAULT_TILE = {2: 1024, 3: 128}


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


def half_window(model: Model, window: tuple[int, ...]) -> tuple[int, ...]:
    """``window`` halved along the model's axes, kept a multiple of the pooling factor."""
    extra = len(window) - model.dim
    multiples = (1,) * extra + model.config.network.size_multiple
    return tuple(
        w if a < extra else max(m, (w // 2) // m * m) if w > m else w for a, (w, m) in enumerate(zip(window, multiples))
    )
