"""Held-out strokes: a share of the painted voxels no candidate trains on, to score them honestly.

Per class, whole pieces of strokes are held out: connected components, or, for a class painted in
fewer than ``MIN_PIECES`` strokes, contiguous chunks of its strokes (cells of a ``PIECE_EDGE`` grid).
Held-out voxels within ``gap`` voxels of a training voxel are dropped from scoring, so no score rests
on a pixel whose neighbour was learnt. The choice is deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

HELD_OUT_SHARE = 0.2
GAP = 3  # voxels between a held-out voxel and the nearest training voxel (at least)
MIN_PIECES = 4  # a class painted in fewer strokes is cut into chunks
PIECE_EDGE = 16  # voxels: the grid cells that cut a long stroke into chunks
WINDOW_CONTEXT = 32  # voxels of context around held-out voxels when the U-Net scores them


@dataclass
class StrokeSplit:
    """``training``: the strokes candidates fit (held-out pieces set to 0), same shape as the strokes;
    ``voxels``: flat indices of the scored held-out voxels; ``labels``: their annotation values."""

    training: np.ndarray
    voxels: np.ndarray
    labels: np.ndarray

    @property
    def classes(self) -> list[int]:
        return sorted(int(v) for v in np.unique(self.labels))


def _pieces(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Labelled pieces of one class's strokes: components, or chunks of them when there are few."""
    structure = np.ones((3,) * mask.ndim, bool)
    components, count = ndi.label(mask, structure)
    if count >= MIN_PIECES:
        return components, count
    cells = np.zeros(mask.shape, np.int64)
    for axis, size in enumerate(mask.shape):
        index = np.arange(size) // PIECE_EDGE
        cells = cells * (size // PIECE_EDGE + 1) + index.reshape([-1 if a == axis else 1 for a in range(mask.ndim)])
    keys = np.where(mask, components.astype(np.int64) * (cells.max() + 1) + cells, 0)
    unique, relabelled = np.unique(keys, return_inverse=True)
    return relabelled.reshape(mask.shape), len(unique) - 1


def split_strokes(
    annotations: np.ndarray, seed: int | None = 0, share: float = HELD_OUT_SHARE, gap: int = GAP
) -> StrokeSplit:
    """Hold out about ``share`` of each class's painted voxels, in whole pieces, never a class's last piece.
    Only the painted voxels' bounding box is looked at (its start on the :data:`PIECE_EDGE` grid, so the
    pieces and the choice are those of the whole array): the cost follows the strokes, not the image."""
    box = painted_box(annotations, PIECE_EDGE)
    if box is None:
        return StrokeSplit(annotations.copy(), np.zeros(0, np.intp), annotations.ravel()[:0])
    painted = annotations[box]
    rng = np.random.default_rng(seed)
    held = np.zeros(painted.shape, bool)
    for value in np.unique(painted[painted > 0]):
        pieces, count = _pieces(painted == value)
        if count < 2:
            continue
        sizes = np.bincount(pieces.ravel(), minlength=count + 1)[1:]
        target, taken, chosen = share * sizes.sum(), 0, []
        for piece in rng.permutation(count):
            if taken >= target or len(chosen) == count - 1:
                break
            chosen.append(piece + 1)
            taken += sizes[piece]
        held |= np.isin(pieces, chosen)
    training = annotations.copy()
    training[box] = np.where(held, 0, painted)
    near_training = ndi.distance_transform_cdt(training[box] == 0, metric="chessboard") <= gap
    local = np.nonzero(held & ~near_training)
    voxels = np.ravel_multi_index(tuple(i + b.start for i, b in zip(local, box)), annotations.shape)
    return StrokeSplit(training, voxels, annotations.ravel()[voxels])


def painted_box(annotations: np.ndarray, grid: int = 1) -> tuple[slice, ...] | None:
    """The bounding box of the painted (non-zero) voxels, its start rounded down to a multiple of
    ``grid``; None when nothing is painted."""
    box = []
    for axis in range(annotations.ndim):
        others = tuple(a for a in range(annotations.ndim) if a != axis)
        painted = np.flatnonzero(annotations.any(axis=others))
        if not len(painted):
            return None
        box.append(slice(int(painted[0]) // grid * grid, int(painted[-1]) + 1))
    return tuple(box)


def held_out_score(probabilities: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean per-class recall (balanced accuracy) of ``(K, N)`` probabilities on held-out ``labels``
    (annotation values); None without held-out voxels."""
    if len(labels) == 0:
        return None
    predicted = probabilities.argmax(0) + 1
    return float(np.mean([np.mean(predicted[labels == v] == v) for v in np.unique(labels)]))


def held_out_windows(voxels: np.ndarray, spatial: tuple[int, ...], dim: int) -> list[tuple[slice, ...]]:
    """Boxes around groups of held-out voxels, with :data:`WINDOW_CONTEXT` voxels of context along the
    model's axes (one plane along the others); nearby groups share a box. Only the voxels' bounding box
    plus that context is looked at."""
    if not len(voxels):
        return []
    reach = [0] * (len(spatial) - dim) + [WINDOW_CONTEXT] * dim
    coords = np.unravel_index(voxels, spatial)
    around = tuple(slice(max(0, c.min() - r), min(s, c.max() + 1 + r)) for c, r, s in zip(coords, reach, spatial))
    mask = np.zeros([a.stop - a.start for a in around], bool)
    mask[tuple(c - a.start for c, a in zip(coords, around))] = True
    groups, _ = ndi.label(ndi.maximum_filter(mask, size=[2 * r + 1 for r in reach]), np.ones((3,) * len(spatial), bool))
    boxes = ndi.find_objects(groups)
    return [tuple(slice(b.start + a.start, b.stop + a.start) for b, a in zip(box, around)) for box in boxes if box]
