"""Batch augmentation on the training device: flips, rot90, intensity, elastic deformation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _flip_and_rotate(images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> tuple:
    spatial_dims = images.ndim - 2
    out_images, out_targets = [], []
    for image, target in zip(images, targets):
        for axis in range(spatial_dims):
            if torch.rand((), generator=generator) < 0.5:
                image, target = image.flip(axis + 1), target.flip(axis)
        if image.shape[-1] == image.shape[-2]:
            turns = int(torch.randint(4, (), generator=generator))
            image, target = image.rot90(turns, (-2, -1)), target.rot90(turns, (-2, -1))
        out_images.append(image)
        out_targets.append(target)
    return torch.stack(out_images), torch.stack(out_targets)


def _intensity(images: torch.Tensor, generator: torch.Generator, probability: float) -> torch.Tensor:
    """For each sample with ``probability``: per channel contrast × U(0.65, 1.5), shift U(-0.15, 0.15)
    and Gaussian noise σ ≤ 0.06; the other samples are left as they are."""
    shape = (images.shape[0], images.shape[1]) + (1,) * (images.ndim - 2)

    def uniform(low: float, high: float, size: tuple) -> torch.Tensor:
        return (low + (high - low) * torch.rand(size, generator=generator)).to(images.device)

    chosen = uniform(0.0, 1.0, (images.shape[0],) + (1,) * (images.ndim - 1)) < probability
    contrast = torch.where(chosen, uniform(0.65, 1.5, shape), 1.0)
    shift = torch.where(chosen, uniform(-0.15, 0.15, shape), 0.0)
    noise_sigma = torch.where(chosen, uniform(0, 0.06, shape), 0.0)
    noise = torch.randn(images.shape, generator=generator).to(images.device)
    return images * contrast + shift + noise * noise_sigma


def _elastic(
    images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator, strength: float = 0.06
) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random displacement (a coarse grid of control points, as in the U-Net paper)."""
    batch, spatial = images.shape[0], images.shape[2:]
    ndim = len(spatial)
    control = torch.randn((batch, ndim, *([4] * ndim)), generator=generator) * strength
    mode = "bilinear" if ndim == 2 else "trilinear"
    displacement = F.interpolate(control.to(images.device), size=spatial, mode=mode, align_corners=True)
    axes = [torch.linspace(-1, 1, s, device=images.device) for s in spatial]
    identity = torch.stack(torch.meshgrid(*axes, indexing="ij")[::-1], dim=0)  # grid_sample wants x first
    grid = (identity.unsqueeze(0) + displacement.flip(1)).movedim(1, -1)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    labels = F.grid_sample(targets.unsqueeze(1).float(), grid, mode="nearest", padding_mode="zeros", align_corners=True)
    return warped, labels.squeeze(1).to(targets.dtype)


def augment(
    images: torch.Tensor,
    targets: torch.Tensor,
    generator: torch.Generator,
    elastic_probability: float = 0.25,
    intensity_probability: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment ``images`` ``(B, C, *spatial)`` and ``targets`` ``(B, *spatial)`` consistently.

    Always flips and rot90; an elastic deformation of the batch with ``elastic_probability``; intensity
    changes of each sample with ``intensity_probability``. ``generator`` is a CPU generator so runs are
    reproducible on any device.
    """
    images, targets = _flip_and_rotate(images, targets, generator)
    if torch.rand((), generator=generator) < elastic_probability:
        images, targets = _elastic(images, targets, generator)
    if intensity_probability > 0:
        images = _intensity(images, generator, intensity_probability)
    return images, targets
