"""Where tiles go and how they are weighted when blended."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np


def tile_starts(size: int, tile: int, overlap: float, multiple: int = 1) -> list[int]:
    """Start offsets covering ``[0, size)`` with windows of ``tile`` overlapping by about ``overlap``.

    Steps are multiples of ``multiple`` (the network's pooling factor), so tiles share the pooling
    grid of a whole-image pass (unless the tile is smaller than ``multiple``: then steps are one
    tile, so the image is always covered); the last tile is flush with the end.
    """
    tile = min(tile, size)
    if tile >= size:
        return [0]
    step = min(tile, max(multiple, int(tile * (1 - overlap)) // multiple * multiple))
    starts = list(range(0, size - tile, step))
    return [*starts, size - tile]


def fitted_tile(size: int, tile: int, overlap: float, multiple: int = 1) -> int:
    """The smallest tile (a multiple of ``multiple``, at most ``tile``) that covers ``size`` with as many
    windows as ``tile`` needs: 3072 px in tiles of 1024 overlapping by 25% take four windows either way,
    but four of 952 px do it with 23% less work."""
    tile = min(tile, size)
    count = len(tile_starts(size, tile, overlap, multiple))
    while tile - multiple >= multiple and len(tile_starts(size, tile - multiple, overlap, multiple)) <= count:
        tile -= multiple
    return tile


def fitted_window(
    shape: Sequence[int], window: Sequence[int], overlap: float, multiple: Sequence[int]
) -> tuple[int, ...]:
    """:func:`fitted_tile` along every axis."""
    return tuple(fitted_tile(s, t, overlap, m) for s, t, m in zip(shape, window, multiple))


def tile_boxes(
    shape: Sequence[int], tile: Sequence[int], overlap: float, multiple: Sequence[int]
) -> Iterator[tuple[slice, ...]]:
    """Every tile box over ``shape`` (C order)."""
    starts = [tile_starts(s, t, overlap, m) for s, t, m in zip(shape, tile, multiple)]
    sizes = [min(t, s) for s, t in zip(shape, tile)]
    for corner in itertools.product(*starts):
        yield tuple(slice(c, c + t) for c, t in zip(corner, sizes))


def gaussian_weights(tile: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Importance map peaking at the tile centre (σ = ``sigma_scale`` × size, as MONAI), min > 0."""
    weights = np.ones((), np.float32)
    for size in tile:
        if size == 1:
            axis = np.ones(1, np.float32)
        else:
            coords = np.arange(size, dtype=np.float32) - (size - 1) / 2
            axis = np.exp(-0.5 * (coords / (sigma_scale * size)) ** 2)
        weights = np.multiply.outer(weights, axis)
    weights = weights.astype(np.float32)
    return np.maximum(weights / weights.max(), 1e-3)
