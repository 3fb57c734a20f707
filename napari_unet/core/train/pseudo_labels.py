"""Pseudo-labels: the pixel classifier's confident voxels as extra, weaker targets for the U-Net.

Strokes leave most of an image unlabelled, and a U-Net fitted to them alone grows its objects into the
unpainted band between object strokes and far-away background strokes the longer it trains
(docs/benchmarks.md). The pixel classifier (fitted on the same training strokes, so held-out scores stay
honest) labels that band; where it is confident, its label becomes a target too, weighed below the strokes.

A trained start (a pretrained model) may veto: where it finds background more likely than not, the classifier's
object pseudo-labels are dropped (:func:`vetoed_by_start`). The classifier fills the thin background between touching
objects and over-paints stained tissue; the start knows better there, but not the other way round (on
brightfield the start paints whole cells, which the classifier's background labels correct).

Strokes and pseudo-labels travel as one uint8 map through sampling and augmentation: stroke values
``1..K`` as painted, the pixel classifier's class ``k`` as ``PSEUDO_OFFSET + k``, 0 for neither.
"""

from __future__ import annotations

import numpy as np
import torch

PSEUDO_OFFSET = 128


def confident_labels(probabilities: np.ndarray, confidence: float) -> np.ndarray:
    """``(K, *spatial)`` class probabilities → ``spatial`` uint8: class value ``1..K`` where the top
    probability is at least ``confidence``, else 0."""
    top = probabilities.max(0)
    return np.where(top >= confidence, probabilities.argmax(0) + 1, 0).astype(np.uint8)


def vetoed_by_start(pseudo: np.ndarray, start_background: np.ndarray, confidence: float) -> np.ndarray:
    """``pseudo`` labels (``spatial`` uint8, 1 = background) without the object labels (2..K) where a trained
    start's background probability ``start_background`` (``spatial``) is at least ``confidence``."""
    return np.where((pseudo > 1) & (start_background >= confidence), 0, pseudo).astype(np.uint8)


def merged_targets(strokes: np.ndarray, pseudo: np.ndarray) -> np.ndarray:
    """One uint8 map: the strokes where painted, else ``PSEUDO_OFFSET +`` the pseudo-label (0 for none)."""
    if strokes.max(initial=0) >= PSEUDO_OFFSET:
        raise ValueError(f"pseudo-labels need fewer than {PSEUDO_OFFSET} classes")
    return np.where(strokes > 0, strokes, np.where(pseudo > 0, pseudo.astype(np.uint16) + PSEUDO_OFFSET, 0)).astype(
        np.uint8
    )


def pseudo_targets(
    strokes: np.ndarray,
    probabilities: np.ndarray,
    confidence: float,
    start_background: np.ndarray | None,
    veto: float,
) -> np.ndarray:
    """The strokes plus the classifier's ``(K, *spatial)`` confident voxels as one map (:func:`merged_targets`),
    less the object labels where a trained start's background probability (``start_background``; None for a
    new network) is at least ``veto``."""
    pseudo = confident_labels(probabilities, confidence)
    if start_background is not None:
        pseudo = vetoed_by_start(pseudo, start_background, veto)
    return merged_targets(strokes, pseudo)


def split_targets(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, *spatial)`` merged targets → (strokes, pseudo-labels), both with 0 = none and ``1..K``."""
    targets = targets.long()
    pseudo = targets >= PSEUDO_OFFSET
    return torch.where(pseudo, 0, targets), torch.where(pseudo, targets - PSEUDO_OFFSET, 0)
