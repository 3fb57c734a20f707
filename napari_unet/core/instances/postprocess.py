"""Instances from a semantic prediction: touching objects are split by a seeded watershed on the
distance to the background (in units of the finest voxel size, so anisotropic Z is handled), one seed
per distance maximum that stands out by more than ``h``.

Where the model's probabilities are known, the distance is weighted by how sure the model is that a
voxel is object rather than background (:func:`certainty`, squared): a network trained on real nuclei
hesitates on the thin line between two touching ones, so the neck between them sinks and they split,
while an elongated nucleus it is sure of stays whole."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

DEFAULT_H = 1.0  # how far (finest voxels) a centre must rise above the neck between two objects
DEFAULT_SIGMA = 1.0  # smoothing of the distance map (voxels), against seeds on ragged edges
CERTAINTY_POWER = 2  # how strongly a voxel the model hesitates on lowers the distance


def certainty(probabilities: np.ndarray) -> np.ndarray:
    """How sure the model is that a voxel is object (any class) or background, ``(K, *spatial)`` →
    ``(*spatial)`` float32 in [0, 1]: ``|1 - 2 p_background|`` (0 = a tie, 1 = certain)."""
    background = np.asarray(probabilities[0], np.float32)
    return np.abs(1.0 - 2.0 * background)


def split_touching(
    foreground: np.ndarray,
    spacing: Sequence[float] | None = None,
    *,
    certainty: np.ndarray | None = None,
    h: float = DEFAULT_H,
    sigma: float = DEFAULT_SIGMA,
    min_size: int = 0,
) -> np.ndarray:
    """Instances (int32; 0 = background, 1..N) of a boolean ``(*spatial)`` mask.

    Each object is one catchment basin of the smoothed distance map (times ``certainty`` squared,
    ``(*spatial)`` in [0, 1], where given), seeded at its dominant maxima: a neck lower than the centres
    by more than ``h`` separates two objects. A piece of the mask whose map never rises ``h`` above the
    background (a speck, or a thin piece the model is unsure of) gets no seed and is left out: on real
    images these are mostly false objects. Objects under ``min_size`` voxels are dropped too.
    """
    from skimage.segmentation import relabel_sequential, watershed

    foreground = np.asarray(foreground, bool)
    if not foreground.any():
        return np.zeros(foreground.shape, np.int32)
    sampling = None if spacing is None else np.asarray(spacing, float) / min(spacing)
    distance = ndi.distance_transform_edt(foreground, sampling=sampling)
    if certainty is not None:
        distance *= np.clip(certainty, 0.0, 1.0) ** CERTAINTY_POWER
    if sigma > 0:
        distance = ndi.gaussian_filter(distance, sigma)
    instances = watershed(-distance, _seeds(distance, foreground, h), mask=foreground).astype(np.int32)
    if min_size > 0:
        sizes = np.bincount(instances.ravel())
        small = np.flatnonzero(sizes < min_size)
        instances[np.isin(instances, small[small > 0])] = 0
    return relabel_sequential(instances)[0].astype(np.int32, copy=False)  # ids 1..N in order of value


def _seeds(distance: np.ndarray, foreground: np.ndarray, h: float) -> np.ndarray:
    """Seed ids: the regional maxima of the h-maxima transform of ``distance`` in ``foreground``, one
    region per peak that rises more than ``h`` above every path to a higher one or to the background (two
    equal peaks over a shallow neck are one region, where skimage's ``h_maxima`` gives two)."""
    from skimage.morphology import local_maxima, reconstruction

    lowered = reconstruction(distance - h, distance, method="dilation")
    peaks = local_maxima(lowered, connectivity=distance.ndim, allow_borders=True) & foreground
    return ndi.label(peaks, structure=np.ones((3,) * distance.ndim))[0]


def instances_from_labels(
    labels: np.ndarray, spacing: Sequence[float] | None = None, *, certainty: np.ndarray | None = None, **options
) -> np.ndarray:
    """Instances of every object class in a semantic label image (annotation values: 1 =
    background, 2.. = classes), numbered 1..N across classes. ``certainty``: the model's
    :func:`certainty` of the same ``(*spatial)`` shape, where known (without it, the outline alone
    splits); ``options`` go to :func:`split_touching`."""
    labels = np.asarray(labels)
    instances = np.zeros(labels.shape, np.int32)
    for value in np.unique(labels):
        if value < 2:
            continue
        objects = split_touching(labels == value, spacing, certainty=certainty, **options)
        objects[objects > 0] += instances.max()
        instances = np.where(objects > 0, objects, instances)
    return instances
