"""The network as a tile predictor: a private copy made for inference, so the caller's model keeps its
device, memory layout, mode and weights.

The copy is in eval mode, on the device, in the layout that runs fastest there (channels-last on CPU,
see :func:`.network.preferred_memory_format`), with every batch norm folded into the convolution
before it (one pass over the activations less per layer; 1.1-1.3x faster on CPU, docs/benchmarks.md).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..models.network import UNet
from ..models.precision import autocast

_CONVS = (nn.Conv2d, nn.Conv3d)
_BATCH_NORMS = (nn.BatchNorm2d, nn.BatchNorm3d)


def fold_batch_norms(module: nn.Module) -> None:
    """Fold each eval-mode batch norm that directly follows a convolution in an ``nn.Sequential``
    into that convolution, in place (the norm becomes ``nn.Identity``)."""
    for sequential in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for index in range(len(sequential) - 1):
            conv, norm = sequential[index], sequential[index + 1]
            if isinstance(conv, _CONVS) and isinstance(norm, _BATCH_NORMS) and norm.track_running_stats:
                sequential[index] = fuse_conv_bn_eval(conv, norm)
                sequential[index + 1] = nn.Identity()


def inference_copy(network: UNet, device: torch.device) -> UNet:
    """A copy of ``network`` for inference on ``device`` (eval mode, preferred layout, norms folded)."""
    private = copy.deepcopy(network).eval()
    fold_batch_norms(private)
    return private.place(device)


def tile_predictor(network: UNet, device: torch.device, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(B, C, *window)`` tiles → ``(B, K, *window)`` float32 class probabilities, the network (an
    :func:`inference_copy`) computing in ``dtype``. A window with more axes than the network (a 2D
    network on a stack) must have size 1 along the extra leading ones."""
    private = inference_copy(network, device)
    dim = private.config.dim

    def predict(tiles: torch.Tensor) -> torch.Tensor:
        batch, channels, *window = tiles.shape
        with autocast(device, dtype):
            logits = private(tiles.reshape(batch, channels, *window[len(window) - dim :]))
        return torch.softmax(logits.float(), dim=1).reshape(batch, -1, *window)

    return predict
