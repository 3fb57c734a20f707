"""The U-Net: one class for 2D and 3D, skip connections by concatenation, anisotropic pooling.

This file imports nothing but torch, so it travels as the architecture source of exported
bioimage.io packages (built there by :func:`unet_from_kwargs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

_NORMS = ("batch", "instance", "group", "none")


@dataclass
class NetworkConfig:
    """Architecture of a :class:`UNet`.

    ``pool_strides[i]`` is the downsampling factor per spatial axis after encoder level ``i``
    (``len(pool_strides) == depth - 1``); 1 means "do not pool this axis" (anisotropic voxels).
    """

    dim: int
    in_channels: int
    num_classes: int
    base_channels: int = 16
    depth: int = 4
    norm: str = "batch"
    pool_strides: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or self.dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {self.dim!r}")
        for name in ("in_channels", "num_classes", "base_channels", "depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        if self.norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {self.norm!r}")
        if not self.pool_strides:
            self.pool_strides = [[2] * self.dim for _ in range(self.depth - 1)]
        strides = [s for level in self.pool_strides for s in (level if isinstance(level, (list, tuple)) else [level])]
        if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s == int(s) >= 1 for s in strides):
            raise ValueError(f"pool_strides must hold whole numbers of at least 1, got {self.pool_strides!r}")
        self.pool_strides = [list(map(int, s)) for s in self.pool_strides]
        if len(self.pool_strides) != self.depth - 1 or any(len(s) != self.dim for s in self.pool_strides):
            raise ValueError("pool_strides must hold depth - 1 entries of length dim")

    @property
    def size_multiple(self) -> tuple[int, ...]:
        """Per-axis factor every input size is padded to (product of the pooling strides)."""
        multiple = [1] * self.dim
        for strides in self.pool_strides:
            multiple = [m * s for m, s in zip(multiple, strides)]
        return tuple(multiple)


def pool_strides_for_spacing(spacing: Sequence[float], depth: int) -> list[list[int]]:
    """Per-level pooling strides from the voxel size, as nnU-Net plans them.

    An axis is pooled at a level only while its (current) voxel size is at most twice the
    finest one, so a coarse Z axis is left alone until X/Y have caught up.
    """
    current = [float(s) for s in spacing]
    strides = []
    for _ in range(depth - 1):
        finest = min(current)
        level = [2 if s <= 2 * finest else 1 for s in current]
        current = [s * f for s, f in zip(current, level)]
        strides.append(level)
    return strides


class Bf16SafeConv3d(nn.Conv3d):
    """``nn.Conv3d`` that computes in float32 when CPU bfloat16 autocast meets an input of depth 2.

    oneDNN's bfloat16 backward-weights kernel for AVX-512 (``jit_bf16:avx512_core_bf16`` in
    torch 2.13, oneDNN 3.12) returns garbage weight gradients (up to 1e36, or inf) for a 3×3×3
    convolution whose input has depth 2, as at the bottom of a 16-deep patch after three poolings;
    other depths, input gradients and 2D convolutions are right. Layers this shallow are cheap, so
    running them in float32 costs little. Same parameters as ``nn.Conv3d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] == 2 and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


def _conv(dim: int) -> type[nn.Module]:
    return nn.Conv2d if dim == 2 else Bf16SafeConv3d


def _norm(kind: str, dim: int, channels: int) -> nn.Module:
    if kind == "batch":
        return (nn.BatchNorm2d if dim == 2 else nn.BatchNorm3d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if dim == 2 else nn.InstanceNorm3d)(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {_NORMS}, got {kind!r}")


class ConvBlock(nn.Sequential):
    """Two (conv 3 → norm → LeakyReLU) layers."""

    def __init__(self, dim: int, in_channels: int, out_channels: int, norm: str) -> None:
        conv = _conv(dim)
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers += [
                conv(c_in, out_channels, 3, padding=1, bias=norm == "none"),
                _norm(norm, dim, out_channels),
                nn.LeakyReLU(0.01, inplace=True),
            ]
        super().__init__(*layers)


def preferred_memory_format(dim: int, device: torch.device | str) -> torch.memory_format:
    """Channels-last on CPU, where oneDNN trains these networks 1.2–1.3x faster (see
    docs/benchmarks.md); the default layout elsewhere until measured there."""
    if torch.device(device).type != "cpu":
        return torch.contiguous_format
    return torch.channels_last if dim == 2 else torch.channels_last_3d


class UNet(nn.Module):
    """U-Net for ``(B, C_in, *spatial)`` float input, returning ``(B, num_classes, *spatial)`` logits.

    Any spatial size is accepted: the input is padded (edge replicate) up to a multiple of
    ``config.size_multiple`` and the output cropped back. Use :meth:`place` to move it to a
    device in the memory layout that runs fastest there (inputs are converted to match).
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.memory_format = torch.contiguous_format
        dim, norm = config.dim, config.norm
        widths = [config.base_channels * 2**level for level in range(config.depth)]
        self.encoders = nn.ModuleList()
        self.pools = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        max_pool = nn.MaxPool2d if dim == 2 else nn.MaxPool3d
        up_conv = nn.ConvTranspose2d if dim == 2 else nn.ConvTranspose3d
        in_channels = config.in_channels
        for level, width in enumerate(widths):
            self.encoders.append(ConvBlock(dim, in_channels, width, norm))
            in_channels = width
            if level < config.depth - 1:
                stride = tuple(config.pool_strides[level])
                self.pools.append(max_pool(stride, stride))
        for level in reversed(range(config.depth - 1)):
            stride = tuple(config.pool_strides[level])
            self.upsamplers.append(up_conv(widths[level + 1], widths[level], stride, stride))
            self.decoders.append(ConvBlock(dim, 2 * widths[level], widths[level], norm))
        self.head = _conv(dim)(widths[0], config.num_classes, 1)

    def place(self, device: torch.device | str) -> UNet:
        """Move to ``device`` in its preferred memory layout (:func:`preferred_memory_format`)."""
        self.memory_format = preferred_memory_format(self.config.dim, device)
        return self.to(device=device, memory_format=self.memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        x = x.contiguous(memory_format=self.memory_format)
        padding: list[int] = []
        for size, multiple in zip(reversed(spatial), reversed(self.config.size_multiple)):
            padding += [0, -size % multiple]
        if any(padding):
            x = F.pad(x, padding, mode="replicate")
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x)
            if level < len(self.pools):
                skips.append(x)
                x = self.pools[level](x)
        for upsample, decoder in zip(self.upsamplers, self.decoders):
            x = decoder(torch.cat([skips.pop(), upsample(x)], dim=1))
        logits = self.head(x)
        if any(padding):  # only then: a trace on the size grid stays valid for every size on it
            logits = logits[(slice(None), slice(None), *(slice(0, s) for s in spatial))]
        return logits.contiguous()


def unet_from_kwargs(**config) -> UNet:
    """A :class:`UNet` from :class:`NetworkConfig` fields given as keywords (JSON-friendly)."""
    return UNet(NetworkConfig(**config))
