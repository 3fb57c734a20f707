"""The fast pixel classifier: separates nuclei, chunked == whole, arrays-only files."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from napari_unet.core.models.config import NormalizationConfig
from napari_unet.core.models.normalization import normalize, percentile_ranges
from napari_unet.core.train.features import features_per_channel
from napari_unet.core.train.pixel_classifier import CLASSIFIER_FILE, PixelClassifier, PixelClassifierConfig


def _normalized(image: np.ndarray, channels: bool = False) -> np.ndarray:
    channels_first = image if channels else image[None]
    config = NormalizationConfig(fitted=percentile_ranges(channels_first, 1.0, 99.8))
    return normalize(channels_first, config)


def _iou(labels: np.ndarray, truth: np.ndarray) -> float:
    predicted, true = labels == 2, truth > 0
    return float((predicted & true).sum() / (predicted | true).sum())


def test_separates_nuclei_from_background(nuclei_2d):
    image = _normalized(nuclei_2d.image)
    classifier = PixelClassifier.fit(image, nuclei_2d.strokes, dim=2, num_classes=2)
    probabilities = classifier.probabilities(image)
    assert probabilities.shape == (2, *nuclei_2d.image.shape)
    np.testing.assert_allclose(probabilities.sum(0), 1, atol=1e-5)
    assert _iou(probabilities.argmax(0) + 1, nuclei_2d.instances) > 0.7


def test_chunks_and_regions_give_the_whole_image_result(nuclei_2d):
    image = _normalized(nuclei_2d.image)
    config = PixelClassifierConfig(sigma_max=4.0, trees=20)
    whole = PixelClassifier.fit(image, nuclei_2d.strokes, dim=2, num_classes=2, config=config)
    chunked_config = PixelClassifierConfig(sigma_max=4.0, trees=20, chunk=40, whole_voxels=0)
    chunked = PixelClassifier.fit(image, nuclei_2d.strokes, dim=2, num_classes=2, config=chunked_config)
    expected = whole.probabilities(image)
    np.testing.assert_allclose(chunked.probabilities(image), expected, atol=1e-6)
    region = (slice(30, 90), slice(50, 160))
    np.testing.assert_allclose(chunked.probabilities(image, region), expected[:, 30:90, 50:160], atol=1e-6)


def test_features_of_a_few_voxels_are_those_of_the_whole_map(nuclei_2d, nuclei_3d):
    """Only the painted voxels' box (with its halo) is filtered, with the same values as the whole image."""
    from napari_unet.core.train.pixel_classifier import feature_map, features_at

    for sample, dim, chunked in ((nuclei_2d, 2, 0), (nuclei_2d, 2, 10**9), (nuclei_3d, 3, 10**9), (nuclei_3d, 2, 0)):
        image = _normalized(sample.image)
        config = PixelClassifierConfig(sigma_max=2.0, chunk=40, whole_voxels=chunked)
        voxels = np.flatnonzero(sample.strokes)[::7]
        flat = feature_map(image, dim, config).reshape(-1, features_per_channel(dim, 1.0, 2.0))
        np.testing.assert_allclose(features_at(image, voxels, dim, config), flat[voxels], atol=1e-5)


def test_a_2d_classifier_on_a_stack_and_a_3d_one(nuclei_3d):
    image = _normalized(nuclei_3d.image)
    config = PixelClassifierConfig(sigma_max=2.0, trees=10)
    for dim in (2, 3):
        classifier = PixelClassifier.fit(image, nuclei_3d.strokes, dim=dim, num_classes=2, config=config)
        assert _iou(classifier.probabilities(image).argmax(0) + 1, nuclei_3d.instances) > 0.5
    planes = PixelClassifier.fit(image, nuclei_3d.strokes, dim=2, num_classes=2, config=config)
    np.testing.assert_allclose(planes.probabilities(image)[:, 5], planes.probabilities(image[:, 5:6])[:, 0])


def test_multichannel_and_unpainted_classes(nuclei_2d):
    image = _normalized(np.stack([nuclei_2d.image, nuclei_2d.image.max() - nuclei_2d.image]), channels=True)
    classifier = PixelClassifier.fit(image, nuclei_2d.strokes, dim=2, num_classes=3)
    probabilities = classifier.probabilities(image)
    assert probabilities.shape == (3, *nuclei_2d.image.shape)
    assert not probabilities[2].any()  # class 3 was never painted


def test_painted_voxels_are_capped_per_class(nuclei_2d):
    image = _normalized(nuclei_2d.image)
    config = PixelClassifierConfig(max_voxels_per_class=50)
    classifier = PixelClassifier.fit(image, nuclei_2d.strokes, dim=2, num_classes=2, config=config)
    assert np.bincount(classifier.labels).tolist() == [0, 50, 50]


def test_saved_as_arrays_and_refitted_identically(nuclei_2d, tmp_path):
    image = _normalized(nuclei_2d.image)
    classifier = PixelClassifier.fit(image, nuclei_2d.strokes, dim=2, num_classes=2)
    classifier.save(tmp_path)
    with zipfile.ZipFile(tmp_path / CLASSIFIER_FILE) as archive:
        assert sorted(archive.namelist()) == ["features.npy", "labels.npy"]
    with np.load(tmp_path / CLASSIFIER_FILE, allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)
    loaded = PixelClassifier.load(tmp_path, dim=2, num_classes=2, config=classifier.config)
    np.testing.assert_array_equal(loaded.probabilities(image), classifier.probabilities(image))


def test_a_damaged_file_is_refused(tmp_path):
    np.savez(tmp_path / CLASSIFIER_FILE, features=np.zeros((3, 2), np.float32), labels=np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="fitted classifier"):
        PixelClassifier.load(tmp_path, dim=2, num_classes=2, config=PixelClassifierConfig())


def test_blocks_are_split_only_as_far_as_the_budget_needs():
    from napari_unet.core.train.pixel_classifier import chunk_boxes

    config_3d = PixelClassifierConfig.for_dim(3)
    assert chunk_boxes((63, 250, 250), 3, config_3d) == [(slice(0, 63), slice(0, 250), slice(0, 250))]
    halves = chunk_boxes((63, 256, 256), 3, config_3d)  # just over the budget: two blocks, not nine
    assert len(halves) == 2
    assert chunk_boxes((1100, 1100), 2, PixelClassifierConfig()) == [(slice(0, 1100), slice(0, 1100))]
    stack = chunk_boxes((4, 300, 300), 2, PixelClassifierConfig())  # a 2D classifier: plane by plane
    assert [box[0] for box in stack] == [slice(i, i + 1) for i in range(4)]


def test_prediction_stops_when_interrupted(nuclei_2d):
    from napari_unet.core.train.features import Interrupted

    image = _normalized(nuclei_2d.image)
    classifier = PixelClassifier.fit(image, nuclei_2d.strokes, dim=2, num_classes=2)
    with pytest.raises(Interrupted):
        classifier.probabilities(image, interrupted=lambda: True)
    features = np.zeros((10, classifier.features.shape[1]), np.float32)
    with pytest.raises(Interrupted):
        classifier.probabilities_of(features, interrupted=lambda: True)
