"""How big the pieces of one training step are: patch size, batch size and the region term's boxes,
from the model's dimensionality and voxel spacing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .model import Model

REGION_BLOCK = 8  # voxels along the finest axis of the boxes the region term takes class means over


def _voxels_for_length(model: Model, finest_voxels: int, minimum: int) -> list[int]:
    """Per axis of a 3D model, the voxels spanning the physical length of ``finest_voxels`` along
    its finest axis (fewer along coarse axes), at least ``minimum``."""
    spacing = np.asarray(model.config.spacing or [1.0, 1.0, 1.0])
    return [int(max(minimum, round(finest_voxels * spacing.min() / s))) for s in spacing]


def default_patch_size(model: Model, spatial: Sequence[int]) -> tuple[int, ...]:
    """Small patches, many of them: 64² in 2D; in 3D 32 units of the finest axis, fewer voxels along
    coarse axes. With sparse strokes, more patches per step beat more context per patch."""
    patch = [1] * (len(spatial) - 2) + [64, 64] if model.dim == 2 else _voxels_for_length(model, 32, minimum=8)
    return tuple(min(p, s) for p, s in zip(patch, spatial))


def region_block(model: Model) -> tuple[int, ...]:
    """The boxes over which the region term (:func:`.losses.region_fit`) takes its class means:
    ``REGION_BLOCK`` voxels along the finest axis, fewer along coarser ones (same physical size)."""
    if model.dim == 2:
        return (REGION_BLOCK, REGION_BLOCK)
    return tuple(_voxels_for_length(model, REGION_BLOCK, minimum=1))


def default_batch_size(model: Model) -> int:
    """8 patches in 2D, 4 in 3D: with sparse strokes, more (smaller) steps beat bigger batches in 3D."""
    return 8 if model.dim == 2 else 4
