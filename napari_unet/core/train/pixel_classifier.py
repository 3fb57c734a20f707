"""A fast pixel classifier: a random forest on multiscale features (the ilastik recipe).

It is the first mask the user sees (about a second on a grey 1024² image on the CPU, 2-3 s on an RGB one)
and a candidate the trainer compares with the U-Net on held-out strokes. Features (intensity, edges, texture
at σ = 1..16 in 2D) come with the values of ``skimage.feature.multiscale_basic_features`` (see
:mod:`.features`) on the model-normalised image, per channel (an RGB image that the network sees as one grey
channel, in colour: see :meth:`~napari_unet.core.models.model.Model.classifier_input`). Prediction runs in
chunks with a halo covering the widest filter, so chunked and whole-image results are the same.

On disk only arrays: the training features and labels (``pixel_classifier.npz``, read with
``allow_pickle=False``); the forest is refitted from them at load, deterministically (fixed seed, one job).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import check, features_per_channel, multiscale_features

CLASSIFIER_FILE = "pixel_classifier.npz"
GAUSSIAN_TRUNCATE = 4.0  # scikit-image's default: the Gaussian kernels reach 4 σ
DERIVATIVE_REACH = 2  # voxels the Sobel and Hessian finite differences add on top of the Gaussian
PREDICT_THREADS = 2  # threads the forest predicts with...
PREDICT_BLOCK = 262_144  # ...on blocks of this many voxels (a Stop is heard between blocks)...
SPLIT_VOXELS = 65_536  # ...split between the threads from this many voxels on
MIN_EDGE = 3  # voxels per axis the finite differences need: thinner images are padded (edge values), then cropped


@dataclass
class PixelClassifierConfig:
    """Features and forest settings. ``max_voxels_per_class`` caps the painted voxels fitted per class (a
    seeded subsample), which keeps the fit fast and the file small. Features are computed in blocks of at
    most ``whole_voxels`` voxels × channels, halo included (memory about ``whole_voxels × features / channel
    × 4`` bytes, plus one scale's temporaries), whose insides are at most ``chunk`` voxels along each axis
    (see :func:`chunk_boxes`)."""

    sigma_min: float = 1.0
    sigma_max: float = 16.0
    trees: int = 100
    max_depth: int = 10
    max_voxels_per_class: int = 10_000
    seed: int = 0
    chunk: int = 1024
    whole_voxels: int = 4_000_000

    @classmethod
    def for_dim(cls, dim: int) -> PixelClassifierConfig:
        """2D: σ up to 16 (20 features per channel); 3D: σ up to 8 (20 features per channel)."""
        return cls() if dim == 2 else cls(sigma_max=8.0, chunk=256)

    @property
    def halo(self) -> int:
        """Voxels of context a chunk needs per side for exact features (the widest filter's reach)."""
        return int(GAUSSIAN_TRUNCATE * self.sigma_max + 0.5) + DERIVATIVE_REACH


def compute_features(
    normalized: np.ndarray,
    config: PixelClassifierConfig,
    inner: tuple[slice, ...] | None = None,
    out: np.ndarray | None = None,
    interrupted: Callable[[], bool] | None = None,
) -> np.ndarray:
    """``(C, *spatial)`` normalised image → ``(*inner shape, F)`` float32 features (all channels together) of
    the ``inner`` box (None: all), into ``out`` when given; ``interrupted`` as in :mod:`.features`."""
    spatial = normalized.shape[1:]
    image = np.asarray(normalized, np.float32)
    short = [max(0, MIN_EDGE - size) for size in spatial]
    if any(short):
        image = np.pad(image, [(0, 0)] + [(0, pad) for pad in short], mode="edge")
    inner = inner or tuple(slice(0, size) for size in spatial)
    return multiscale_features(image, config.sigma_min, config.sigma_max, inner=inner, out=out, interrupted=interrupted)


def chunk_boxes(
    spatial: tuple[int, ...], dim: int, config: PixelClassifierConfig, channels: int = 1
) -> list[tuple[slice, ...]]:
    """Boxes covering ``spatial``: one index at a time along the axes before the last ``dim`` (a 2D
    classifier on a stack works plane by plane); along the others, the whole extent when it holds at most
    ``config.whole_voxels`` voxels × channels, else equal pieces of at most ``config.chunk`` voxels, split
    further (the longest first) until a piece with its halo fits that budget. So an image just over the
    budget is cut in two, not into many small chunks whose halos would cost more than their insides."""
    extra = len(spatial) - dim
    sizes = spatial[extra:]
    small = channels * int(np.prod(sizes)) <= config.whole_voxels
    pieces = [1 if small else -(-size // config.chunk) for size in sizes]

    def edges() -> list[int]:
        return [-(-size // count) for size, count in zip(sizes, pieces)]

    def block_voxels() -> int:
        reach = [
            size if count == 1 else min(size, edge + 2 * config.halo)
            for size, count, edge in zip(sizes, pieces, edges())
        ]
        return channels * int(np.prod(reach))

    while block_voxels() > config.whole_voxels and max(edges()) > config.halo:
        longest = int(np.argmax(edges()))
        pieces[longest] += 1
    steps = [1] * extra + edges()
    ranges = [range(0, size, step) for size, step in zip(spatial, steps)]
    corners = itertools.product(*ranges)
    return [tuple(slice(c, min(c + e, s)) for c, e, s in zip(corner, steps, spatial)) for corner in corners]


def _chunk_features(
    normalized: np.ndarray,
    box: tuple[slice, ...],
    dim: int,
    config: PixelClassifierConfig,
    out: np.ndarray | None = None,
    interrupted: Callable[[], bool] | None = None,
) -> np.ndarray:
    """``(*box shape, F)`` features of one chunk, computed from the chunk plus its halo (into ``out``)."""
    spatial = normalized.shape[1:]
    extra = len(spatial) - dim
    halo = [0] * extra + [config.halo] * dim
    region = tuple(slice(max(0, b.start - h), min(s, b.stop + h)) for b, h, s in zip(box, halo, spatial))
    inner = tuple(slice(b.start - r.start, b.stop - r.start) for b, r in zip(box, region))
    block = normalized[(slice(None), *region)]
    planes = block.reshape(block.shape[0], *block.shape[1 + extra :])  # extra axes are one voxel here
    shape = tuple(b.stop - b.start for b in box)
    target = None if out is None else out.reshape(*shape[extra:], out.shape[-1])
    features = compute_features(planes, config, inner[extra:], target, interrupted)
    return features.reshape(*shape, -1)


class PixelClassifier:
    """A random forest over multiscale features, fitted on painted voxels.

    ``dim`` is the spatial rank it filters in (2: plane by plane on stacks). Output channel ``k`` of
    :meth:`probabilities` is annotation value ``k + 1``, over ``num_classes`` channels.
    """

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        *,
        dim: int,
        num_classes: int,
        config: PixelClassifierConfig,
    ) -> None:
        from sklearn.ensemble import RandomForestClassifier

        self.features, self.labels = np.asarray(features, np.float32), np.asarray(labels, np.uint8)
        self.dim, self.num_classes, self.config = dim, num_classes, config
        self.forest = RandomForestClassifier(
            n_estimators=config.trees, max_depth=config.max_depth, random_state=config.seed, n_jobs=1
        ).fit(self.features, self.labels)

    @classmethod
    def fit(
        cls,
        normalized: np.ndarray,
        annotations: np.ndarray,
        *,
        dim: int,
        num_classes: int,
        config: PixelClassifierConfig | None = None,
    ) -> PixelClassifier:
        """Fit on the painted voxels of ``annotations`` (spatial, 0 = unpainted) of a ``(C, *spatial)`` image."""
        config = config or PixelClassifierConfig.for_dim(dim)
        voxels = subsample_painted(annotations, config.max_voxels_per_class, config.seed)
        features = features_at(normalized, voxels, dim, config)
        return cls(features, annotations.ravel()[voxels], dim=dim, num_classes=num_classes, config=config)

    @property
    def channels(self) -> int:
        """Image channels it was fitted on (its features come per channel)."""
        per_channel = features_per_channel(self.dim, self.config.sigma_min, self.config.sigma_max)
        return self.features.shape[1] // per_channel

    def probabilities_of(self, features: np.ndarray, interrupted: Callable[[], bool] | None = None) -> np.ndarray:
        """``(N, F)`` features → ``(K, N)`` float32 class probabilities (0 for classes never painted).
        Voxels go in blocks of :data:`PREDICT_BLOCK` (``interrupted`` is asked between them, as in
        :mod:`.features`), each split between :data:`PREDICT_THREADS` threads (the trees release the GIL);
        every part is predicted whole, so the values do not depend on the split."""
        out = np.zeros((self.num_classes, len(features)), np.float32)
        rows = self.forest.classes_.astype(int) - 1

        def predict(part: slice) -> None:
            out[rows, part] = self.forest.predict_proba(features[part]).T

        with ThreadPoolExecutor(PREDICT_THREADS) as pool:
            for start in range(0, len(features), PREDICT_BLOCK):
                check(interrupted)
                stop = min(len(features), start + PREDICT_BLOCK)
                threads = PREDICT_THREADS if stop - start >= SPLIT_VOXELS else 1
                bounds = np.linspace(start, stop, threads + 1).astype(int)
                parts = [slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]
                list(pool.map(predict, parts))
        return out

    def probabilities(
        self,
        normalized: np.ndarray,
        region: tuple[slice, ...] | None = None,
        interrupted: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """``(K, *region shape)`` probabilities of ``region`` (None: all) of a ``(C, *spatial)`` image,
        chunk by chunk with a halo of real context (so any region or chunking gives the same values);
        ``interrupted`` as in :mod:`.features`."""
        spatial = normalized.shape[1:]
        region = region or tuple(slice(0, s) for s in spatial)
        region = tuple(slice(*r.indices(s)[:2]) for r, s in zip(region, spatial))
        shape = tuple(r.stop - r.start for r in region)
        out = np.empty((self.num_classes, *shape), np.float32)
        for local in chunk_boxes(shape, self.dim, self.config, len(normalized)):
            box = tuple(slice(r.start + b.start, r.start + b.stop) for r, b in zip(region, local))
            features = _chunk_features(normalized, box, self.dim, self.config, interrupted=interrupted)
            flat = features.reshape(-1, features.shape[-1])
            out[(slice(None), *local)] = self.probabilities_of(flat, interrupted).reshape(
                self.num_classes, *features.shape[:-1]
            )
        return out

    def save(self, directory: str | os.PathLike) -> None:
        """Write ``pixel_classifier.npz`` (arrays only) into ``directory``."""
        np.savez_compressed(Path(directory) / CLASSIFIER_FILE, features=self.features, labels=self.labels)

    @classmethod
    def load(
        cls, directory: str | os.PathLike, *, dim: int, num_classes: int, config: PixelClassifierConfig
    ) -> PixelClassifier:
        """Refit the forest from the arrays in ``directory`` (no pickles: ``allow_pickle=False``)."""
        with np.load(Path(directory) / CLASSIFIER_FILE, allow_pickle=False) as arrays:
            features, labels = arrays["features"], arrays["labels"]
        if features.ndim != 2 or labels.shape != (len(features),) or len(features) == 0:
            raise ValueError("the arrays do not describe a fitted classifier")
        return cls(features, labels, dim=dim, num_classes=num_classes, config=config)


def feature_map(
    normalized: np.ndarray,
    dim: int,
    config: PixelClassifierConfig,
    interrupted: Callable[[], bool] | None = None,
) -> np.ndarray:
    """``(*spatial, F)`` features of a whole ``(C, *spatial)`` image, chunk by chunk, each written in place
    (the same values as :func:`features_at`), for images small enough to hold them all. ``interrupted`` as
    in :mod:`.features`."""
    spatial = normalized.shape[1:]
    count = len(normalized) * features_per_channel(dim, config.sigma_min, config.sigma_max)
    out = np.empty((*spatial, count), np.float32)
    for box in chunk_boxes(spatial, dim, config, len(normalized)):
        _chunk_features(normalized, box, dim, config, out[box], interrupted)
    return out


def subsample_painted(annotations: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Sorted flat indices of painted voxels, at most ``cap`` per class (a seeded choice)."""
    rng = np.random.default_rng(seed)
    flat = annotations.ravel()
    chosen = []
    for value in np.unique(flat[flat > 0]):
        voxels = np.flatnonzero(flat == value)
        chosen.append(rng.choice(voxels, cap, replace=False) if len(voxels) > cap else voxels)
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.intp)


def features_at(
    normalized: np.ndarray,
    voxels: np.ndarray,
    dim: int,
    config: PixelClassifierConfig,
    interrupted: Callable[[], bool] | None = None,
) -> np.ndarray:
    """``(N, F)`` features of the voxels at flat indices ``voxels``: per chunk that holds some, only over
    their bounding box (with its halo), so the cost follows the strokes; ``interrupted`` as in :mod:`.features`."""
    spatial = normalized.shape[1:]
    coords = np.unravel_index(voxels, spatial)
    out: np.ndarray | None = None
    for box in chunk_boxes(spatial, dim, config, len(normalized)):
        inside = np.ones(len(voxels), bool)
        for axis, b in enumerate(box):
            inside &= (coords[axis] >= b.start) & (coords[axis] < b.stop)
        if not inside.any():
            continue
        local = [c[inside] for c in coords]
        around = tuple(slice(int(c.min()), int(c.max()) + 1) for c in local)
        features = _chunk_features(normalized, around, dim, config, interrupted=interrupted)
        if out is None:
            out = np.empty((len(voxels), features.shape[-1]), np.float32)
        out[inside] = features[tuple(c - a.start for c, a in zip(local, around))]
    return out if out is not None else np.zeros((0, 0), np.float32)
