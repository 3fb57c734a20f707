"""When the painted classes differ in brightness, say so to the loss: how much the region term counts.

The region term (:func:`.losses.region_fit`) asks each predicted class to keep one brightness in
each neighbourhood. That is true of fluorescent nuclei against their background, and it places
boundaries on the image's edges where strokes do not reach; it is false where classes differ by
texture or shape alone.
The strokes tell which case this is: if a brightness threshold separates every pair of painted
classes well (in some channel), the term gets its full weight; if not, none. Images with several
channels (stained tissue in RGB) never get it: there the strokes separate well, yet the term drew
the U-Net over the background and cost 0.16 foreground IoU on real dev images (docs/benchmarks.md).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.stats import rankdata

FULL_AT = 0.9  # separation (|2 AUC - 1|) from which the term counts fully: AUC 0.95
NONE_AT = 0.5  # separation up to which it does not count: AUC 0.75
MAX_VOXELS = 20_000  # painted voxels per class looked at (a fixed, evenly spaced subset beyond that)


def brightness_separation(image: np.ndarray, voxels_by_class: dict[int, np.ndarray]) -> float:
    """How well one brightness threshold separates the painted classes: ``|2 AUC - 1|`` for the
    worst pair of classes, in the channel that separates that pair best (1 = perfectly, 0 = not).

    ``image`` is ``(C, *spatial)``; ``voxels_by_class`` maps each class to flat spatial indices.
    Fewer than two painted classes: 0.
    """
    channels = image.reshape(image.shape[0], -1)
    samples = {k: channels[:, _subset(v)] for k, v in voxels_by_class.items() if len(v)}
    if len(samples) < 2:
        return 0.0
    worst = 1.0
    for a, b in itertools.combinations(samples.values(), 2):
        best = max(_separation(a[c], b[c]) for c in range(channels.shape[0]))
        worst = min(worst, best)
    return worst


def scaled_region_weight(separation: float, weight: float, channels: int = 1) -> float:
    """``weight`` scaled by the brightness separation: 0 up to ``NONE_AT``, full from ``FULL_AT``;
    0 for an image of more than one channel."""
    if channels > 1:
        return 0.0
    return weight * float(np.clip((separation - NONE_AT) / (FULL_AT - NONE_AT), 0.0, 1.0))


def _subset(indices: np.ndarray) -> np.ndarray:
    if len(indices) <= MAX_VOXELS:
        return indices
    return indices[np.linspace(0, len(indices) - 1, MAX_VOXELS).astype(np.int64)]


def _separation(a: np.ndarray, b: np.ndarray) -> float:
    """``|2 AUC - 1|`` of the two samples (Mann-Whitney, ties counted half)."""
    ranks = rankdata(np.concatenate([a, b]))
    auc = (ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2) / (len(a) * len(b))
    return abs(2 * auc - 1)
