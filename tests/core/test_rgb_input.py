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


def test_the_pixel_classifier_fits_on_colour_and_predict_gives_it_colour(nuclei_2d):
    """The network sees the grey sum; the classifier sees the three channels (stains differ by colour), in
    training and in predict, which give the same classifier mask; a grey image reaches it as three equal
    channels."""
    from napari_unet.core.train.features import features_per_channel

    hue = np.where(nuclei_2d.image > np.median(nuclei_2d.image), 1.0, 0.0)
    rgb = np.stack([nuclei_2d.image * 0 + 0.5, hue, 1 - hue], axis=-1).astype(np.float32)
    model = _rgb_model()
    model.config.normalization.rgb_weights = [1.0, 0.0, 0.0]  # the grey image is flat: only colour tells
    tuned = train(rgb, nuclei_2d.strokes, channel_axis=-1, init=model, steps=1, time_budget=None, device="cpu", seed=0)
    classifier = tuned.pixel_classifier
    per_channel = features_per_channel(2, classifier.config.sigma_min, classifier.config.sigma_max)
    assert classifier.channels == 3 and classifier.features.shape[1] == 3 * per_channel
    tuned.config.selection["chosen"] = "pixel classifier"
    raw = np.moveaxis(rgb, -1, 0)
    seen = tuned.classifier_input(raw, tuned.normalize(raw))
    assert seen.shape == raw.shape
    predicted = predict(tuned, rgb, channel_axis=-1, device="cpu", probabilities=True).probabilities
    np.testing.assert_allclose(predicted, classifier.probabilities(seen))
    assert np.unique(predicted.argmax(0)).size == 2  # colour alone separates the classes
    grey = predict(tuned, nuclei_2d.image, device="cpu").labels  # three equal channels for the colour classifier
    assert grey.shape == nuclei_2d.image.shape and np.isin(grey, [1, 2]).all()


def test_a_model_whose_classifier_saw_grey_keeps_feeding_it_grey(rng):
    """Models saved before the classifier saw colour: their classifier's features are of the grey channel."""
    from napari_unet.core.train.pixel_classifier import PixelClassifier

    grey = rng.random((1, 40, 40), dtype=np.float32)
    strokes = np.zeros((40, 40), np.uint8)
    strokes[5, 5:30], strokes[30, 5:30] = 1, 2
    model = _rgb_model()
    model.pixel_classifier = PixelClassifier.fit(grey, strokes, dim=2, num_classes=2)
    model.config.selection = {"chosen": "pixel classifier"}
    rgb = rng.integers(0, 256, (3, 40, 40), dtype=np.uint8)
    normalized = model.normalize(rgb)
    assert model.pixel_classifier.channels == 1
    assert model.classifier_input(rgb, normalized) is normalized
    assert model.classifier_input(rgb, normalized, fitting=True).shape == (3, 40, 40)
    labels = predict(model, np.moveaxis(rgb, 0, -1), channel_axis=-1, device="cpu").labels
    assert labels.shape == (40, 40)


def test_the_classifier_sees_colour_as_the_network_sees_grey_whatever_the_dtype(rng):
    """Each colour channel is mapped as the grey sum is (its percentiles, as the network's input), so the same
    image as uint8 or as float32 in 0..255 gives the classifier the same input."""
    model = _rgb_model()
    rgb = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    seen = model.classifier_input(rgb, model.normalize(rgb), fitting=True)
    as_float = rgb.astype(np.float32)
    same = model.classifier_input(as_float, model.normalize(as_float), fitting=True)
    np.testing.assert_allclose(same, seen, rtol=1e-6)
    weights = np.float32(WEIGHTS)[:, None, None]
    grey = (as_float * weights).sum(0)
    np.testing.assert_allclose((seen * weights).sum(0), model.normalize(grey[None])[0], atol=1e-5)
