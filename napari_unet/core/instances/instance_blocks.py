"""Instances of a label image too big for memory: each block is split into objects with a halo of
context, and objects cut by a block face are joined where the halo shows them to be one."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..data.voxels import finest_lengths
from ..infer.blockwise import BlockPlan, with_halo
from ..memory import return_freed_memory
from .postprocess import instances_from_labels

JOIN_FRACTION = 0.5  # share of each other's voxels two ids must cover in a shared zone to be one object
VOLUME_BLOCK = 192  # block edge for objects in a volume, in units of the finest voxel size


def instance_block_shape(
    block_shape: Sequence[int], halo: Sequence[int], spacing: Sequence[float] | None = None
) -> tuple[int, ...]:
    """Blocks for splitting objects: the prediction blocks, unless one is thinner than twice its halo
    (a 2D model's blocks are a few planes of a stack: the halo would be ~17× the work); then about
    ``VOLUME_BLOCK`` units of the finest voxel size per axis."""
    if all(b >= 2 * h for b, h in zip(block_shape, halo)):
        return tuple(block_shape)
    return finest_lengths(VOLUME_BLOCK, spacing, len(block_shape), minimum=[2 * h for h in halo])


def instances_to_array(
    labels,
    out,
    block_shape: Sequence[int],
    halo: Sequence[int],
    spacing: Sequence[float] | None = None,
    progress: Callable[[int, int], None] | None = None,
    certainty=None,
    **options,
) -> int:
    """Write instances (0 = background, 1..N) of the semantic ``labels`` (array-like, spatial)
    into ``out`` (array-like int32, same shape) block by block; returns N.

    Each block is segmented from the block plus ``halo`` (> 0) voxels per side, so an object
    near a block face is split as it would be whole. Where that segmentation reaches into the
    blocks already written, its objects are matched with theirs: two ids that cover most of each
    other there are one object. ``certainty``: the model's certainty (array-like like ``labels``,
    see :func:`.postprocess.certainty`), where known; ``options`` go to :func:`split_touching`.
    """
    if min(halo) < 1:
        raise ValueError(f"instances need a halo of at least one voxel per side, got {tuple(halo)}")
    shape = tuple(int(s) for s in labels.shape)
    blocks = BlockPlan.chunk_grid(shape, block_shape)
    joins = _UnionFind()
    for index, block in enumerate(blocks):
        region, inner = with_halo(block, halo, shape)
        local_certainty = None if certainty is None else np.asarray(certainty[region], np.float32)
        local = instances_from_labels(np.asarray(labels[region]), spacing, certainty=local_certainty, **options)
        in_block = np.unique(local[inner])
        in_block = in_block[in_block > 0]
        to_global = np.zeros(int(local.max()) + 1, np.int64)
        to_global[in_block] = joins.add(len(in_block))
        out[block] = to_global[local[inner]].astype(np.int32)
        for axis, (b, r) in enumerate(zip(block, region)):
            if b.start == 0:
                continue
            zone = list(inner)
            zone[axis] = slice(0, b.start - r.start)  # our view of the block before us
            written = list(block)
            written[axis] = slice(r.start, b.start)
            for a, c in _matching_pairs(np.asarray(out[tuple(written)]), to_global[local[tuple(zone)]]):
                joins.union(a, c)
        return_freed_memory()
        if progress is not None:
            progress(index + 1, 2 * len(blocks))
    lookup = joins.consecutive()
    for index, block in enumerate(blocks):
        out[block] = lookup[np.asarray(out[block])]
        if progress is not None:
            progress(len(blocks) + index + 1, 2 * len(blocks))
    return int(lookup.max())


class _UnionFind:
    """Global ids 1..n handed out in batches, joined, then numbered 1..N (0 stays background)."""

    def __init__(self) -> None:
        self.parent = [0]

    def add(self, count: int) -> np.ndarray:
        first = len(self.parent)
        self.parent.extend(range(first, first + count))
        return np.arange(first, first + count)

    def root(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.root(a)] = self.root(b)

    def consecutive(self) -> np.ndarray:
        roots = np.array([self.root(i) for i in range(len(self.parent))])
        kept = np.unique(roots[1:])
        final = np.zeros(len(self.parent), np.int32)
        final[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
        return final[roots]


def _matching_pairs(theirs: np.ndarray, ours: np.ndarray) -> list[tuple[int, int]]:
    """Id pairs that cover at least ``JOIN_FRACTION`` of each other's voxels in the shared zone."""
    both = (theirs > 0) & (ours > 0)
    if not both.any():
        return []
    pairs, overlap = np.unique(np.stack([theirs[both], ours[both]]), axis=1, return_counts=True)
    area_theirs = dict(zip(*np.unique(theirs[theirs > 0], return_counts=True)))
    area_ours = dict(zip(*np.unique(ours[ours > 0], return_counts=True)))
    return [
        (int(a), int(b))
        for (a, b), n in zip(pairs.T, overlap)
        if n >= JOIN_FRACTION * area_theirs[a] and n >= JOIN_FRACTION * area_ours[b]
    ]
