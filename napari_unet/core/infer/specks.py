"""Specks: pieces of a predicted mask far smaller than the objects around them, made background.

A model trained from a few strokes leaves scattered pieces of a few pixels where the image has object-like
texture: on the brightfield dev images, 60–75% of the connected pieces of the mask, most under 30 pixels,
against nuclei of 40–300 (docs/benchmarks.md). A piece is a speck when it is smaller than
:data:`SPECK_SHARE` of the reference size of the same array: the smallest of the pieces that hold
``1 - SMALL_SHARE`` of all object voxels (a size-weighted lower quantile: many specks hold few voxels and do
not pull it down, and one flooded piece holding most of the mask does not push it up, as a size-weighted
median did, erasing every real nucleus beside such a piece on a brightfield train image). A piece touching
the edge of the array is never a speck: it may go on beyond it (a region, a block or the image's edge), so a
region predicted with context around it is judged like the whole image, up to the reference size, which the
region measures on its own.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

SPECK_SHARE = 0.1  # a piece under this share of the reference size is a speck
SMALL_SHARE = 0.1  # the share of object voxels in the smallest pieces, left out of the reference size


def reference_size(sizes: np.ndarray) -> float:
    """The smallest of the biggest pieces that together hold ``1 - SMALL_SHARE`` of the object voxels, from
    piece ``sizes`` (voxels; a size-weighted quantile); 0 for no pieces."""
    ordered = np.sort(np.asarray(sizes))
    if not len(ordered):
        return 0.0
    cumulative = np.cumsum(ordered)
    return float(ordered[np.searchsorted(cumulative, cumulative[-1] * SMALL_SHARE)])


def without_specks(labels: np.ndarray, share: float = SPECK_SHARE) -> np.ndarray:
    """``labels`` (uint8 annotation values: 1 = background, 2..K = classes; any number of axes) with every
    speck set to background. A piece is a face-connected group of object voxels of any class; it is a speck
    when smaller than ``share`` of :func:`reference_size` and away from the array's edges. Returns a new
    array (``labels`` is not changed)."""
    pieces, count = ndi.label(labels > 1)
    if count < 2:
        return labels.copy()
    sizes = np.bincount(pieces.ravel(), minlength=count + 1)
    small = sizes < share * reference_size(sizes[1:])
    small[0] = False
    for axis in range(labels.ndim):
        for edge in (0, -1):
            small[np.take(pieces, edge, axis=axis)] = False
    return np.where(small[pieces], 1, labels).astype(labels.dtype)
