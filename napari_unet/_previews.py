"""Which region the next live preview predicts, and how often previews may come: the region on screen
(in pieces small enough that a preview never holds Stop up for long) alternating with tiles of the
rest, and no more often than keeps previews to a small share of the trainer's time."""

from __future__ import annotations

import math

import numpy as np

from ._inputs import Box, shift

PIECE_VOXELS = 512 * 512  # most voxels one preview predicts (about 0.3 s of U-Net on 2 CPU cores)
TILE = 256  # in-plane edge of the tiles of the rest of the image
TILE_DEPTH = 32  # their depth for a 3D model
PREVIEW_INTERVAL_S = 1.0  # at most one preview a second...
PREVIEW_SHARE = 0.25  # ...and previews take at most about this share of the worker's time
FIRST_MASK_WHOLE_VOXELS = 2**20  # a training box up to this size gets a first mask of all of it (~0.5 s)


def pieces(region: Box, limit: int = PIECE_VOXELS) -> list[Box]:
    """``region`` cut along its last two axes into boxes of at most ``limit`` voxels (the other axes whole)."""
    from .core.infer.tiling import tile_boxes

    shape = [r.stop - r.start for r in region]
    across = math.prod(shape[:-2])
    edge = max(16, int(math.sqrt(limit / across)))
    tile = [*shape[:-2], edge, edge]
    boxes = tile_boxes(shape, tile, 0.0, [1] * len(shape))
    return [tuple(slice(r.start + b.start, r.start + b.stop) for r, b in zip(region, box)) for box in boxes]


def first_preview_region(visible: Box | None, box: Box, strokes: np.ndarray) -> Box | None:
    """The first mask's region in the training ``box``'s coordinates, given the region on screen
    (``visible``, image coordinates) and the box's ``strokes``: of the preview pieces of what is on screen
    of the box, the one holding the most strokes. None (the trainer's default: the whole box, when cheap)
    for a box of at most :data:`FIRST_MASK_WHOLE_VOXELS`, or when no stroke of the box is on screen."""
    inside = None if visible is None else shift(visible, box, inward=True)
    if inside is None or strokes.size <= FIRST_MASK_WHOLE_VOXELS:
        return None
    counts = [(np.count_nonzero(strokes[piece]), piece) for piece in pieces(inside)]
    painted, piece = max(counts, key=lambda count: count[0])
    return piece if painted else None


def tiles(shape: tuple[int, ...], model_dim: int) -> list[Box]:
    """The whole image in tiles: planes for a 2D model, :data:`TILE_DEPTH`-deep blocks for a 3D one."""
    from .core.infer.tiling import tile_boxes

    across = 1 if model_dim == 2 else TILE_DEPTH
    tile = [across] * (len(shape) - 2) + [TILE, TILE]
    return list(tile_boxes(shape, tile, 0.0, [1] * len(shape)))


def interval(preview_seconds: float) -> float:
    """Seconds between previews when one costs ``preview_seconds`` of the worker's time."""
    return max(PREVIEW_INTERVAL_S, preview_seconds / PREVIEW_SHARE)


class PreviewPlan:
    """Regions for the previews of one session: a piece of the region on screen, then a tile of the rest,
    in turn (pieces and tiles each cycle)."""

    def __init__(self, shape: tuple[int, ...], model_dim: int) -> None:
        self._tiles = tiles(shape, model_dim)
        self._asked = 0
        self._visible: Box | None = None
        self._pieces: list[Box] = []
        self._next_piece = self._next_tile = 0

    def next_region(self, visible: Box | None) -> Box:
        """The region to preview next; ``visible``: the region on screen (None: none known)."""
        self._asked += 1
        if self._asked % 2 == 1 and visible is not None:
            if visible != self._visible:
                self._visible, self._pieces, self._next_piece = visible, pieces(visible), 0
            region = self._pieces[self._next_piece % len(self._pieces)]
            self._next_piece += 1
            return region
        region = self._tiles[self._next_tile % len(self._tiles)]
        self._next_tile += 1
        return region

    def rest(self, visible: Box) -> list[Box]:
        """The tiles not wholly inside ``visible``, those nearest the current plane first."""
        outside = [t for t in self._tiles if any(a.start < v.start or a.stop > v.stop for a, v in zip(t, visible))]
        centre = [(v.start + v.stop) / 2 for v in visible[:-2]]
        return sorted(outside, key=lambda t: sum(abs((a.start + a.stop) / 2 - c) for a, c in zip(t, centre)))
