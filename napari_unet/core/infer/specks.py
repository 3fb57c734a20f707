"""Specks: pieces of a predicted mask far smaller than the objects around them, made background.

A model trained from a few strokes leaves scattered pieces of a few pixels where the image has object-like
texture: on the brightfield dev images, 60–75% of the connected pieces of the mask, most under 30 pixels,
against nuclei of 40–300 (docs/benchmarks.md). A piece is a speck when it is smaller than
:data:`SPECK_SHARE` of the typical object of the same array: the size of the piece that half of all object
voxels lie in (a size-weighted median, so many specks do not pull it down and a few huge pieces do not pull it
up). A piece touching the edge of the array is never a speck: it may go on beyond it (a region, a block or the
image's edge), so a region predicted with context around it is judged like the whole image, up to the typical
size, which the region measures on its own.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

SPECK_SHARE = 0.05  # a piece under this share of the typical object's size is a speck


def typical_object_size(sizes: np.ndarray) -> float:
    """The size-weighted median of piece ``sizes`` (voxels): half of all object voxels lie in pieces at most
    this big; 0 for no pieces."""
    ordered = np.sort(np.asarray(sizes))
    if not len(ordered):
        return 0.0
    cumulative = np.cumsum(ordered)
    return float(ordered[np.searchsorted(cumulative, cumulative[-1] / 2)])


def without_specks(labels: np.ndarray, share: float = SPECK_SHARE) -> np.ndarray:
    """``labels`` (uint8 annotation values: 1 = background, 2..K = classes; any number of axes) with every
    speck set to background. A piece is a face-connected group of object voxels of any class; it is a speck
    when smaller than ``share`` of :func:`typical_object_size` and away from the array's edges. Returns a new
    array (``labels`` is not changed)."""
    pieces, count = ndi.label(labels > 1)
    if count < 2:
        return labels.copy()
    sizes = np.bincount(pieces.ravel(), minlength=count + 1)
    small = sizes < share * typical_object_size(sizes[1:])
    small[0] = False
    for axis in range(labels.ndim):
        for edge in (0, -1):
            small[np.take(pieces, edge, axis=axis)] = False
    return np.where(small[pieces], 1, labels).astype(labels.dtype)
