"""How big the pieces of one training step are: patch size, batch size and the region term's boxes,
from the model's dimensionality and voxel spacing."""

from __future__ import annotations

from collections.abc import Sequence

from ..data.voxels import finest_lengths
from ..models.model import Model

REGION_BLOCK = 8  # voxels along the finest axis of the boxes the region term takes class means over


def default_patch_size(model: Model, spatial: Sequence[int]) -> tuple[int, ...]:
    """Small patches, many of them: 64² in 2D; in 3D 32 units of the finest axis, fewer voxels along
    coarse axes. With sparse strokes, more patches per step beat more context per patch."""
    if model.dim == 2:
        patch = [1] * (len(spatial) - 2) + [64, 64]
    else:
        patch = list(finest_lengths(32, model.config.spacing, 3, minimum=8))
    return tuple(min(p, s) for p, s in zip(patch, spatial))


def region_block(model: Model) -> tuple[int, ...]:
    """The boxes over which the region term (:func:`.losses.region_fit`) takes its class means:
    ``REGION_BLOCK`` voxels along the finest axis, fewer along coarser ones (same physical size)."""
    if model.dim == 2:
        return (REGION_BLOCK, REGION_BLOCK)
    return finest_lengths(REGION_BLOCK, model.config.spacing, 3)


def default_batch_size(model: Model) -> int:
    """8 patches in 2D, 4 in 3D: with sparse strokes, more (smaller) steps beat bigger batches in 3D."""
    return 8 if model.dim == 2 else 4
