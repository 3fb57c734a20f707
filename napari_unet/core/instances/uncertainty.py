"""Where the model is unsure: per-voxel entropy of its class probabilities, and the regions most
worth painting next."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """``(K, *spatial)`` probabilities → ``(*spatial)`` float32 entropy scaled to [0, 1] (1: all
    classes equally likely)."""
    probabilities = np.clip(np.asarray(probabilities, np.float32), 1e-7, 1.0)
    num_classes = probabilities.shape[0]
    if num_classes < 2:
        return np.zeros(probabilities.shape[1:], np.float32)
    value = -(probabilities * np.log(probabilities)).sum(0) / np.log(num_classes)
    return np.clip(value, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Suggestion:
    """A region to paint next: its ``box``, ``center`` (voxels) and mean uncertainty ``score``."""

    box: tuple[slice, ...]
    center: tuple[int, ...]
    score: float


def suggest_regions(
    uncertainty: np.ndarray,
    window: int | Sequence[int] = 48,
    count: int = 5,
    painted: np.ndarray | None = None,
) -> list[Suggestion]:
    """The ``count`` non-overlapping windows with the highest mean uncertainty, best first.

    ``window`` is the region edge in voxels (per axis or one for all, clipped to the image);
    voxels already ``painted`` (strokes > 0) count as certain, so suggestions go where no stroke is.
    """
    uncertainty = np.asarray(uncertainty, np.float32)
    if painted is not None:
        uncertainty = np.where(np.asarray(painted) > 0, 0.0, uncertainty)
    shape = uncertainty.shape
    sizes = [window] * len(shape) if isinstance(window, int) else list(window)
    sizes = [max(1, min(int(w), s)) for w, s in zip(sizes, shape)]
    mean = ndi.uniform_filter(uncertainty, size=sizes, mode="constant")
    starts = [sorted({*range(0, s - w + 1, max(1, w // 2)), s - w}) for s, w in zip(shape, sizes)]  # up to the edge
    candidates = []
    for corner in itertools.product(*starts):
        center = tuple(c + w // 2 for c, w in zip(corner, sizes))
        candidates.append((float(mean[center]), corner))
    candidates.sort(key=lambda item: -item[0])
    chosen: list[Suggestion] = []
    for score, corner in candidates:
        if len(chosen) == count or score <= 0:
            break
        box = tuple(slice(c, c + w) for c, w in zip(corner, sizes))
        if any(_overlap(box, other.box) for other in chosen):
            continue
        chosen.append(Suggestion(box, tuple(c + w // 2 for c, w in zip(corner, sizes)), score))
    return chosen


def _overlap(a: tuple[slice, ...], b: tuple[slice, ...]) -> bool:
    return all(x.start < y.stop and y.start < x.stop for x, y in zip(a, b))
