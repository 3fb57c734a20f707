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
    training and in predict, which give the same classifier mask."""
    from napari_unet.core.models.normalization import colour_channels
    from napari_unet.core.train.features import features_per_channel

    hue = np.where(nuclei_2d.image > np.median(nuclei_2d.image), 1.0, 0.0)
    rgb = np.stack([nuclei_2d.image * 0 + 0.5, hue, 1 - hue], axis=-1).astype(np.float32)
    model = _rgb_model()
    model.config.normalization.rgb_weights = [1.0, 0.0, 0.0]  # the grey image is flat: only colour tells
    tuned = train(rgb, nuclei_2d.strokes, channel_axis=-1, init=model, steps=1, time_budget=None, device="cpu", seed=0)
    classifier = tuned.pixel_classifier
    per_channel = features_per_channel(2, classifier.config.sigma_min, classifier.config.sigma_max)
    assert classifier.channels == 3 and classifier.features.shape[1] == 3 * per_channel
    expected = classifier.probabilities(colour_channels(np.moveaxis(rgb, -1, 0)))
    tuned.config.selection["chosen"] = "pixel classifier"
    predicted = predict(tuned, rgb, channel_axis=-1, device="cpu", probabilities=True).probabilities
    np.testing.assert_allclose(predicted, expected)
    assert np.unique(predicted.argmax(0)).size == 2  # colour alone separates the classes


def test_a_model_whose_classifier_saw_grey_keeps_feeding_it_grey(rng):
    """Models saved before the classifier saw colour: their classifier's features are of the grey channel."""
    from napari_unet.core.train.pixel_classifier import PixelClassifier

    grey = rng.random((1, 40, 40), dtype=np.float32)
    strokes = np.zeros((40, 40), np.uint8)
    strokes[5, 5:30], strokes[30, 5:30] = 1, 2
    model = _rgb_model()
    model.pixel_classifier = PixelClassifier.fit(grey, strokes, dim=2, num_classes=2)
    rgb = rng.integers(0, 256, (3, 40, 40), dtype=np.uint8)
    normalized = model.normalize(rgb)
    assert model.pixel_classifier.channels == 1
    assert model.classifier_input(rgb, normalized) is normalized
    assert model.classifier_input(rgb, normalized, fitting=True).shape == (3, 40, 40)


@pytest.mark.parametrize(("dtype", "top"), [(np.uint8, 255), (np.uint16, 65535), (np.int16, 32767), (np.float32, 7.5)])
def test_colour_channels_scale_by_the_dtype_range_so_blocks_match_the_whole(dtype, top):
    from napari_unet.core.models.normalization import colour_channels

    image = np.zeros((3, 4, 4), dtype)
    image[1, 2, 2] = top
    scaled = colour_channels(image)
    assert scaled.dtype == np.float32
    assert scaled[1, 2, 2] == pytest.approx(1.0 if np.issubdtype(dtype, np.integer) else top)
    np.testing.assert_array_equal(colour_channels(image[:, 1:3]), scaled[:, 1:3])
