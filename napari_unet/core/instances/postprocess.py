"""Instances from a semantic prediction: touching objects are split by a seeded watershed on the
distance to the background (in physical units, so anisotropic Z is handled), one seed per
distance maximum that stands out by more than ``h``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

DEFAULT_H = 0.5  # how far (physical units) a centre must rise above the neck between two objects
DEFAULT_SIGMA = 1.0  # smoothing of the distance map (voxels), against seeds on ragged edges


def split_touching(
    foreground: np.ndarray,
    spacing: Sequence[float] | None = None,
    *,
    h: float = DEFAULT_H,
    sigma: float = DEFAULT_SIGMA,
    min_size: int = 0,
) -> np.ndarray:
    """Instances (int32; 0 = background, 1..N) of a boolean ``(*spatial)`` mask.

    Each object is one catchment basin of the smoothed distance map, seeded at its h-maxima; a
    neck narrower than the centres by more than ``h`` separates two objects. Objects under
    ``min_size`` voxels are dropped.
    """
    from skimage.morphology import h_maxima
    from skimage.segmentation import relabel_sequential, watershed

    foreground = np.asarray(foreground, bool)
    if not foreground.any():
        return np.zeros(foreground.shape, np.int32)
    distance = ndi.distance_transform_edt(foreground, sampling=spacing)
    if sigma > 0:
        distance = ndi.gaussian_filter(distance, sigma)
    seeds, _ = ndi.label(h_maxima(distance, h) & foreground)
    instances = watershed(-distance, seeds, mask=foreground).astype(np.int32)
    if min_size > 0:
        sizes = np.bincount(instances.ravel())
        small = np.flatnonzero(sizes < min_size)
        instances[np.isin(instances, small[small > 0])] = 0
    return relabel_sequential(instances)[0].astype(np.int32, copy=False)  # ids 1..N in order of value


def instances_from_labels(labels: np.ndarray, spacing: Sequence[float] | None = None, **options) -> np.ndarray:
    """Instances of every object class in a semantic label image (annotation values: 1 =
    background, 2.. = classes), numbered 1..N across classes; ``options`` go to
    :func:`split_touching`."""
    labels = np.asarray(labels)
    instances = np.zeros(labels.shape, np.int32)
    for value in np.unique(labels):
        if value < 2:
            continue
        objects = split_touching(labels == value, spacing, **options)
        objects[objects > 0] += instances.max()
        instances = np.where(objects > 0, objects, instances)
    return instances
