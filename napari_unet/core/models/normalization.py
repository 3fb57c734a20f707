"""Robust percentile normalisation of ``(C, *spatial)`` images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import NormalizationConfig

_MAX_SAMPLES = 4_000_000


def percentile_ranges(image, low: float, high: float) -> list[list[float]]:
    """Per-channel ``[p_low, p_high]`` of ``image`` ``(C, *spatial)``, ignoring NaN/inf.

    Large images are subsampled with a regular stride, which keeps the estimate unbiased and the
    memory small, so ``image`` may be a :class:`~.lazy.ChannelsFirstView` on disk (its chunks are
    then each read once, for the sample).
    """
    spatial = image.shape[1:]
    size = int(np.prod(spatial))
    stride = max(1, int(np.ceil((size / _MAX_SAMPLES) ** (1 / len(spatial)))))
    ranges = []
    for c in range(image.shape[0]):
        values = np.asarray(image[(slice(c, c + 1), *(slice(None, None, stride),) * len(spatial))]).ravel()
        if values.dtype.kind == "b":
            values = values.view(np.uint8)
        elif values.dtype.kind == "f":  # integers are always finite: no float copy of them
            values = values[np.isfinite(values)]
        if values.size == 0:
            ranges.append([0.0, 1.0])
            continue
        lo, hi = np.percentile(values, [low, high])
        ranges.append([float(lo), float(hi)])
    return ranges


def reduce_rgb(image: np.ndarray, weights: list[float] | None) -> np.ndarray:
    """``(3, *spatial)`` RGB → ``(1, *spatial)`` float32 weighted sum when ``weights`` are given;
    any other image (or no weights) is returned as is."""
    if weights is None or image.shape[0] != 3:
        return image
    image = np.asarray(image)
    grey = np.zeros(image.shape[1:], np.float32)
    for channel, weight in zip(image, weights):
        grey += np.float32(weight) * channel
    return grey[None]


def colour_channels(image: np.ndarray, grey_range: Sequence[float]) -> np.ndarray:
    """``(3, *spatial)`` RGB → float32, each channel mapped as the model maps their weighted grey sum
    (``grey_range``: the ``[low, high]`` that become 0 and 1): what the pixel classifier sees of an image the
    network sees as one grey channel. One map for all three keeps their balance (the colour), and it comes
    from the image's own percentiles, as the network's does, so exposure and dtype do not matter."""
    low, high = grey_range
    out = np.asarray(image, np.float32) - np.float32(low)
    out *= np.float32(1.0 / max(high - low, 1e-12))
    return np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)


def usable_ranges(ranges: list[list[float]], config: NormalizationConfig) -> list[list[float]]:
    """``ranges`` with a flat channel's (``high - low`` ≈ 0) replaced by the range fitted at training."""
    return [
        list(config.fitted[c]) if high - low <= 1e-12 and c < len(config.fitted) else [low, high]
        for c, (low, high) in enumerate(ranges)
    ]


def normalize(image: np.ndarray, config: NormalizationConfig, ranges: list[list[float]] | None = None) -> np.ndarray:
    """``(C, *spatial)`` any dtype → float32 scaled so the percentiles map to 0 and 1.

    Percentiles are taken from ``image`` itself unless ``ranges`` gives them (e.g. measured on
    the whole of a large image, for one block of it); a flat channel falls back to the range
    fitted at training time. Non-finite pixels become 0.
    """
    if ranges is None:
        ranges = percentile_ranges(image, config.low_percentile, config.high_percentile)
    out = np.empty(image.shape, np.float32)
    for c, (lo, hi) in enumerate(usable_ranges(ranges, config)):
        scale = 1.0 / max(hi - lo, 1e-12)
        np.subtract(image[c], lo, out=out[c], casting="unsafe")
        out[c] *= scale
    np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return out
