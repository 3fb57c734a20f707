"""Losses that see only painted voxels (value 0 = unpainted contributes nothing, not even gradient)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_cross_entropy(logits: torch.Tensor, annotations: torch.Tensor) -> torch.Tensor:
    """Class-balanced cross-entropy over painted voxels.

    ``logits`` ``(B, K, *spatial)``; ``annotations`` ``(B, *spatial)`` int with 0 = unpainted and
    ``k`` in 1..K meaning output channel ``k - 1``. Each painted class weighs the same, however many
    voxels it has, so long background strokes do not drown short object strokes.
    """
    targets = annotations.long() - 1
    per_voxel = F.cross_entropy(logits, targets.clamp(min=0), reduction="none")
    losses = []
    for k in range(logits.shape[1]):
        in_class = targets == k
        count = in_class.sum()
        if count > 0:
            losses.append(per_voxel[in_class].sum() / count)
    if not losses:
        return (logits * 0).sum()
    return torch.stack(losses).mean()


def masked_soft_dice(logits: torch.Tensor, annotations: torch.Tensor) -> torch.Tensor:
    """``1 - mean soft Dice`` over painted classes, computed on painted voxels only."""
    painted = (annotations > 0).unsqueeze(1)
    probabilities = torch.softmax(logits.float(), dim=1) * painted
    one_hot = F.one_hot((annotations.long() - 1).clamp(min=0), logits.shape[1]).movedim(-1, 1) * painted
    dims = (0, *range(2, logits.ndim))
    intersection = (probabilities * one_hot).sum(dims)
    total = probabilities.sum(dims) + one_hot.sum(dims)
    present = one_hot.sum(dims) > 0
    if not present.any():
        return (logits * 0).sum()
    dice = (2 * intersection[present] + 1e-5) / (total[present] + 1e-5)
    return 1 - dice.mean()


def edge_aware_smoothness(logits: torch.Tensor, images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Potts relaxation between neighbours of similar intensity (no class is assumed anywhere).

    For neighbour pairs ``(i, j)`` at distance 1 and 2 along each axis, penalises
    ``w_ij * (1 - <p_i, p_j>)`` with ``w_ij = exp(-|x_i - x_j|² / 2σ²)``: label changes are cheap
    across intensity edges and expensive inside flat regions, which pulls predicted boundaries onto
    the image's edges (the regularised losses of Tang et al., ECCV 2018, for scribble supervision).
    ``images`` ``(B, C, *spatial)`` normalised; ``logits`` ``(B, K, *spatial)``.
    """
    probabilities = torch.softmax(logits.float(), dim=1)
    total = logits.new_zeros(())
    pairs = 0
    for axis in range(2, logits.ndim):
        for distance in (1, 2):
            size = logits.shape[axis]
            if size <= distance:
                continue
            p_a, p_b = (
                probabilities.narrow(axis, 0, size - distance),
                probabilities.narrow(axis, distance, size - distance),
            )
            x_a, x_b = images.narrow(axis, 0, size - distance), images.narrow(axis, distance, size - distance)
            weight = torch.exp(-((x_a - x_b) ** 2).sum(1) / (2 * sigma**2))
            total = total + (weight * (1 - (p_a * p_b).sum(1))).mean()
            pairs += 1
    return total / max(pairs, 1)


def sparse_loss(
    logits: torch.Tensor,
    annotations: torch.Tensor,
    images: torch.Tensor | None = None,
    smoothness_weight: float = 0.0,
    smoothness_sigma: float = 0.1,
) -> torch.Tensor:
    """The training objective: masked cross-entropy + masked soft Dice on painted voxels, plus
    ``smoothness_weight`` × :func:`edge_aware_smoothness` when ``images`` are given."""
    loss = masked_cross_entropy(logits, annotations) + masked_soft_dice(logits, annotations)
    if images is not None and smoothness_weight > 0:
        loss = loss + smoothness_weight * edge_aware_smoothness(logits, images, smoothness_sigma)
    return loss
