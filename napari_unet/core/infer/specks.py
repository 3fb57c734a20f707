"""Specks: pieces of a predicted mask far smaller than the objects around them, made background.

A model trained from a few strokes leaves scattered pieces of a few pixels where the image has object-like
texture: on the three brightfield dev images, 39–118 of the 96–182 connected pieces of the mask lay wholly on
background, with a median size of 6–12 pixels, against nuclei of 36–52 pixels at the 10th percentile
(docs/benchmarks.md). A piece of one class is a speck when it is smaller than :data:`SPECK_FRACTION` of that
class's reference size in the same array: the smallest of the biggest pieces that together hold
``1 - REFERENCE_TAIL`` of the class's voxels (a size-weighted lower quantile: many specks hold few voxels and do
not pull it down, and a flooded piece does not push it up unless it holds more than ``1 - REFERENCE_TAIL`` of
the class). A piece touching the edge of the array is never a speck: it may go on beyond it (a region, a block
or the image's edge), so a region predicted with context around it is judged like the whole image, up to the
reference size, which the region measures on its own.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

SPECK_FRACTION = 0.1  # a piece under this fraction of its class's reference size is a speck
REFERENCE_TAIL = 0.1  # the share of a class's voxels in its smallest pieces, left out of the reference size


def reference_size(sizes: np.ndarray) -> float:
    """The smallest of the biggest pieces that together hold ``1 - REFERENCE_TAIL`` of the voxels, from piece
    ``sizes`` (voxels; a size-weighted quantile); 0 for no pieces."""
    ordered = np.sort(np.asarray(sizes))
    if not len(ordered):
        return 0.0
    cumulative = np.cumsum(ordered)
    return float(ordered[np.searchsorted(cumulative, cumulative[-1] * REFERENCE_TAIL)])


def without_specks(labels: np.ndarray, dim: int | None = None) -> np.ndarray:
    """``labels`` (uint8 annotation values: 1 = background, 2..K = classes) with every speck set to
    background: a face-connected piece of one class smaller than :data:`SPECK_FRACTION` of the class's
    :func:`reference_size`, away from the array's edges. ``dim``: the model's spatial axes (the last ``dim``);
    a 2D model's stack is cleaned plane by plane, as it was predicted (None: all axes together). Returns a new
    array (``labels`` is not changed)."""
    labels = np.asarray(labels)
    dim = labels.ndim if dim is None else dim
    cleaned = labels.copy()
    for leading in np.ndindex(labels.shape[: labels.ndim - dim]):
        plane = cleaned[leading]
        for value in np.unique(plane[plane > 1]):
            plane[_specks(plane == value)] = 1
    return cleaned


def _specks(mask: np.ndarray) -> np.ndarray:
    """Where the specks of one class's boolean ``mask`` are (see :func:`without_specks`)."""
    pieces, count = ndi.label(mask)
    if count < 2:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(pieces.ravel(), minlength=count + 1)
    small = sizes < SPECK_FRACTION * reference_size(sizes[1:])
    small[0] = False
    for axis in range(mask.ndim):
        for edge in (0, -1):
            small[np.take(pieces, edge, axis=axis)] = False
    return small[pieces]
