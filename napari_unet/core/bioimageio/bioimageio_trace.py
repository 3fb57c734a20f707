"""What the network of a bioimage.io package computes: the size grid and halo it declares, the test
crop and reference output, and the TorchScript trace for runners without Python (e.g. deepImageJ).

No padding happens on the declared size grid, so a trace holds for every allowed size.
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import UserInputError
from ..models.model import Model
from ..models.network import NetworkConfig, UNet
from ..models.normalization import percentile_ranges

HALO_FRACTION = 0.75  # of the receptive-field radius: the reach where an input voxel still matters


def example_crop(model: Model, image: np.ndarray) -> np.ndarray:
    """A crop of ``image`` ``(C, *spatial)`` whose sizes the package accepts (float32).

    Each axis is cut to a multiple of the network's size multiple, at most 256 (2D) or the minimum
    size (3D), and at least the package's minimum size (edge-padded when the image is smaller). Of
    the windows at the start, centre and end of each axis, the one with the widest intensity range
    is taken (a flat window cannot be normalised the same way everywhere); if all are flat, a one-line
    :class:`UserInputError` asks for another image.
    """
    network = model.config.network
    sizes, starts_per_axis, padding = [], [], [(0, 0)]
    for size, m, halo in zip(image.shape[1:], network.size_multiple, package_halo(network)):
        minimum = min_size(m, halo)
        want = max(minimum, min(256 if model.dim == 2 else minimum, size) // m * m)
        sizes.append(want)
        starts_per_axis.append(sorted({0, max(0, (size - want) // 2), max(0, size - want)}))
        padding.append((0, max(0, want - size)))
    best, best_range = None, 0.0
    norm = model.config.normalization
    for corner in itertools.product(*starts_per_axis):
        box = (slice(None), *(slice(c, c + w) for c, w in zip(corner, sizes)))
        crop = np.asarray(image[box], np.float32)
        ranges = percentile_ranges(crop, norm.low_percentile, norm.high_percentile)
        spread = min(hi - lo for lo, hi in ranges)
        if spread > best_range:
            best, best_range = crop, spread
    if best is None:
        raise UserInputError(
            "the example image is flat (no intensity range) where the package needs a test input: "
            "give an image with structure (--image)"
        )
    return np.pad(best, padding, mode="edge") if any(p for _, p in padding) else best


def receptive_radius(network: NetworkConfig) -> list[int]:
    """Per spatial axis, how many voxels away an input voxel can still change an output voxel."""
    radii = []
    for axis in range(network.dim):
        scale, radius = 1, 0
        for strides in network.pool_strides:
            stride = strides[axis]
            radius += 4 * scale + 2 * (stride - 1) * scale  # two 3-wide convs down and up; pool and up-conv
            scale *= stride
        radii.append(radius + 2 * scale)  # the bottom block
    return radii


def package_halo(network: NetworkConfig) -> list[int]:
    """The output halo declared per axis: most of the receptive-field radius, on the size grid, so a
    runner that tiles with it matches the untiled prediction away from the image border."""
    return [
        math.ceil(HALO_FRACTION * radius / m) * m for radius, m in zip(receptive_radius(network), network.size_multiple)
    ]


def min_size(multiple: int, halo: int) -> int:
    return 2 * halo + multiple


def _cpu_copy(model: Model) -> UNet:
    """The model's network as a runner loads it: a fresh module on the CPU, default layout, eval mode."""
    network = UNet(model.config.network)
    network.load_state_dict(model.network.state_dict())
    return network.eval()


def reference_output(model: Model, crop: np.ndarray) -> np.ndarray:
    """``(1, K, *spatial)`` softmax probabilities of ``crop`` ``(C, *spatial)``, computed the way a
    bioimage.io runner does: normalise the whole crop, one forward pass on the CPU."""
    network = _cpu_copy(model)
    with torch.inference_mode():
        logits = network(torch.from_numpy(model.normalize(crop))[None])
    return torch.softmax(logits, dim=1).numpy()


def trace(model: Model, crop: np.ndarray, path: Path) -> None:
    """TorchScript of the network (CPU, default layout), traced on ``crop``'s normalised shape."""
    network = _cpu_copy(model)
    example = torch.from_numpy(model.normalize(crop))[None]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the padding branch, never taken on the grid
        traced = torch.jit.trace(network, example, check_trace=False)
    traced.save(str(path))
