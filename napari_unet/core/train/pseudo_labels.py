"""Pseudo-labels: the pixel classifier's confident voxels as extra, weaker targets for the U-Net.

Strokes leave most of an image unlabelled, and a U-Net fitted to them alone grows its objects into the
unpainted band between object strokes and far-away background strokes the longer it trains
(docs/benchmarks.md). The pixel classifier (fitted on the same training strokes, so held-out scores stay
honest) labels that band; where it is confident, its label becomes a target too, weighed below the strokes.

A trained start (a pretrained model) may veto: where it finds background more likely than not, the classifier's
object pseudo-labels are dropped (:func:`vetoed_by_start`). The classifier fills the thin background between touching
objects and over-paints stained tissue; the start knows better there, but not the other way round (on
brightfield the start paints whole cells, which the classifier's background labels correct).

Where the classifier is not confident, a trained start's own confident labels fill in (``start_label_weight``):
what the start knew stays a target where the strokes and the classifier say nothing, so fine-tuning does not
unlearn it there. Not when the classifier contradicts the start (:func:`start_contradicted`): on brightfield the
start paints whole cells, and its labels there made the U-Net paint them too (docs/benchmarks.md).

Strokes and pseudo-labels travel as one uint8 map through sampling and augmentation: stroke values
``1..K`` as painted, the pixel classifier's class ``k`` as ``PSEUDO_OFFSET + k``, the start's as
``START_OFFSET + k``, 0 for none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..infer.inference import predict_normalized
from ..models.config import TrainConfig
from ..models.model import Model

PSEUDO_OFFSET = 128
START_OFFSET = 64
MAX_CONTRADICTED = 0.25  # the start's labels fill in only if the classifier calls less of its objects background
START_TILE_3D = 64  # a 3D start's tiles: 140 MB at most on the CPU against 250 MB for 128³, and no slower (63×256²)


def confident_labels(probabilities: np.ndarray, confidence: float) -> np.ndarray:
    """``(K, *spatial)`` class probabilities → ``spatial`` uint8: class value ``1..K`` where the top
    probability is at least ``confidence``, else 0."""
    top = probabilities.max(0)
    return np.where(top >= confidence, probabilities.argmax(0) + 1, 0).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class StartLabels:
    """What a trained start says before any update, as three ``spatial`` one-byte maps (4K/3 times less
    memory than its ``(K, *spatial)`` float32 probabilities): ``vetoes`` (bool) where its background probability
    reaches the veto, ``confident`` (uint8) its class value ``1..K`` where its top probability reaches the
    confidence, else 0, and ``labels`` (uint8) its class value everywhere (its mask)."""

    vetoes: np.ndarray
    confident: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, probabilities: np.ndarray, confidence: float, veto: float) -> StartLabels:
        """From ``(K, *spatial)`` probabilities."""
        labels = (probabilities.argmax(0) + 1).astype(np.uint8)
        return cls(probabilities[0] >= veto, confident_labels(probabilities, confidence), labels)


def start_labels(model: Model, normalized: np.ndarray, settings: TrainConfig, device) -> StartLabels | None:
    """A trained start's :class:`StartLabels` over the ``(C, *spatial)`` image; None for a new network. A 3D
    start predicts in :data:`START_TILE_3D` tiles."""
    if not model.config.history:
        return None
    tile = START_TILE_3D if model.dim == 3 else None
    probabilities = predict_normalized(model, normalized, tile_size=tile, device=device, precision=settings.precision)
    return StartLabels.of(probabilities, settings.pseudo_label_confidence, settings.start_veto)


def vetoed_by_start(pseudo: np.ndarray, vetoes: np.ndarray) -> np.ndarray:
    """``pseudo`` labels (``spatial`` uint8, 1 = background) without the object labels (2..K) where a trained
    start ``vetoes`` them (``spatial`` bool: it is sure of background there)."""
    return np.where((pseudo > 1) & vetoes, 0, pseudo).astype(np.uint8)


def merged_targets(strokes: np.ndarray, pseudo: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """One uint8 map: the strokes where painted, else ``PSEUDO_OFFSET +`` the pseudo-label, else
    ``START_OFFSET +`` the start's label (``start``, optional), 0 for none."""
    if strokes.max(initial=0) >= START_OFFSET:
        raise ValueError(f"pseudo-labels need fewer than {START_OFFSET} classes")
    merged = np.where(pseudo > 0, pseudo.astype(np.uint16) + PSEUDO_OFFSET, 0)
    if start is not None:
        merged = np.where(merged > 0, merged, np.where(start > 0, start.astype(np.uint16) + START_OFFSET, 0))
    return np.where(strokes > 0, strokes, merged).astype(np.uint8)


def pseudo_targets(
    strokes: np.ndarray,
    probabilities: np.ndarray,
    confidence: float,
    start: StartLabels | None,
    fill: bool = False,
) -> np.ndarray:
    """The strokes plus the classifier's ``(K, *spatial)`` voxels of at least ``confidence`` as one map
    (:func:`merged_targets`), less the object labels that a trained ``start`` vetoes (None for a new network);
    with ``fill``, the start's confident voxels where neither strokes nor classifier label one, unless the
    classifier contradicts them."""
    pseudo = confident_labels(probabilities, confidence)
    filling = None
    if start is not None:
        if fill and start_contradicted(pseudo, start.confident) <= MAX_CONTRADICTED:
            filling = start.confident
        pseudo = vetoed_by_start(pseudo, start.vetoes)
    return merged_targets(strokes, pseudo, filling)


def start_contradicted(pseudo: np.ndarray, start: np.ndarray) -> float:
    """The share of a start's confident object voxels (``start`` labels 2..K) that the classifier's confident
    labels ``pseudo`` call background (1); 0 when the start is sure of no object. On the dev images: at most
    0.11 on fluorescence and stained tissue, 0.37–0.45 on brightfield, where the start paints whole cells."""
    objects = start > 1
    return float((pseudo[objects] == 1).mean()) if objects.any() else 0.0


def split_targets(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, *spatial)`` merged targets → (strokes, pseudo-labels, the start's labels), each with 0 = none
    and ``1..K``."""
    targets = targets.long()
    pseudo, start = targets >= PSEUDO_OFFSET, (targets >= START_OFFSET) & (targets < PSEUDO_OFFSET)
    strokes = torch.where(pseudo | start, 0, targets)
    return strokes, torch.where(pseudo, targets - PSEUDO_OFFSET, 0), torch.where(start, targets - START_OFFSET, 0)
