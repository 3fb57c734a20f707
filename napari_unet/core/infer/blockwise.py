"""Out-of-core prediction: the image is cut into blocks that are predicted one at a time (or on a
dask cluster) and written as they finish, so memory does not grow with the image.

Each block is predicted by the same predictor as a whole image (:func:`chosen_probabilities`)
from the block plus a halo of context, and only the block is kept. With the halo equal to half the
tile overlap and blocks a whole number of tile steps, the tiles of one block cover its region
exactly, so the work per voxel is what a whole-image pass costs. A model whose chosen candidate uses
its pixel classifier gets the halo that classifier's widest filter needs, so blocks match the whole image.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from ..instances.postprocess import certainty
from ..io.lazy import ChannelsFirstView
from ..memory import return_freed_memory
from ..models.model import Model
from .inference import chosen_probabilities, labels_from_probabilities, window_shape
from .tiling import tile_starts

BLOCK_TARGET = {2: 1152, 3: 192}  # block edge to aim for, in voxels
PLANES_PER_BLOCK = 4  # a 2D model on a stack: planes per block


@dataclass(frozen=True)
class BlockPlan:
    """How a spatial shape is cut: ``blocks`` (chunk-aligned boxes), each read with ``halo``
    voxels of context per side; ``chunks`` is the output chunk shape (blocks are whole chunks)."""

    shape: tuple[int, ...]
    block_shape: tuple[int, ...]
    halo: tuple[int, ...]
    chunks: tuple[int, ...]

    @classmethod
    def for_model(
        cls,
        model: Model,
        shape: Sequence[int],
        tile_size: int | Sequence[int] | None = None,
        overlap: float = 0.25,
        block_size: int | None = None,
    ) -> BlockPlan:
        """Blocks of about ``block_size`` voxels per tiled axis (default 1152 in 2D, 192 in 3D),
        rounded to whole tile steps."""
        shape = tuple(int(s) for s in shape)
        window = window_shape(model, shape, tile_size)
        extra = len(shape) - model.dim
        multiples = (1,) * extra + model.config.network.size_multiple
        block, halo, chunks = [], [], []
        for size, tile, multiple in zip(shape, window, multiples):
            if tile == 1:  # plane by plane: no context needed across planes
                edge = min(size, PLANES_PER_BLOCK)
                block.append(edge)
                halo.append(0)
                chunks.append(edge)
                continue
            starts = tile_starts(10 * tile, tile, overlap, multiple)
            step = starts[1] - starts[0]
            margin = math.ceil((tile - step) / 2 / multiple) * multiple
            margin = max(margin, math.ceil(model.classifier_halo / multiple) * multiple)  # features reach further
            steps = max(1, round((block_size or BLOCK_TARGET[model.dim]) / step))
            edge = min(size, steps * step)
            block.append(edge)
            halo.append(margin)
            chunks.append(edge // 2 if edge % 2 == 0 and edge == steps * step and steps % 2 == 0 else edge)
        return cls(shape, tuple(block), tuple(halo), tuple(chunks))

    @property
    def blocks(self) -> list[tuple[slice, ...]]:
        return self.chunk_grid(self.shape, self.block_shape)

    @staticmethod
    def chunk_grid(shape: Sequence[int], edges: Sequence[int]) -> list[tuple[slice, ...]]:
        """Boxes of ``edges`` tiling ``shape`` in C order (the last ones cut at the border)."""
        ranges = [range(0, size, edge) for size, edge in zip(shape, edges)]
        return [
            tuple(slice(c, min(c + e, s)) for c, e, s in zip(corner, edges, shape))
            for corner in itertools.product(*ranges)
        ]

    def region(self, block: tuple[slice, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """The box read for ``block`` and where ``block`` lies in it (see :func:`with_halo`)."""
        return with_halo(block, self.halo, self.shape)


def with_halo(
    block: tuple[slice, ...], halo: Sequence[int], shape: Sequence[int]
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """``block`` grown by ``halo`` per side (clipped to ``shape``), and where ``block`` lies in it."""
    region = tuple(slice(max(0, b.start - h), min(s, b.stop + h)) for b, h, s in zip(block, halo, shape))
    inner = tuple(slice(b.start - r.start, b.stop - r.start) for b, r in zip(block, region))
    return region, inner


@dataclass
class BlockSettings:
    """Everything a worker needs besides the model to predict and store one block."""

    image: ChannelsFirstView
    ranges: list[list[float]]
    plan: BlockPlan
    labels_out: object  # array-like (zarr or numpy) over the spatial shape
    probabilities_out: object | None = None  # array-like (K, *spatial), float32
    tile_size: int | Sequence[int] | None = None
    overlap: float = 0.25
    batch_size: int | None = None
    device: str = "cpu"
    precision: str = "auto"
    certainty_out: object | None = None  # array-like over the spatial shape: the model's certainty, for instances
    keep_specks: bool = False  # else specks are judged within each block's region (see :mod:`.specks`)

    def read(self, block: tuple[slice, ...]) -> np.ndarray:
        region, _ = self.plan.region(block)
        return self.image[(slice(None), *region)]

    def compute(self, model: Model, raw: np.ndarray, block: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities ``(K, *block)`` of one block from its raw region (its labels are those of
        the whole region, cut to the block, so a speck is judged with the context around it)."""
        _, inner = self.plan.region(block)
        normalized = model.normalize(raw, self.ranges)
        probabilities = chosen_probabilities(
            model,
            normalized,
            classifier_image=model.classifier_input(raw, normalized, self.ranges),
            tile_size=self.tile_size,
            overlap=self.overlap,
            batch_size=self.batch_size,
            device=self.device,
            precision=self.precision,
        )
        labels = labels_from_probabilities(probabilities, self.keep_specks, model.dim)[inner]
        return labels, probabilities[(slice(None), *inner)]

    def write(self, block: tuple[slice, ...], labels: np.ndarray, probabilities: np.ndarray) -> None:
        self.labels_out[block] = labels
        if self.probabilities_out is not None:
            self.probabilities_out[(slice(None), *block)] = probabilities
        if self.certainty_out is not None:
            self.certainty_out[block] = certainty(probabilities)


@dataclass
class BlockTimes:
    """Seconds spent per stage; ``waiting`` is the time compute sat idle on I/O."""

    blocks: int = 0
    read: float = 0.0
    compute: float = 0.0
    write: float = 0.0
    waiting: float = 0.0
    wall: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            setattr(self, stage, getattr(self, stage) + seconds)

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("blocks", "read", "compute", "write", "waiting", "wall")}


def _timed(times: BlockTimes, stage: str, work: Callable, *args):
    started = time.perf_counter()
    result = work(*args)
    times.add(stage, time.perf_counter() - started)
    return result


def predict_blocks_local(
    model: Model, settings: BlockSettings, progress: Callable[[int, int], None] | None = None
) -> BlockTimes:
    """Predict every block in this process: the next block is read and the previous one written
    in background threads while the current one computes."""
    times = BlockTimes()
    started = time.perf_counter()
    blocks = settings.plan.blocks
    with ThreadPoolExecutor(1, "napari-unet-read") as reader, ThreadPoolExecutor(1, "napari-unet-write") as writer:
        next_read = reader.submit(_timed, times, "read", settings.read, blocks[0])
        pending_write: Future | None = None
        for index, block in enumerate(blocks):
            waited = time.perf_counter()
            raw = next_read.result()
            if index + 1 < len(blocks):
                next_read = reader.submit(_timed, times, "read", settings.read, blocks[index + 1])
            times.add("waiting", time.perf_counter() - waited)
            labels, probabilities = _timed(times, "compute", settings.compute, model, raw, block)
            del raw
            return_freed_memory()
            waited = time.perf_counter()
            if pending_write is not None:
                pending_write.result()  # at most one block in flight: memory stays bounded
            times.add("waiting", time.perf_counter() - waited)
            pending_write = writer.submit(_timed, times, "write", settings.write, block, labels, probabilities)
            times.blocks += 1
            if progress is not None:
                progress(index + 1, len(blocks))
        if pending_write is not None:
            pending_write.result()
    times.wall = time.perf_counter() - started
    return times


def _predict_block_on_worker(model: Model, settings: BlockSettings, block: tuple[slice, ...]) -> dict[str, float]:
    """One block on a dask worker; torch gets the worker's share of the cores."""
    from distributed import get_worker

    torch.set_num_threads(max(1, get_worker().state.nthreads))
    times = BlockTimes()
    raw = _timed(times, "read", settings.read, block)
    labels, probabilities = _timed(times, "compute", settings.compute, model, raw, block)
    return_freed_memory()
    _timed(times, "write", settings.write, block, labels, probabilities)
    return times.as_dict()


def predict_blocks_distributed(
    model: Model, settings: BlockSettings, client, progress: Callable[[int, int], None] | None = None
) -> BlockTimes:
    """Predict the blocks as tasks on a dask.distributed cluster. The model is sent once to each
    worker; workers read their regions and write their blocks themselves (a shared file system)."""
    from distributed import as_completed

    started = time.perf_counter()
    model.network.cpu()
    model_on_workers = client.scatter(model, broadcast=True)
    settings_on_workers = client.scatter(settings, broadcast=True)  # once, not with every task
    blocks = settings.plan.blocks
    futures = [
        client.submit(_predict_block_on_worker, model_on_workers, settings_on_workers, block, pure=False)
        for block in blocks
    ]
    times = BlockTimes()
    for done, future in enumerate(as_completed(futures), start=1):
        for stage, seconds in future.result().items():
            if stage != "blocks":
                times.add(stage, seconds)
        times.blocks += 1
        if progress is not None:
            progress(done, len(blocks))
    times.wall = time.perf_counter() - started
    return times
