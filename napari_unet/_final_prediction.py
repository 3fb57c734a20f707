"""After Stop: the final model's prediction of the region on screen at once, then (for an image in
memory) of the rest, tile by tile, in a napari thread worker; each region is written whole on the main
thread, so what is on screen is one model's mask, not tiles of different moments. On a lazy image the
trained box's part of the screen (where previews were) comes first, then the rest of the screen."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import numpy as np

from ._inputs import Box, LayerPixels, split_by_box

if TYPE_CHECKING:
    from .core.models.model import Model

CONTEXT = 64  # voxels of image around each region, in-plane (or the pixel classifier's reach, when larger)...
CONTEXT_ACROSS = 8  # ...and across planes, for a 3D model (its classifier's 34 would read 4× the planes)
PIECE_VOXELS = 1024 * 1024  # the visible region is predicted in pieces of at most this many voxels (2D)...
PIECE_VOXELS_3D = 4 * PIECE_VOXELS  # ...or these (3D: thin pieces would cost more context than inside)


def with_context(region: Box, shape: tuple[int, ...], model: Model) -> Box:
    """``region`` grown by the context ``model`` looks at, within ``shape``: in-plane, :data:`CONTEXT` or its
    pixel classifier's halo when its predictions use the classifier (so a 2D model's labels of a region, on
    an image or plane by plane on a stack, are the whole image's there); across planes, :data:`CONTEXT_ACROSS`
    for a 3D model (less than its classifier's reach: a 3D region's labels can differ near its ends)."""
    in_plane = max(CONTEXT, model.classifier_halo)
    ndim = len(shape)
    grown = []
    for axis, (r, size) in enumerate(zip(region, shape)):
        margin = in_plane if axis >= ndim - 2 else (CONTEXT_ACROSS if model.dim == 3 else 0)
        grown.append(slice(max(0, r.start - margin), min(size, r.stop + margin)))
    return tuple(grown)


def _labels(
    model: Model, pixels: LayerPixels, region: Box, ranges: list[list[float]], device, interrupted: Callable[[], bool]
) -> np.ndarray:
    """The model's labels of ``region``, predicted with context around it (``interrupted`` is asked before
    anything is read, then as in :func:`~napari_unet.core.infer.inference.chosen_probabilities`)."""
    from .core.infer.inference import chosen_probabilities, labels_from_probabilities
    from .core.train.features import check

    check(interrupted)
    grown = with_context(region, pixels.shape, model)
    raw = pixels.read(grown)
    normalized = model.normalize(raw, ranges)
    seen = model.classifier_input(raw, normalized, ranges)
    probabilities = chosen_probabilities(
        model, normalized, classifier_image=seen, device=device, interrupted=interrupted
    )
    labels = labels_from_probabilities(probabilities, dim=model.dim)  # less specks, judged with the context
    return labels[tuple(slice(r.start - g.start, r.stop - g.start) for r, g in zip(region, grown))]


def predict_regions(
    model: Model,
    pixels: LayerPixels,
    trained_box: Box,
    visible: Box,
    rest: list[Box],
    threads: int,
    interrupted: Callable[[], bool],
    idle: threading.Event | None = None,
) -> Generator[tuple[Box, np.ndarray] | None, None, None]:
    """Worker thread: ``(region, labels)`` for the visible part of the trained box (the part previews
    covered: written whole, once all its pieces are done; None after each piece is a chance to quit), then
    for each piece of the visible rest (a lazy image's, never previewed), then for each of ``rest``; ends
    early, inside a piece, once ``interrupted`` says so. ``idle`` is clear while it reads or predicts, and set
    again only once what it freed went back to the system (a new Train waits for it, see
    :class:`~._worker.TrainingJob`: a 3D piece's features and activations are GBs). A plain function:
    napari's worker keeps a reference to it, which must not reach the layers."""
    import torch

    from ._previews import pieces
    from .core.memory import return_freed_memory
    from .core.models.devices import resolve_device
    from .core.train.features import Interrupted, check

    idle = idle if idle is not None else threading.Event()

    def piece_labels(region: Box) -> np.ndarray:
        idle.clear()
        labels = _labels(model, pixels, region, ranges, device, interrupted)
        idle.set()  # not after a quit: that waits for the memory to be returned below
        return labels

    idle.clear()
    try:
        check(interrupted)
        torch.set_num_threads(threads)  # per thread: this worker's own
        device = resolve_device("auto")
        ranges = model.intensity_ranges(pixels.read(trained_box))
        previewed, unseen = split_by_box(visible, trained_box)
        limit = PIECE_VOXELS_3D if model.dim == 3 else PIECE_VOXELS
        if previewed is not None:
            labels = np.empty([r.stop - r.start for r in previewed], np.uint8)
            for piece in pieces(previewed, limit):
                inside = tuple(slice(p.start - v.start, p.stop - v.start) for p, v in zip(piece, previewed))
                labels[inside] = piece_labels(piece)
                yield None
            yield previewed, labels
        for region in [piece for part in unseen for piece in pieces(part, limit)] + rest:
            yield region, piece_labels(region)
    except Interrupted:
        pass
    finally:
        return_freed_memory()
        idle.set()


class FinalPrediction:
    """Predicts the ``visible`` region of ``pixels`` with ``model`` (in pieces, written together), then each
    box of ``rest``, in the background, normalised as in training (the percentiles of ``trained_box``);
    ``write(region, labels)`` runs on the main thread for each; torch uses ``threads`` (the count the
    training worker found fastest). :meth:`quit` ends it within a block of work, in its own thread.
    :attr:`idle` is set while it neither reads nor predicts (see :func:`predict_regions`)."""

    def __init__(
        self,
        model: Model,
        pixels: LayerPixels,
        trained_box: Box,
        visible: Box,
        rest: list[Box],
        write: Callable[[Box, np.ndarray], None],
        threads: int = 1,
    ) -> None:
        from superqt.utils import create_worker

        self.regions_done = 0
        self.done = False
        self._write: Callable[[Box, np.ndarray], None] | None = write
        self._quitting = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.worker = create_worker(
            predict_regions,
            model,
            pixels,
            trained_box,
            visible,
            rest,
            threads,
            self._quitting.is_set,
            self.idle,
            _start_thread=False,
            _ignore_errors=True,
        )
        self.worker.yielded.connect(self._written)  # bound methods: Qt keeps no strong reference to self
        self.worker.finished.connect(self._finished)
        self.worker.start()

    def _written(self, item: tuple[Box, np.ndarray] | None) -> None:
        if item is not None and self._write is not None:  # not one queued before a quit
            self._write(*item)
            self.regions_done += 1

    def _finished(self) -> None:
        self.done = True
        self._write = None  # the session it wrote for: freed now, not at Python's next full collection

    def quit(self) -> None:
        """End the worker within a block of work (it does not finish the piece it is on). Not through the
        worker's own quit: that leaves the generator suspended, to be closed later on whichever thread drops
        it, and the memory it returns on the way out would then wait, or be returned on the main thread."""
        self._quitting.set()
        self._write = None
