"""Multiscale features: scikit-image's values, one scale at a time; the 3×3 closed form; interruption."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.feature import hessian_matrix_eigvals, multiscale_basic_features

from napari_unet.core.train.features import (
    Interrupted,
    features_per_channel,
    multiscale_features,
    symmetric_3x3_eigenvalues,
)


@pytest.mark.parametrize(
    ("shape", "sigma_max"), [((1, 60, 75), 16.0), ((3, 40, 45), 4.0), ((1, 12, 30, 34), 8.0), ((2, 7, 20, 21), 2.0)]
)
def test_the_values_of_scikit_image(shape, sigma_max):
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    expected = multiscale_basic_features(np.moveaxis(image, 0, -1), sigma_min=1.0, sigma_max=sigma_max, channel_axis=-1)
    features = multiscale_features(image, 1.0, sigma_max)
    assert features.dtype == np.float32
    assert features.shape[-1] == shape[0] * features_per_channel(len(shape) - 1, 1.0, sigma_max)
    np.testing.assert_array_equal(features, expected)


def test_the_closed_form_matches_lapack_even_near_repeated_eigenvalues():
    rng = np.random.default_rng(1)
    shape = (20, 30, 40)
    general = [rng.normal(size=shape).astype(np.float32) for _ in range(6)]
    nearly_equal = [1e-4 * rng.normal(size=shape).astype(np.float32) for _ in range(6)]
    for diagonal in (0, 3, 5):
        nearly_equal[diagonal] += 2.0
    constant = [np.full(shape, value, np.float32) for value in (1, 0, 0, 1, 0, 1)]
    for elements in (general, nearly_equal, constant):
        np.testing.assert_array_equal(symmetric_3x3_eigenvalues(elements), hessian_matrix_eigvals(elements))


def test_interrupted_between_steps():
    image = np.zeros((1, 8, 16, 16), np.float32)
    asked = []

    def interrupted() -> bool:
        asked.append(True)
        return len(asked) > 2

    with pytest.raises(Interrupted):
        multiscale_features(image, 1.0, 4.0, interrupted=interrupted)
    assert len(asked) == 3


def test_an_inner_box_written_into_a_bigger_array():
    image = np.random.default_rng(2).normal(size=(1, 10, 30, 40)).astype(np.float32)
    whole = multiscale_features(image, 1.0, 2.0)
    target = np.zeros((12, 20, 20, whole.shape[-1]), np.float32)
    inner = (slice(2, 8), slice(5, 25), slice(10, 30))
    multiscale_features(image, 1.0, 2.0, inner=inner, out=target[3:9])
    np.testing.assert_array_equal(target[3:9], whole[inner])
    assert not target[:3].any() and not target[9:].any()
