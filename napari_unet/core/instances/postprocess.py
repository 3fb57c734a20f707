"""Instances from a semantic prediction: touching objects are split by a seeded watershed on the
distance to the background (in physical units, so anisotropic Z is handled), one seed per
distance maximum that stands out by more than ``h``.

Where the model's probabilities are known, the distance is weighted by how sure the model is
(:func:`class_margin`, squared): a network trained on real nuclei is unsure on the thin line
between two touching ones, so the neck between them sinks and they split, while an elongated
nucleus it is sure of stays whole."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

DEFAULT_H = 1.0  # how far (physical units) a centre must rise above the neck between two objects
DEFAULT_SIGMA = 1.0  # smoothing of the distance map (voxels), against seeds on ragged edges
MARGIN_POWER = 2  # how strongly an unsure voxel lowers the distance


def class_margin(probabilities: np.ndarray) -> np.ndarray:
    """How far the winning class leads the runner-up, ``(K, *spatial)`` → ``(*spatial)`` float32 in
    [0, 1] (0 = a tie, 1 = certain)."""
    probabilities = np.asarray(probabilities, np.float32)
    top_two = np.partition(probabilities, -2, axis=0)[-2:]
    return np.clip(top_two[1] - top_two[0], 0.0, 1.0)


def split_touching(
    foreground: np.ndarray,
    spacing: Sequence[float] | None = None,
    *,
    margin: np.ndarray | None = None,
    h: float = DEFAULT_H,
    sigma: float = DEFAULT_SIGMA,
    min_size: int = 0,
) -> np.ndarray:
    """Instances (int32; 0 = background, 1..N) of a boolean ``(*spatial)`` mask.

    Each object is one catchment basin of the smoothed distance map (times ``margin`` squared,
    ``(*spatial)`` in [0, 1], where given), seeded at its h-maxima; a neck lower than the centres by
    more than ``h`` separates two objects. Objects under ``min_size`` voxels are dropped.
    """
    from skimage.segmentation import relabel_sequential, watershed

    foreground = np.asarray(foreground, bool)
    if not foreground.any():
        return np.zeros(foreground.shape, np.int32)
    distance = ndi.distance_transform_edt(foreground, sampling=spacing)
    if margin is not None:
        distance *= np.clip(margin, 0.0, 1.0) ** MARGIN_POWER
    if sigma > 0:
        distance = ndi.gaussian_filter(distance, sigma)
    seeds, _ = ndi.label(_dominant_maxima(distance, h) & foreground)
    instances = watershed(-distance, seeds, mask=foreground).astype(np.int32)
    if min_size > 0:
        sizes = np.bincount(instances.ravel())
        small = np.flatnonzero(sizes < min_size)
        instances[np.isin(instances, small[small > 0])] = 0
    return relabel_sequential(instances)[0].astype(np.int32, copy=False)  # ids 1..N in order of value


def _dominant_maxima(distance: np.ndarray, h: float) -> np.ndarray:
    """The regional maxima of the h-maxima transform, one connected region per peak that rises more than
    ``h`` above every path to a higher one (two equal peaks joined by a shallow neck are one region; in
    skimage's ``h_maxima`` they come out as two)."""
    from skimage.morphology import local_maxima, reconstruction

    lowered = reconstruction(distance - h, distance, method="dilation")
    return local_maxima(lowered, connectivity=distance.ndim, allow_borders=True)


def instances_from_labels(
    labels: np.ndarray, spacing: Sequence[float] | None = None, *, margin: np.ndarray | None = None, **options
) -> np.ndarray:
    """Instances of every object class in a semantic label image (annotation values: 1 =
    background, 2.. = classes), numbered 1..N across classes. ``margin``: the model's
    :func:`class_margin` of the same ``(*spatial)`` shape, where known; ``options`` go to
    :func:`split_touching`."""
    labels = np.asarray(labels)
    instances = np.zeros(labels.shape, np.int32)
    for value in np.unique(labels):
        if value < 2:
            continue
        objects = split_touching(labels == value, spacing, margin=margin, **options)
        objects[objects > 0] += instances.max()
        instances = np.where(objects > 0, objects, instances)
    return instances
