"""What the training worker reads from the layers: the image's pixels (in memory or lazy) and the box of it
to train on. Safe in a worker thread: plain arrays only, no napari objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Box = tuple[slice, ...]
IN_PLANE_MARGIN = 128  # voxels of context kept around the strokes of a lazy image, in-plane...
ACROSS_MARGIN = 16  # ...and across planes (a 3D model's context)


@dataclass(frozen=True)
class LayerPixels:
    """An Image layer's full-resolution pixels as stored: ``data`` is spatial (plus a last RGB axis
    when ``rgb``), a numpy array or a lazy one (zarr, dask) that is only ever read box by box."""

    data: Any
    rgb: bool

    @classmethod
    def of(cls, layer) -> LayerPixels:
        """The pixels of a napari Image layer (level 0 of a multiscale one). Main thread."""
        return cls(layer.data[0] if layer.multiscale else layer.data, bool(layer.rgb))

    @property
    def lazy(self) -> bool:
        return not isinstance(self.data, np.ndarray)

    @property
    def shape(self) -> tuple[int, ...]:
        """The spatial shape."""
        shape = tuple(self.data.shape)
        return shape[:-1] if self.rgb else shape

    def read(self, box: Box) -> np.ndarray:
        """``(C, *box)`` pixels of ``box`` (a view for a numpy image, a read for a lazy one)."""
        block = np.asarray(self.data[box])
        return np.moveaxis(block, -1, 0) if self.rgb else block[None]


def whole(shape: tuple[int, ...]) -> Box:
    return tuple(slice(0, size) for size in shape)


def training_box(strokes: np.ndarray, model_dim: int) -> Box:
    """The painted voxels' bounding box plus context: :data:`IN_PLANE_MARGIN` on the last two axes and
    :data:`ACROSS_MARGIN` on the others (none for a 2D model on a stack), within ``strokes.shape``.
    Nothing painted: the whole array (the trainer then says what to do)."""
    from .core.train.holdout import painted_box

    painted = painted_box(np.asarray(strokes))
    if painted is None:
        return whole(strokes.shape)
    box = []
    for axis, (span, size) in enumerate(zip(painted, strokes.shape)):
        in_plane = axis >= strokes.ndim - 2
        margin = IN_PLANE_MARGIN if in_plane else (ACROSS_MARGIN if model_dim == 3 else 0)
        box.append(slice(max(0, span.start - margin), min(size, span.stop + margin)))
    return tuple(box)


def intersection(region: Box, box: Box) -> Box | None:
    """The part of ``region`` inside ``box`` (same coordinates), None when they do not meet."""
    clipped = tuple(slice(max(r.start, b.start), min(r.stop, b.stop)) for r, b in zip(region, box))
    return None if any(c.start >= c.stop for c in clipped) else clipped


def shift(region: Box, box: Box, inward: bool) -> Box | None:
    """``region`` moved into ``box``'s coordinates (``inward``, clipped to it; None if outside) or back out."""
    if not inward:
        return tuple(slice(r.start + b.start, r.stop + b.start) for r, b in zip(region, box))
    clipped = intersection(region, box)
    if clipped is None:
        return None
    return tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(clipped, box))


def split_by_box(region: Box, box: Box) -> tuple[Box | None, list[Box]]:
    """``region`` cut into its part inside ``box`` (None when they do not meet) and the boxes covering the
    rest of it, in absolute coordinates."""
    inside = intersection(region, box)
    if inside is None:
        return None, [region]
    rest, core = [], list(region)
    for axis, (r, b) in enumerate(zip(region, inside)):
        for part in (slice(r.start, b.start), slice(b.stop, r.stop)):
            if part.stop > part.start:
                rest.append((*core[:axis], part, *core[axis + 1 :]))
        core[axis] = b
    return inside, rest
