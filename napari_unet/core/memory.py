"""How many patches (training) or tiles (prediction) fit in the free memory of a device.

Rough but safe-side estimates, measured on CPU in float32 with the default networks (peak resident
memory at two batch sizes): one training patch takes about 25 (2D) to 30 (3D) floats per voxel per base
channel (activations, their gradients, the augmented batch), one tile in prediction about 6 (2D) or 2 (3D).
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
from collections.abc import Sequence

import torch

from .models.network import NetworkConfig

TRAINING_FLOATS = 32  # per voxel and base channel, for one training patch (measured: 25 in 2D, 30 in 3D)
PREDICTION_FLOATS = 8  # per voxel and base channel, for one tile in prediction (measured: 6 in 2D, 2 in 3D)
HOST_FLOATS = 16  # per voxel and input channel, for sampling and augmenting one patch in host memory


def free_bytes(device: torch.device) -> int:
    """Memory free for new allocations: the GPU's own on CUDA, the machine's elsewhere (Apple GPUs share it)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def items_that_fit(network: NetworkConfig, item: Sequence[int], device: torch.device, training: bool) -> int:
    """Patches (``training``) or tiles of spatial shape ``item`` that fit at once on ``device``."""
    voxels = math.prod(item)
    floats = (TRAINING_FLOATS if training else PREDICTION_FLOATS) * network.base_channels * voxels
    on_device = free_bytes(device) // max(1, 4 * floats)
    if device.type == "cpu" or not training:
        return int(on_device)
    host = free_bytes(torch.device("cpu")) // max(1, 4 * HOST_FLOATS * network.in_channels * voxels)
    return int(min(on_device, host))


@functools.cache
def _libc():
    try:
        return ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None
    except OSError:  # not glibc
        return None


def return_freed_memory() -> None:
    """Hand memory this process freed back to the OS (glibc's ``malloc_trim``; elsewhere nothing).

    glibc keeps freed heap pages, one arena per thread: with torch's many short-lived tensors the resident
    size would creep up block by block, and what one worker thread freed stays resident while the next run's
    thread allocates elsewhere (in the dock, five Train → Stop cycles on a 3D box grew resident memory by
    1.2 GB where one grew it by 0.7 GB; docs/benchmarks.md)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
