"""The random-forest peer: scikit-image trainable segmentation (the ilastik recipe)."""

from __future__ import annotations

from functools import partial

import numpy as np


def random_forest_probabilities(
    image: np.ndarray, strokes: np.ndarray, seed: int = 0, channel_axis: int | None = None
) -> np.ndarray:
    """Class probabilities ``(K, *spatial)`` (class k is annotation value k + 1) from a random forest on
    ``multiscale_basic_features``.

    The same features ilastik offers by default (intensity, edges, texture over σ = 1..16; for each channel
    of a ``channel_axis``), 100 trees, all cores; fitted as ``skimage.future.fit_segmenter`` does.
    """
    from skimage.feature import multiscale_basic_features
    from skimage.future import fit_segmenter
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
    computed = features(image.astype(np.float32))
    forest = RandomForestClassifier(n_estimators=100, n_jobs=-1, max_depth=10, random_state=seed)
    forest = fit_segmenter(strokes, computed, forest)
    probabilities = forest.predict_proba(computed.reshape(-1, computed.shape[-1]))
    probabilities = probabilities.T.reshape(len(forest.classes_), *computed.shape[:-1]).astype(np.float32)
    full = np.zeros((max(2, int(forest.classes_.max())), *computed.shape[:-1]), np.float32)
    full[forest.classes_ - 1] = probabilities
    return full


def random_forest_segmentation(
    image: np.ndarray, strokes: np.ndarray, seed: int = 0, channel_axis: int | None = None
) -> np.ndarray:
    """Labels (annotation values) of :func:`random_forest_probabilities`, as ``predict_segmenter`` gives them."""
    probabilities = random_forest_probabilities(image, strokes, seed, channel_axis)
    return (probabilities.argmax(0) + 1).astype(np.uint8)
