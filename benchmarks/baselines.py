"""The random-forest peer: scikit-image trainable segmentation (the ilastik recipe)."""

from __future__ import annotations

from functools import partial

import numpy as np


def random_forest_segmentation(
    image: np.ndarray, strokes: np.ndarray, seed: int = 0, channel_axis: int | None = None
) -> np.ndarray:
    """Labels (annotation values) from a random forest on ``multiscale_basic_features``.

    The same features ilastik offers by default (intensity, edges, texture over σ = 1..16; for each channel
    of a ``channel_axis``), 100 trees, all cores.
    """
    from skimage.feature import multiscale_basic_features
    from skimage.future import fit_segmenter, predict_segmenter
    from sklearn.ensemble import RandomForestClassifier

    features = partial(
        multiscale_basic_features,
        intensity=True,
        edges=True,
        texture=True,
        sigma_min=1,
        sigma_max=16,
        channel_axis=channel_axis,
    )
    image = image.astype(np.float32)
    computed = features(image)
    forest = RandomForestClassifier(n_estimators=100, n_jobs=-1, max_depth=10, random_state=seed)
    forest = fit_segmenter(strokes, computed, forest)
    return predict_segmenter(computed, forest).astype(np.uint8)
