"""Multiscale voxel features (intensity, edges, Hessian eigenvalues per scale): the values of
``skimage.feature.multiscale_basic_features``, computed one scale at a time into one output array.

scikit-image computes every scale at once in a thread each and stacks the results, so a 3D block of N
voxels peaks near 160 bytes per voxel per channel (2.7 GB for 63×256×256, measured). Here the features go
straight into their place, the Hessian's eigenvalues (pointwise, the slow part in 3D) in slabs, so the peak
is the output plus one scale's temporaries (about 60 bytes per voxel). In 3D the eigenvalues come from
the closed form for symmetric 3×3 matrices, 6× faster than LAPACK per voxel. The values are the same, so
models fitted on either give the same masks.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations_with_replacement

import numpy as np

SLAB_VOXELS = 1 << 18  # voxels per slab of eigenvalues: bounds their (voxels, d, d) temporaries


def scales(sigma_min: float, sigma_max: float) -> np.ndarray:
    """scikit-image's default scales: ``sigma_min`` times powers of 2 up to ``sigma_max``."""
    count = int(np.log2(sigma_max) - np.log2(sigma_min) + 1)
    return np.logspace(np.log2(sigma_min), np.log2(sigma_max), num=count, base=2, endpoint=True)


def features_per_channel(ndim: int, sigma_min: float, sigma_max: float) -> int:
    """Intensity, edges and ``ndim`` eigenvalues per scale."""
    return len(scales(sigma_min, sigma_max)) * (2 + ndim)


def multiscale_features(
    image: np.ndarray,
    sigma_min: float,
    sigma_max: float,
    *,
    inner: tuple[slice, ...] | None = None,
    out: np.ndarray | None = None,
    workers: int = 2,
    interrupted: Callable[[], bool] | None = None,
) -> np.ndarray:
    """``(C, *spatial)`` float32 image → ``(*inner shape, F)`` float32 features of the ``inner`` box (None: all),
    channel by channel and scale by scale as scikit-image orders them; written into ``out`` when given (a
    view of a bigger array: no copy). ``workers`` threads share the eigenvalue slabs. ``interrupted`` is asked
    between steps; when it says so, :class:`Interrupted` is raised."""
    from skimage import filters

    spatial, ndim = image.shape[1:], image.ndim - 1
    inner = inner or tuple(slice(0, size) for size in spatial)
    per_scale = 2 + ndim
    sigmas = scales(sigma_min, sigma_max)
    if out is None:
        shape = [len(range(*box.indices(size))) for box, size in zip(inner, spatial)]
        out = np.empty((*shape, len(image) * len(sigmas) * per_scale), np.float32)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for channel, plane in enumerate(np.asarray(image, np.float32)):
            plane = np.ascontiguousarray(plane)
            for index, sigma in enumerate(sigmas):
                check(interrupted)
                first = (channel * len(sigmas) + index) * per_scale
                smooth = filters.gaussian(plane, sigma=sigma, preserve_range=False)
                out[..., first] = smooth[inner]
                out[..., first + 1] = filters.sobel(smooth)[inner]
                _hessian_eigenvalues(smooth, inner, out[..., first + 2 : first + per_scale], pool, interrupted)
    return out


class Interrupted(Exception):
    """Feature computation was asked to stop."""


def check(interrupted: Callable[[], bool] | None) -> None:
    """Raise :class:`Interrupted` when ``interrupted`` says so."""
    if interrupted is not None and interrupted():
        raise Interrupted


def _hessian_eigenvalues(
    smooth: np.ndarray,
    inner: tuple[slice, ...],
    out: np.ndarray,
    pool: ThreadPoolExecutor,
    interrupted: Callable[[], bool] | None,
) -> None:
    """Eigenvalues (decreasing) of the finite-difference Hessian of ``smooth``, in its ``inner`` box, into
    ``out`` ``(*inner shape, d)``, as scikit-image's texture features, slab by slab along the first axis."""
    from skimage.feature import hessian_matrix_eigvals

    gradients = np.gradient(smooth)
    pairs = combinations_with_replacement(range(smooth.ndim), 2)
    elements = [np.gradient(gradients[a], axis=b)[inner] for a, b in pairs]
    del gradients
    eigenvalues = symmetric_3x3_eigenvalues if smooth.ndim == 3 else hessian_matrix_eigvals
    step = max(1, SLAB_VOXELS // max(1, int(np.prod(out.shape[1:-1]))))

    def slab(start: int) -> None:
        check(interrupted)
        rows = slice(start, start + step)
        out[rows] = np.moveaxis(eigenvalues([e[rows] for e in elements]), 0, -1)

    list(pool.map(slab, range(0, len(out), step)))


def symmetric_3x3_eigenvalues(elements: list[np.ndarray]) -> np.ndarray:
    """Eigenvalues, decreasing, ``(3, *shape)`` float32, of symmetric 3×3 matrices given by their upper
    triangle ``[a00, a01, a02, a11, a12, a22]`` (each ``shape``): the closed form (trigonometric, in float64).
    scikit-image's ``hessian_matrix_eigvals`` calls LAPACK per voxel, 6× slower; rounded to float32 the
    values match it (tests/core/test_features.py)."""
    a00, a01, a02, a11, a12, a22 = (np.asarray(e, np.float64) for e in elements)
    mean = (a00 + a11 + a22) / 3
    b00, b11, b22 = a00 - mean, a11 - mean, a22 - mean
    spread = np.sqrt((b00 * b00 + b11 * b11 + b22 * b22 + 2 * (a01 * a01 + a02 * a02 + a12 * a12)) / 6)
    determinant = b00 * (b11 * b22 - a12 * a12) - a01 * (a01 * b22 - a12 * a02) + a02 * (a01 * a12 - b11 * a02)
    ratio = np.clip(determinant / (2 * np.where(spread > 0, spread, 1.0) ** 3), -1.0, 1.0)
    angle = np.arccos(ratio) / 3
    largest = mean + 2 * spread * np.cos(angle)
    smallest = mean + 2 * spread * np.cos(angle + 2 * np.pi / 3)
    return np.stack([largest, 3 * mean - largest - smallest, smallest]).astype(np.float32)
