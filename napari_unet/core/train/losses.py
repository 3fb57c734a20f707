"""The training loss: terms that see only painted voxels (value 0 = unpainted contributes nothing to
them, not even gradient), and two image-driven terms over all voxels (smoothness, region fit)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .pseudo_labels import split_targets


def _painted_one_hot(annotations: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(B, K, *spatial)`` float one-hot of the painted class of each voxel, zero where unpainted."""
    one_hot = F.one_hot((annotations.long() - 1).clamp(min=0), num_classes).movedim(-1, 1)
    return (one_hot * (annotations > 0).unsqueeze(1)).float()


def _mean_over_present(values: torch.Tensor, present: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``present`` (per class), or ``empty`` when no class is; no host sync."""
    count = present.sum()
    mean = torch.where(present, values, torch.zeros_like(values)).sum() / count.clamp(min=1)
    return torch.where(count > 0, mean, empty)


def masked_cross_entropy(
    logits: torch.Tensor, annotations: torch.Tensor, one_hot: torch.Tensor | None = None
) -> torch.Tensor:
    """Class-balanced cross-entropy over painted voxels.

    ``logits`` ``(B, K, *spatial)``; ``annotations`` ``(B, *spatial)`` int with 0 = unpainted and
    ``k`` in 1..K meaning output channel ``k - 1``. Each painted class weighs the same, however many
    voxels it has, so long background strokes do not drown short object strokes. ``one_hot`` is
    :func:`_painted_one_hot` of ``annotations`` when the caller has it already.
    """
    if one_hot is None:
        one_hot = _painted_one_hot(annotations, logits.shape[1])
    log_probabilities = torch.log_softmax(logits.float(), dim=1)
    dims = (0, *range(2, logits.ndim))
    counts = one_hot.sum(dims)
    per_class = -(log_probabilities * one_hot).sum(dims) / counts.clamp(min=1)
    return _mean_over_present(per_class, counts > 0, (logits * 0).sum())


def masked_soft_dice(
    logits: torch.Tensor,
    annotations: torch.Tensor,
    one_hot: torch.Tensor | None = None,
    probabilities: torch.Tensor | None = None,
) -> torch.Tensor:
    """``1 - mean soft Dice`` over painted classes, computed on painted voxels only (``one_hot`` and
    the softmax ``probabilities`` may be passed in when already computed)."""
    if one_hot is None:
        one_hot = _painted_one_hot(annotations, logits.shape[1])
    if probabilities is None:
        probabilities = torch.softmax(logits.float(), dim=1)
    painted = (annotations > 0).unsqueeze(1)
    probabilities = probabilities * painted
    dims = (0, *range(2, logits.ndim))
    intersection = (probabilities * one_hot).sum(dims)
    class_voxels = one_hot.sum(dims)
    total = probabilities.sum(dims) + class_voxels
    dice = (2 * intersection + 1e-5) / (total + 1e-5)
    return 1 - _mean_over_present(dice, class_voxels > 0, 1 - (logits * 0).sum())


def edge_aware_smoothness(
    logits: torch.Tensor, images: torch.Tensor, sigma: float, probabilities: torch.Tensor | None = None
) -> torch.Tensor:
    """Potts relaxation between neighbours of similar intensity (no class is assumed anywhere).

    For neighbour pairs ``(i, j)`` at distance 1 and 2 along each axis, penalises
    ``w_ij * (1 - <p_i, p_j>)`` with ``w_ij = exp(-|x_i - x_j|² / 2σ²)``: label changes are cheap
    across intensity edges and expensive inside flat regions, which pulls predicted boundaries onto
    the image's edges (the regularised losses of Tang et al., ECCV 2018, for scribble supervision).
    ``images`` ``(B, C, *spatial)`` normalised; ``logits`` ``(B, K, *spatial)`` (or their softmax
    ``probabilities``, when already computed).
    """
    if probabilities is None:
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


def region_fit(
    probabilities: torch.Tensor,
    images: torch.Tensor,
    block: Sequence[int] | None = None,
    global_share: float = 0.05,
) -> torch.Tensor:
    """Piecewise-constant fit of each patch by the predicted classes (Chan-Vese), with local class means.

    ``sum_k p_k(x) (x - c_k(x))² / var`` averaged over voxels and channels; ``var`` is the patch's
    variance. Low when each class keeps close to its brightness nearby: boundaries move to where the
    brightness changes (half-way up a blurred edge) and dim gaps between bright objects open, also
    where no stroke reaches (Kim & Ye, IEEE TIP 2019). ``c_k(x)`` is the ``p_k``-weighted mean of
    class ``k`` over ``block``-sized boxes (interpolated between box centres), so a dim object keeps
    its own foreground brightness next to bright ones, and uneven illumination is followed (the
    region-scalable fit of Li et al., IEEE TIP 2008). Where a class is rare in a box, its mean over
    the whole patch fills in, weighted as a ``global_share`` of the box's voxels. ``block`` None:
    one mean per patch. ``probabilities`` ``(B, K, *spatial)``, ``images`` ``(B, C, *spatial)``.
    """
    p, x = probabilities.unsqueeze(2), images.unsqueeze(1)  # (B, K, 1, *S), (B, 1, C, *S)
    px = p * x  # (B, K, C, *S)
    axes = tuple(range(3, x.ndim))
    means = px.sum(axes, keepdim=True) / p.sum(axes, keepdim=True).clamp(min=1e-6)
    if block is not None:
        weighted = _box_means(px, block)  # local mean of p_k x
        share = _box_means(p, block)  # (B, K, 1, *S): local mean of p_k
        means = (weighted + global_share * means) / (share + global_share)
    variance = images.var(dim=tuple(range(2, images.ndim)), keepdim=True).unsqueeze(1) + 1e-6
    return (p * (x - means) ** 2 / variance).sum(1).mean()


def _box_means(values: torch.Tensor, block: Sequence[int]) -> torch.Tensor:
    """Means of ``values`` ``(B, K, C, *spatial)`` over boxes of ``block`` voxels, interpolated
    (linearly between box centres) back to every voxel."""
    spatial = values.shape[3:]
    flat = values.reshape(values.shape[0], -1, *spatial)
    box = [max(1, min(b, s)) for b, s in zip(block, spatial)]
    pool = F.avg_pool2d if len(spatial) == 2 else F.avg_pool3d
    coarse = pool(flat, box, box, ceil_mode=True)
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    return F.interpolate(coarse, size=spatial, mode=mode, align_corners=False).reshape(values.shape)


def pseudo_label_cross_entropy(logits: torch.Tensor, pseudo: torch.Tensor) -> torch.Tensor:
    """Plain (not class-balanced) cross-entropy over the voxels with a pseudo-label: they sample the
    image as it is, so its class shares are kept. ``pseudo`` ``(B, *spatial)``: 0 = none, ``k`` in 1..K."""
    labelled = (pseudo > 0).float()
    losses = F.cross_entropy(logits.float(), (pseudo - 1).clamp(min=0), reduction="none")
    return (losses * labelled).sum() / labelled.sum().clamp(min=1)


def sparse_loss(
    logits: torch.Tensor,
    annotations: torch.Tensor,
    images: torch.Tensor | None = None,
    smoothness_weight: float = 0.0,
    smoothness_sigma: float = 0.1,
    region_weight: float = 0.0,
    region_block: Sequence[int] | None = None,
    pseudo_label_weight: float = 0.0,
    start_label_weight: float = 0.0,
) -> torch.Tensor:
    """The training objective: masked cross-entropy + masked soft Dice on painted voxels, plus, when
    ``images`` are given, ``smoothness_weight`` × :func:`edge_aware_smoothness` and
    ``region_weight`` × :func:`region_fit` (class means over ``region_block`` boxes) over all voxels.
    ``annotations`` may carry pseudo-labels (see :mod:`.pseudo_labels`): ``pseudo_label_weight`` ×
    :func:`pseudo_label_cross_entropy` on them, and a trained start's labels, ``start_label_weight`` × the same."""
    annotations, pseudo, start = split_targets(annotations)
    one_hot = _painted_one_hot(annotations, logits.shape[1])
    probabilities = torch.softmax(logits.float(), dim=1)
    loss = masked_cross_entropy(logits, annotations, one_hot) + masked_soft_dice(
        logits, annotations, one_hot, probabilities
    )
    if images is not None and smoothness_weight > 0:
        loss = loss + smoothness_weight * edge_aware_smoothness(logits, images, smoothness_sigma, probabilities)
    if images is not None and region_weight > 0:
        loss = loss + region_weight * region_fit(probabilities, images, region_block)
    if pseudo_label_weight > 0:
        loss = loss + pseudo_label_weight * pseudo_label_cross_entropy(logits, pseudo)
    if start_label_weight > 0:
        loss = loss + start_label_weight * pseudo_label_cross_entropy(logits, start)
    return loss
