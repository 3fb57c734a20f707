"""Patches around painted voxels, balanced across classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class PatchSampler:
    """Draws ``(image, target)`` patches, most of them around a painted voxel.

    ``image`` is ``(C, *spatial)`` float32 (normalised), ``annotations`` is ``spatial`` with
    0 = unpainted. Each patch is placed around a voxel of a class drawn uniformly among the
    painted classes, at a random offset, so every class is seen equally often; a ``uniform_share`` of
    the patches is placed anywhere in the image instead (so batch statistics see the image as
    prediction will, not only the neighbourhoods of strokes).
    """

    def __init__(
        self,
        image: np.ndarray,
        annotations: np.ndarray,
        patch_size: Sequence[int],
        rng: np.random.Generator,
        uniform_share: float = 0.0,
    ) -> None:
        spatial = image.shape[1:]
        if len(patch_size) != len(spatial):
            raise ValueError(f"patch_size {tuple(patch_size)} does not match spatial shape {spatial}")
        self.image = image
        self.patch_size = tuple(min(p, s) for p, s in zip(patch_size, spatial))
        self.rng = rng
        self.uniform_share = uniform_share
        self.update(annotations)

    def update(self, annotations: np.ndarray, targets: np.ndarray | None = None) -> None:
        """Use new strokes from now on (``annotations`` has the image's spatial shape): patches are centred
        on them and cut from ``targets`` (default: the strokes themselves; see :func:`.pseudo_labels.pseudo_targets`).
        Safe while another thread samples: the targets and the strokes' index are swapped in as one."""
        if annotations.shape != self.image.shape[1:]:
            raise ValueError(f"annotations shape {annotations.shape} != image spatial shape {self.image.shape[1:]}")
        flat = np.flatnonzero(annotations)
        values = annotations.ravel()[flat]
        targets = annotations if targets is None else targets
        self._strokes = (targets, {int(v): flat[values == v] for v in np.unique(values)})

    @property
    def voxels_by_class(self) -> dict[int, np.ndarray]:
        """Flat indices of the painted voxels of each class."""
        return self._strokes[1]

    @property
    def classes(self) -> list[int]:
        return sorted(self.voxels_by_class)

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(B, C, *patch)`` float32 images and ``(B, *patch)`` uint8 targets; the first
        ``round(uniform_share × B)`` patches lie anywhere, the others around painted voxels."""
        annotations, voxels_by_class = self._strokes  # one consistent snapshot
        spatial = annotations.shape
        classes = sorted(voxels_by_class)
        images = np.empty((batch_size, self.image.shape[0], *self.patch_size), np.float32)
        targets = np.empty((batch_size, *self.patch_size), np.uint8)
        anywhere = round(self.uniform_share * batch_size)
        for b in range(batch_size):
            if b < anywhere:
                centre = tuple(int(self.rng.integers(s)) for s in spatial)
            else:
                voxels = voxels_by_class[classes[self.rng.integers(len(classes))]]
                centre = np.unravel_index(voxels[self.rng.integers(len(voxels))], spatial)
            box = []
            for c, p, s in zip(centre, self.patch_size, spatial):
                start = int(np.clip(c - self.rng.integers(p), 0, s - p))
                box.append(slice(start, start + p))
            images[b] = self.image[(slice(None), *box)]
            targets[b] = annotations[tuple(box)]
        return images, targets
