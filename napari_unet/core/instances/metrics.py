"""Scores against dense truth: foreground IoU and instance F1 (matches at IoU > threshold)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def foreground_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two boolean foreground masks (1.0 when both are empty)."""
    predicted, truth = predicted.astype(bool), truth.astype(bool)
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else 1.0


def connected_instances(foreground: np.ndarray) -> np.ndarray:
    """Instance labels (0 = background, 1..N) as connected components (face connectivity)."""
    return ndi.label(foreground)[0]


def instance_f1(predicted: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> float:
    """F1 of instance labelings: a pair matches when IoU > ``threshold`` (≥ 0.5 makes matches unique)."""
    predicted = np.asarray(predicted, np.int64).ravel()
    truth = np.asarray(truth, np.int64).ravel()
    n_pred, n_true = int(predicted.max()), int(truth.max())
    if n_pred == 0 or n_true == 0:
        return 1.0 if n_pred == n_true else 0.0
    overlap = np.bincount(truth * (n_pred + 1) + predicted, minlength=(n_true + 1) * (n_pred + 1))
    overlap = overlap.reshape(n_true + 1, n_pred + 1)
    sizes_true = overlap.sum(1, keepdims=True)
    sizes_pred = overlap.sum(0, keepdims=True)
    iou = overlap / np.maximum(sizes_true + sizes_pred - overlap, 1)
    matches = int((iou[1:, 1:] > threshold).sum())
    return 2 * matches / (n_pred + n_true)
