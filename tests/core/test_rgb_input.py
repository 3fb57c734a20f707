"""A 1-channel model that records ``rgb_weights`` takes RGB images: reduced to one channel by itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_unet.core.api import load_model, predict, train
from napari_unet.core.errors import UserInputError
from napari_unet.core.models.model import Model

WEIGHTS = [0.8, 0.1, 0.1]


def _rgb_model() -> Model:
    model = Model.create(dim=2)
    model.config.normalization.rgb_weights = list(WEIGHTS)
    return model


def test_rgb_image_is_predicted_as_its_recorded_weighted_sum(rng):
    model = _rgb_model()
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    grey = (rgb.astype(np.float32) * np.float32(WEIGHTS)).sum(-1)
    from_rgb = predict(model, rgb, channel_axis=-1, device="cpu", probabilities=True).probabilities
    from_grey = predict(model, grey, device="cpu", probabilities=True).probabilities
    np.testing.assert_allclose(from_rgb, from_grey, atol=1e-5)


def test_a_model_without_rgb_weights_refuses_rgb_in_one_line(rng):
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with pytest.raises(UserInputError, match="takes 1 channel") as error:
        predict(Model.create(dim=2), rgb, channel_axis=-1, device="cpu")
    assert "\n" not in str(error.value)


def test_rgb_weights_survive_saving_and_fine_tuning_on_rgb(tmp_path, nuclei_2d):
    _rgb_model().save(tmp_path / "start")
    assert json.loads((tmp_path / "start" / "config.json").read_text())["normalization"]["rgb_weights"] == WEIGHTS
    assert "0.8·R + 0.1·G + 0.1·B" in (tmp_path / "start" / "MODEL_CARD.md").read_text()
    rgb = np.stack([nuclei_2d.image] * 3, axis=-1)
    tuned = train(
        rgb, nuclei_2d.strokes, channel_axis=-1, init=tmp_path / "start", steps=2, time_budget=None, device="cpu"
    )
    assert tuned.in_channels == 1 and tuned.config.normalization.rgb_weights == WEIGHTS
    assert len(tuned.config.normalization.fitted) == 1  # the range of the reduced channel
    tuned.save(tmp_path / "tuned")
    labels = predict(load_model(tmp_path / "tuned"), rgb, channel_axis=-1, device="cpu").labels
    assert labels.shape == nuclei_2d.image.shape and np.isin(labels, [1, 2]).all()
