"""Synthetic fluorescence nuclei with dense truth and simulated sparse strokes (no downloads).

The images imitate what makes real nuclei hard: touching and overlapping objects with dim seams,
a wide range of brightness, chromatin texture, blur, uneven illumination, background clutter
and Poisson/read noise. Everything is deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line_nd
from skimage.segmentation import relabel_sequential

SAMPLES = {  # the bundled sample data (napari's sample menu, the demo, bioimage.io test inputs)
    2: {"shape": (512, 512), "spacing": (1.0, 1.0), "seed": 0},
    3: {"shape": (48, 128, 128), "spacing": (2.0, 1.0, 1.0), "seed": 0},
}


@dataclass
class SyntheticSample:
    """One synthetic image: ``image`` (uint16, ZYX or YX), ``instances`` (0 = background, 1..N),
    ``strokes`` (0 = unpainted, 1 = background, 2 = nucleus) and the voxel ``spacing``."""

    image: np.ndarray
    instances: np.ndarray
    strokes: np.ndarray
    spacing: tuple[float, ...]

    @property
    def semantic(self) -> np.ndarray:
        """Dense truth in annotation values: 1 = background, 2 = nucleus."""
        return np.where(self.instances > 0, 2, 1).astype(np.uint8)


@dataclass(frozen=True)
class Style:
    """How a synthetic image looks; the defaults give the bundled sample data.

    ``photons`` sets the shot noise (photons at unit brightness), ``read_noise`` the camera noise
    (counts), ``psf_sigma`` the blur (physical units), ``brightness_spread`` the log-normal spread
    of nucleus brightness, ``texture`` the chromatin texture, ``edge_dimming`` how much darker a
    nucleus' rim is than its centre, ``clutter`` the background debris, ``background`` the
    out-of-focus haze, ``tilt`` the strength of the illumination gradient.
    """

    photons: float = 250.0
    read_noise: float = 6.0
    psf_sigma: float = 1.6
    brightness_spread: float = 0.45
    texture: float = 0.25
    edge_dimming: float = 0.45
    clutter: float = 0.08
    background: float = 0.12
    tilt: float = 0.35


def random_style(rng: np.random.Generator) -> Style:
    """A style drawn from the ranges the pretrained models saw (see scripts/pretrain.py)."""
    return Style(
        photons=float(np.exp(rng.uniform(np.log(25), np.log(1500)))),
        read_noise=float(rng.uniform(2, 15)),
        psf_sigma=float(rng.uniform(0.8, 3.0)),
        brightness_spread=float(rng.uniform(0.15, 0.7)),
        texture=float(rng.uniform(0.05, 0.5)),
        edge_dimming=float(rng.uniform(0.0, 0.7)),
        clutter=float(rng.uniform(0.0, 0.25)),
        background=float(rng.uniform(0.03, 0.4)),
        tilt=float(rng.uniform(0.0, 0.6)),
    )


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], sigma: Sequence[float]) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered white noise."""
    field = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return (field - field.mean()) / (field.std() + 1e-8)


def _random_rotation(rng: np.random.Generator, ndim: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    return q * np.sign(np.diag(r))


def _place_nuclei(
    rng: np.random.Generator,
    shape: Sequence[int],
    spacing: np.ndarray,
    radius_range: tuple[float, float],
    density: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Centres (voxels) and radii (physical units), close enough that many nuclei touch."""
    extent = np.asarray(shape) * spacing
    mean_radius = float(np.mean(radius_range))
    n_target = int(density * np.prod(extent) / np.prod(2 * mean_radius * np.ones(len(shape))))
    centres: list[np.ndarray] = []
    radii: list[float] = []
    for _ in range(n_target * 30):
        if len(centres) >= n_target:
            break
        radius = rng.uniform(*radius_range)
        centre = rng.uniform(0, 1, len(shape)) * extent
        if centres:
            distance = np.linalg.norm(np.asarray(centres) - centre, axis=1)
            if np.any(distance < 0.8 * (np.asarray(radii) + radius)):
                continue
        centres.append(centre)
        radii.append(radius)
    return np.asarray(centres) / spacing, np.asarray(radii)


def _rasterise(
    rng: np.random.Generator, shape: Sequence[int], spacing: np.ndarray, centres: np.ndarray, radii: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Instance labels and a per-voxel normalised distance to the owning nucleus' centre."""
    ndim = len(shape)
    wobble = _smooth_noise(rng, shape, 4.0 / spacing)
    best = np.full(shape, np.inf, np.float32)
    labels = np.zeros(shape, np.int32)
    for index, (centre, radius) in enumerate(zip(centres, radii), start=1):
        axes = radius * rng.uniform(0.75, 1.25, ndim)
        rotation = _random_rotation(rng, ndim)
        reach = np.ceil(axes.max() * 1.3 / spacing).astype(int)
        lo = np.maximum(np.floor(centre).astype(int) - reach, 0)
        hi = np.minimum(np.floor(centre).astype(int) + reach + 1, shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1)
        local = ((grid - centre) * spacing) @ rotation
        distance = np.linalg.norm(local / axes, axis=-1) * (1 + 0.1 * wobble[box])
        inside = (distance < 1) & (distance < best[box])
        best[box][inside] = distance[inside]
        labels[box][inside] = index
    return labels, best


def _render(
    rng: np.random.Generator, labels: np.ndarray, distance: np.ndarray, spacing: np.ndarray, style: Style
) -> np.ndarray:
    """Fluorescence image (uint16) for the given nuclei."""
    shape = labels.shape
    n = int(labels.max())
    brightness = np.concatenate([[0.0], rng.lognormal(0.0, style.brightness_spread, n)]).astype(np.float32)
    texture = 1 + style.texture * _smooth_noise(rng, shape, 1.2 / spacing)
    profile = np.where(labels > 0, 1 - style.edge_dimming * np.minimum(distance, 1) ** 2, 0)
    signal = brightness[labels] * profile * texture
    clutter = np.clip(_smooth_noise(rng, shape, 6.0 / spacing), 0, None) * style.clutter
    psf = np.array([1.0] * len(shape)) / spacing * np.array([style.psf_sigma] * len(shape))
    blurred = ndi.gaussian_filter(signal + clutter, psf)
    coords = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    tilt = rng.uniform(-style.tilt, style.tilt, len(shape))
    gradient = sum(t * c for t, c in zip(tilt, coords))
    illumination = 1 + gradient + 0.15 * _smooth_noise(rng, shape, 40 / spacing)
    photons = style.photons * np.clip(blurred * illumination + style.background, 0, None)
    noisy = rng.poisson(photons).astype(np.float32) + rng.normal(0, style.read_noise, shape) + 100
    return np.clip(noisy, 0, 65535).astype(np.uint16)


def _first_run(line: tuple[np.ndarray, ...], inside: np.ndarray) -> tuple[np.ndarray, ...]:
    """The part of a rasterised line before it first leaves the allowed region."""
    stop = int(np.argmin(inside)) if not inside.all() else len(inside)
    return tuple(c[:stop] for c in line)


def simulate_strokes(
    instances: np.ndarray, fraction: float = 0.002, seed: int = 0, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """Strokes a careful user might paint, about ``fraction`` of all voxels split evenly by class.

    Object strokes (2) are short lines through nuclei, at least 2 units inside; background strokes (1)
    are lines at least 2 units from any nucleus, half of them starting in the gaps next to nuclei
    (where users paint to separate objects), half anywhere in the background. In 3D, lines run mostly
    within a plane. Returns uint8: 0 = unpainted, 1 = background, 2 = nucleus.
    """
    rng = np.random.default_rng(seed)
    spacing = np.asarray(spacing if spacing is not None else [1.0] * instances.ndim)
    strokes = np.zeros(instances.shape, np.uint8)
    budget = max(int(fraction * instances.size / 2), 8)
    inside = ndi.distance_transform_edt(instances > 0, sampling=spacing)
    outside = ndi.distance_transform_edt(instances == 0, sampling=spacing)
    allowed = {2: inside >= 2, 1: outside >= 2}
    starts = {2: np.argwhere(allowed[2]), 1: np.argwhere(allowed[1])}
    gaps = np.argwhere((outside >= 2) & (outside <= 5))
    shape = np.array(instances.shape) - 1
    for value, length_range in ((2, (6.0, 22.0)), (1, (10.0, 35.0))):
        painted = attempts = 0
        while painted < budget and attempts < 5000 and len(starts[value]):
            attempts += 1
            pool = gaps if value == 1 and len(gaps) and rng.random() < 0.5 else starts[value]
            start = pool[rng.integers(len(pool))]
            direction = rng.standard_normal(instances.ndim) / spacing
            if instances.ndim == 3:
                direction[0] *= 0.15
            end = np.clip(start + direction / np.linalg.norm(direction) * rng.uniform(*length_range), 0, shape)
            line = tuple(np.asarray(c) for c in line_nd(start, end, endpoint=True))
            line = _first_run(line, allowed[value][line])
            if value == 2:  # stay within the nucleus the stroke started in
                line = _first_run(line, instances[line] == instances[tuple(start)])
            new = strokes[line] == 0
            strokes[tuple(c[new] for c in line)] = value
            painted += int(new.sum())
    return strokes


def synthetic_nuclei(
    shape: Sequence[int] = (512, 512),
    *,
    spacing: Sequence[float] | None = None,
    radius_range: tuple[float, float] = (7.0, 13.0),
    density: float = 0.45,
    stroke_fraction: float = 0.002,
    style: Style = Style(),  # frozen, so one shared default is safe
    seed: int = 0,
) -> SyntheticSample:
    """A 2D (YX) or 3D (ZYX) synthetic nuclei image with dense truth and sparse strokes.

    ``spacing`` is the voxel size per axis (e.g. ``(2, 1, 1)`` for Z twice as coarse);
    ``radius_range`` is in the units of ``spacing``; ``density`` roughly the covered fraction;
    ``style`` how the image looks (noise, blur, texture, ...).
    """
    rng = np.random.default_rng(seed)
    spacing_arr = np.asarray(spacing if spacing is not None else [1.0] * len(shape), float)
    centres, radii = _place_nuclei(rng, shape, spacing_arr, radius_range, density)
    labels, distance = _rasterise(rng, shape, spacing_arr, centres, radii)
    labels = relabel_sequential(labels)[0].astype(np.int32)
    image = _render(rng, labels, distance, spacing_arr, style)
    strokes = simulate_strokes(labels, stroke_fraction, seed=seed + 1, spacing=spacing_arr)
    return SyntheticSample(image, labels, strokes, tuple(float(s) for s in spacing_arr))


@lru_cache(maxsize=2)
def nuclei_sample(dim: int = 2) -> SyntheticSample:
    """The 2D (512×512) or 3D (48×128×128, Z twice as coarse) sample; arrays are shared, copy before editing."""
    settings = SAMPLES[dim]
    return synthetic_nuclei(settings["shape"], spacing=settings["spacing"], seed=settings["seed"])
