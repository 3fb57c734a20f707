"""Real nuclei images with dense labels (2018 Data Science Bowl, ``../shared/data/dsb2018``) and the
strokes a user would paint on them, simulated from the labels as that data set's README describes.

A line through about one nucleus in ten, along the middle of the nucleus shrunk by a small erosion (so it
stays inside), and short background lines (20–80 px) kept a few pixels away from every nucleus: a dozen
per 512×512 pixels, so every image gets about the same share painted (~0.1–0.5% of the pixels).
Values: 0 = unpainted, 1 = background, 2 = nucleus.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line as draw_line
from skimage.morphology import disk, skeletonize

KINDS = ("fluo", "color", "bright")
DATA = Path(os.environ.get("NAPARI_UNET_DSB2018", Path(__file__).resolve().parents[2] / "shared/data/dsb2018"))


@dataclass(frozen=True)
class StrokeProtocol:
    """How the simulated user paints (lengths in pixels)."""

    nucleus_share: float = 0.1  # share of nuclei that get a line through them (at least one)
    erosion: int = 2  # the nucleus line keeps this far inside its nucleus where the nucleus is big enough
    background_lines_per_512: float = 12.0  # background lines per 512×512 pixels of image
    min_background_lines: int = 3
    background_length: tuple[int, int] = (20, 80)
    margin: float = 3.0  # background lines keep more than this distance from any nucleus
    tries: int = 50  # random placements tried per background line; the longest is kept


@dataclass(frozen=True)
class RealImage:
    """One data set image: ``image`` uint8 ``YX`` (grey) or ``YXC`` (colour), ``labels`` uint16 instances."""

    id: str
    kind: str
    image: np.ndarray
    labels: np.ndarray

    @property
    def channel_axis(self) -> int | None:
        return -1 if self.image.ndim == 3 else None


def load_index(split: str, root: Path = DATA) -> list[dict]:
    """The entries of ``root/split/index.json`` (``id``, ``shape``, ``kind``, ``n``, ``fg``, ``mean``)."""
    path = Path(root) / split / "index.json"
    if not path.is_file():
        raise SystemExit(f"no {path}: set NAPARI_UNET_DSB2018 (or --data-dir) to the dsb2018 folder")
    return json.loads(path.read_text())


def select(
    index: Sequence[dict], kinds: Sequence[str] = KINDS, limit: int | None = None, ids: Sequence[str] | None = None
) -> list[dict]:
    """Entries of the chosen ``kinds`` in index order: the first ``limit`` of each kind, or exactly ``ids``."""
    if ids:
        unknown = sorted(set(ids) - {entry["id"] for entry in index})
        if unknown:
            raise SystemExit(f"unknown image ids {unknown}")
        return [entry for entry in index if entry["id"] in ids]
    chosen = []
    for kind in kinds:
        chosen += [entry for entry in index if entry["kind"] == kind][:limit]
    return chosen


def load_image(split: str, image_id: str, kind: str, root: Path = DATA) -> RealImage:
    with np.load(Path(root) / split / f"{image_id}.npz") as data:
        return RealImage(image_id, kind, data["image"], data["labels"])


def simulate_strokes(labels: np.ndarray, seed: int, protocol: StrokeProtocol = StrokeProtocol()) -> np.ndarray:
    """Strokes ``(Y, X)`` uint8 (1 = background, 2 = nucleus) from instance ``labels`` ``(Y, X)``.

    Seeded: the same labels and seed give the same strokes. At least one stroke of each class when the
    image has a nucleus and background far enough from it.
    """
    rng = np.random.default_rng(seed)
    strokes = np.zeros(labels.shape, np.uint8)
    boxes = ndi.find_objects(labels)
    present = [value for value, box in enumerate(boxes, start=1) if box is not None]
    count = min(len(present), max(1, round(protocol.nucleus_share * len(present))))
    for value in rng.choice(present, size=count, replace=False) if present else []:
        box = _padded(boxes[value - 1], labels.shape)
        ys, xs = _nucleus_line(labels[box] == value, protocol.erosion)
        strokes[ys + box[0].start, xs + box[1].start] = 2
    distance = ndi.distance_transform_edt(labels == 0)
    lines = max(protocol.min_background_lines, round(protocol.background_lines_per_512 * labels.size / 512**2))
    for _ in range(lines):
        ys, xs = _background_line(distance, protocol, rng)
        strokes[ys, xs] = 1
    return strokes


def _padded(box: tuple[slice, slice], shape: tuple[int, ...]) -> tuple[slice, slice]:
    return tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, shape))


def _nucleus_line(mask: np.ndarray, erosion: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a line through the middle of ``mask`` along its major axis, inside ``mask`` eroded
    by up to ``erosion`` px (less where that would keep under a quarter of a small nucleus); the skeleton
    where the axis leaves it."""
    for radius in range(erosion, 0, -1):
        inner = ndi.binary_erosion(mask, disk(radius))
        if inner.sum() * 4 >= mask.sum():
            break
    else:
        inner = mask
    coords = np.argwhere(inner).astype(float)
    centre = coords.mean(0)
    if len(coords) > 1:
        _, vectors = np.linalg.eigh(np.cov(coords.T))
        direction = vectors[:, -1]
    else:
        direction = np.array([0.0, 1.0])
    reach = float(np.hypot(*inner.shape))
    start, end = np.round(centre - reach * direction), np.round(centre + reach * direction)
    ys, xs = draw_line(int(start[0]), int(start[1]), int(end[0]), int(end[1]))
    inside = (ys >= 0) & (ys < inner.shape[0]) & (xs >= 0) & (xs < inner.shape[1])
    inside[inside] = inner[ys[inside], xs[inside]]
    middle = int(np.argmin((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2))
    if not inside[middle]:  # a bent nucleus: its skeleton is its middle
        return np.nonzero(skeletonize(inner))
    first, last = middle, middle
    while first > 0 and inside[first - 1]:
        first -= 1
    while last + 1 < len(ys) and inside[last + 1]:
        last += 1
    return ys[first : last + 1], xs[first : last + 1]


def _background_line(
    distance: np.ndarray, protocol: StrokeProtocol, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A straight line of 20–80 px from a random start, in a random direction, cut where it comes within
    ``margin`` of a nucleus or leaves the image; the longest of ``tries`` placements. Where no pixel is
    that far from every nucleus, the margin shrinks."""
    margin = protocol.margin
    allowed = distance > margin
    while not allowed.any() and margin > 0:
        margin -= 1
        allowed = distance > margin
    starts = np.flatnonzero(allowed)
    if len(starts) == 0:
        return np.empty(0, int), np.empty(0, int)
    best: tuple[np.ndarray, np.ndarray] = (np.empty(0, int), np.empty(0, int))
    for _ in range(protocol.tries):
        length = rng.uniform(*protocol.background_length)
        y, x = np.unravel_index(rng.choice(starts), distance.shape)
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = draw_line(y, x, round(y + length * math.sin(angle)), round(x + length * math.cos(angle)))
        ok = (ys >= 0) & (ys < distance.shape[0]) & (xs >= 0) & (xs < distance.shape[1])
        ok[ok] = allowed[ys[ok], xs[ok]]
        run = len(ok) if ok.all() else int(np.argmin(ok))
        if run > len(best[0]):
            best = (ys[:run], xs[:run])
        if run >= min(protocol.background_length[0], length):
            break
    return best
