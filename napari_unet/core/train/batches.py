"""Training batches: patches sampled from the strokes, augmented, moved to the device.

With ``prefetch`` (the trainer's default on GPUs), the next batch is sampled and augmented in a background
thread while the network trains on the current one, so strokes sent in reach the batch after next. On CPU
cores that thread only competes with the network's own threads (measured 25-30% fewer steps/s on 2 cores),
so batches are made in turn.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import torch

from ..models.config import TrainConfig
from .augment import augment
from .sampling import PatchSampler


class BatchSource:
    """Batches of ``(B, C, *patch)`` images and ``(B, *patch)`` strokes from ``sampler``; ``extra_axes``
    leading patch axes of one voxel are dropped (a 2D model trained on planes of a stack)."""

    def __init__(
        self,
        sampler: PatchSampler,
        settings: TrainConfig,
        device: torch.device,
        generator: torch.Generator,
        extra_axes: int,
    ) -> None:
        self.sampler, self.settings, self.device = sampler, settings, device
        self.generator, self.extra_axes = generator, extra_axes
        self._prefetch: ThreadPoolExecutor | None = None
        self._next: Future | None = None

    def start_prefetch(self, size: int) -> None:
        """From now on, prepare each batch of ``size`` patches while the previous one trains."""
        self._prefetch = ThreadPoolExecutor(1, thread_name_prefix="napari-unet-batches")
        self._next = self._prefetch.submit(self.on_host, size)

    def on_host(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` augmented patches and their strokes in host memory (the prefetch thread's job)."""
        images, targets = self.sampler.sample(size)  # safe beside update(): see PatchSampler
        images_t, targets_t = torch.from_numpy(images), torch.from_numpy(targets)
        if self.extra_axes:  # patches are (1, P, P): drop the one-voxel axes
            images_t = images_t.reshape(images_t.shape[:2] + images_t.shape[2 + self.extra_axes :])
            targets_t = targets_t.reshape(targets_t.shape[:1] + targets_t.shape[1 + self.extra_axes :])
        settings = self.settings
        if settings.augment:
            chances = settings.elastic_probability, settings.intensity_probability
            images_t, targets_t = augment(images_t, targets_t, self.generator, *chances)
        if self.device.type == "cuda":
            images_t, targets_t = images_t.pin_memory(), targets_t.pin_memory()
        return images_t, targets_t

    def next(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch on the device; a prefetched one is cut to ``size`` (which may have just halved)
        and the one after it starts preparing at once."""
        if self._prefetch is None:
            images, targets = self.on_host(size)
        else:
            images, targets = self._next.result()
            self._next = self._prefetch.submit(self.on_host, size)
        images, targets = images[:size], targets[:size]
        return images.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)

    def close(self) -> None:
        """Stop the prefetch thread, if any (after the batch it may be preparing)."""
        if self._prefetch is not None:
            self._prefetch.shutdown(wait=True, cancel_futures=True)
