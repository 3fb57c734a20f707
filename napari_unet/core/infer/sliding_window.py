"""Sliding-window inference with Gaussian blending: any tile predictor over an image of any size.

Like MONAI's ``sliding_window_inference``, it takes a callable and the size constraints of its tiles,
and knows nothing of models, devices they live on, or their modes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..memory import free_bytes
from .tiling import gaussian_weights, tile_boxes

BLEND_MEMORY_SHARE = 0.5  # of the device's free memory the blending accumulators may take there


def blending_device(device: torch.device, outputs: int, spatial: Sequence[int]) -> torch.device:
    """``device`` if the float32 accumulators (``outputs`` + 1 values per voxel) fit in
    :data:`BLEND_MEMORY_SHARE` of its free memory, else the host."""
    if device.type == "cpu":
        return device
    needed = 4 * (outputs + 1) * math.prod(spatial)
    return device if needed <= BLEND_MEMORY_SHARE * free_bytes(device) else torch.device("cpu")


@torch.inference_mode()
def sliding_window(
    predictor: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    window: Sequence[int],
    *,
    overlap: float,
    multiple: Sequence[int],
    outputs: int,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    output_device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Blend ``predictor``'s outputs over ``window``-shaped tiles of a ``(C, *spatial)`` image.

    ``predictor`` maps ``(B, C, *window)`` float32 tiles on ``device`` to ``(B, outputs, *window)``;
    tiles overlap by about ``overlap`` of their size and start on multiples of ``multiple`` (see
    :func:`.tiling.tile_starts`); ``batch_size`` tiles go per call. Returns ``(outputs, *spatial)``
    float32 on ``output_device`` (default: :func:`blending_device`); ``progress(done, total)``
    after each call.
    """
    device = torch.device(device)
    spatial = image.shape[1:]
    output_device = torch.device(output_device) if output_device else blending_device(device, outputs, spatial)
    weights = torch.from_numpy(gaussian_weights(window)).to(output_device)
    accumulated = torch.zeros((outputs, *spatial), dtype=torch.float32, device=output_device)
    weight_sum = torch.zeros(spatial, dtype=torch.float32, device=output_device)
    boxes = list(tile_boxes(spatial, window, overlap, multiple))
    for first in range(0, len(boxes), batch_size):
        batch_boxes = boxes[first : first + batch_size]
        tiles = torch.from_numpy(np.stack([image[(slice(None), *box)] for box in batch_boxes]))
        weighted = predictor(tiles.to(device)).to(output_device) * weights
        for box, tile in zip(batch_boxes, weighted):
            accumulated[(slice(None), *box)] += tile
            weight_sum[box] += weights
        if progress is not None:
            progress(min(first + batch_size, len(boxes)), len(boxes))
    return accumulated.div_(weight_sum)
