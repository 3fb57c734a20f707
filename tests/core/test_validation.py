"""Bad strokes and images are refused with a message saying what to do."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from napari_unet.core.errors import UserInputError
from napari_unet.core.models.config import TrainConfig
from napari_unet.core.validation import (
    SEED_MAX,
    as_channels_first,
    check_annotations,
    check_batch_size,
    check_image_values,
    check_seed,
    check_spacing,
    check_spatial_ndim,
    check_stop,
    check_tiling,
    check_train_settings,
)


def _strokes(dtype=np.uint8):
    labels = np.zeros((10, 10), dtype)
    labels[0, :3] = 1
    labels[5, :3] = 2
    return labels


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (_strokes(np.float32), "integers"),
        (_strokes().astype(bool), "integers"),
        (np.where(_strokes() == 2, -1, _strokes().astype(np.int16)), "negative"),
        (np.zeros((10, 10), np.uint8), "nothing is painted"),
        (np.where(_strokes() == 2, 0, _strokes()).astype(np.uint8), "only class 1"),
        (_strokes()[:, :9], "does not match"),
        (np.where(_strokes() == 2, 300, _strokes().astype(np.uint16)), "instance mask"),
    ],
)
def test_bad_strokes_are_refused(labels, message):
    with pytest.raises(UserInputError, match=message):
        check_annotations(labels, (10, 10))


def test_good_strokes_pass_as_uint8():
    checked = check_annotations(_strokes(np.int64), (10, 10))
    assert checked.dtype == np.uint8 and checked.max() == 2


def test_channel_axis_moves_channels_first():
    image = np.zeros((5, 6, 3))
    assert as_channels_first(image, -1).shape == (3, 5, 6)
    assert as_channels_first(image, None).shape == (1, 5, 6, 3)
    with pytest.raises(UserInputError, match="out of range"):
        as_channels_first(image, 3)
    with pytest.raises(UserInputError, match="not numeric"):
        as_channels_first(np.array([["a"]]), None)


def test_a_3d_model_needs_a_volume():
    check_spatial_ndim((5, 6, 7), 3)
    check_spatial_ndim((5, 6, 7), 2)
    with pytest.raises(UserInputError, match="3D"):
        check_spatial_ndim((6, 7), 3)
    with pytest.raises(UserInputError, match="channel-axis"):
        check_spatial_ndim((2, 5, 6, 7), 2)


# --- every number a user can type (issue 22) ---

NOT_POSITIVE = st.one_of(
    st.floats(max_value=0.0), st.sampled_from([float("nan"), float("inf"), float("-inf")]), st.integers(max_value=0)
)


@given(spacing=st.lists(st.floats(0.1, 10), min_size=3, max_size=3), bad=NOT_POSITIVE, where=st.integers(0, 2))
def test_any_non_finite_or_non_positive_spacing_is_refused(spacing, bad, where):
    assert check_spacing(spacing, 3) == tuple(spacing)
    spacing[where] = bad
    with pytest.raises(UserInputError, match="spacing"):
        check_spacing(spacing, 3)


def test_spacing_needs_one_value_per_spatial_axis():
    with pytest.raises(UserInputError, match="one value per spatial axis"):
        check_spacing([2.0, 1.0, 1.0], 2)
    with pytest.raises(UserInputError, match="spacing"):
        check_spacing(["2", 1.0], 2)


@given(bad=NOT_POSITIVE)
def test_any_non_finite_or_non_positive_time_budget_is_refused(bad):
    with pytest.raises(UserInputError, match="time budget"):
        check_stop(None, bad)


@pytest.mark.parametrize("steps", [0, -3, 2.5, "10", True])
def test_steps_must_be_a_whole_number_of_at_least_one(steps):
    with pytest.raises(UserInputError, match="steps"):
        check_stop(steps, None)


def test_training_needs_a_stop_condition():
    with pytest.raises(UserInputError, match="never stop"):
        check_stop(None, None)


@given(seed=st.integers(0, SEED_MAX))
def test_seeds_in_numpy_range_pass(seed):
    assert check_seed(seed) == seed


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, 1.5, "3", False])
def test_seeds_out_of_range_or_not_whole_are_refused(seed):
    with pytest.raises(UserInputError, match="seed"):
        check_seed(seed)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("batch_size", 0, "batch size"),
        ("batch_size", 2.0, "batch size"),
        ("patch_size", [64, 0], "patch_size"),
        ("patch_size", 64, "patch_size"),
        ("learning_rate", float("nan"), "learning_rate"),
        ("learning_rate", 0.0, "learning_rate"),
        ("weight_decay", -1e-4, "weight_decay"),
        ("smoothness_weight", float("inf"), "smoothness_weight"),
        ("smoothness_sigma", 0, "smoothness_sigma"),
        ("region_weight", -1, "region_weight"),
        ("elastic_probability", 1.5, "elastic_probability"),
        ("intensity_probability", float("nan"), "intensity-augmentation"),
        ("augment", "yes", "augment"),
        ("prefetch", 1, "prefetch"),
    ],
)
def test_bad_training_settings_are_refused_by_name(setting, value, message):
    check_train_settings(TrainConfig())
    with pytest.raises(UserInputError, match=message):
        check_train_settings(TrainConfig(**{setting: value}))


@pytest.mark.parametrize(
    ("tile_size", "overlap", "batch_size", "message"),
    [
        (0, 0.25, None, "tile size"),
        ([64, "64"], 0.25, None, "tile size"),
        (None, 1.0, None, "overlap"),
        (None, float("nan"), None, "overlap"),
        (None, 0.25, 0, "tiles per pass"),
    ],
)
def test_bad_tiling_is_refused(tile_size, overlap, batch_size, message):
    check_tiling(128, 0.0, 2)
    with pytest.raises(UserInputError, match=message):
        check_tiling(tile_size, overlap, batch_size)


def test_a_batch_beyond_free_memory_is_refused_with_what_fits():
    check_batch_size(8, 8, "patches of 64×64")
    with pytest.raises(UserInputError, match=r"--batch-size 9 does not fit in free memory \(at most 8 patches"):
        check_batch_size(9, 8, "patches of 64×64")


@pytest.mark.parametrize(
    ("image", "warning"),
    [
        (np.full((1, 8, 8), np.nan, np.float32), "no finite value"),
        (np.stack([np.full((8, 8), np.inf), np.full((8, 8), -np.inf)]), "no finite value"),
        (np.full((1, 8, 8), 7, np.uint16), r"the image is constant \(every finite value is 7\)"),
        (np.stack([np.arange(64.0).reshape(8, 8), np.ones((8, 8))]), "channel 1 of the image is constant"),
        (np.where(np.eye(8, dtype=bool), np.nan, np.arange(64.0).reshape(8, 8))[None], "8 of 64 pixel values are NaN"),
    ],
)
def test_nan_and_constant_images_are_warned_about_in_one_line(image, warning):
    with pytest.warns(RuntimeWarning, match=warning) as caught:
        check_image_values(image)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)


def test_an_ordinary_image_passes_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_image_values(np.arange(128.0).reshape(2, 8, 8))
    with pytest.raises(UserInputError, match="empty"):
        check_image_values(np.zeros((1, 0, 8)))


def test_messages_advise_only_what_the_caller_can_change():
    with pytest.raises(UserInputError, match="--dim 2") as training:
        check_spatial_ndim((6, 7), 3, training=True)
    with pytest.raises(UserInputError, match="use a 2D model") as predicting:
        check_spatial_ndim((6, 7), 3, training=False)
    assert "--dim" not in str(predicting.value) and "\n" not in str(training.value)


def test_a_region_outside_the_image_is_a_clear_error():
    from napari_unet.core.validation import check_region

    check_region((slice(0, 4), slice(2, 8)), (4, 8), "preview region")
    check_region(None, (4, 8), "preview region")
    for bad in [(slice(0, 5), slice(0, 8)), (slice(2, 2), slice(0, 8)), (slice(0, 4),)]:
        with pytest.raises(UserInputError, match="does not lie inside the image of shape"):
            check_region(bad, (4, 8), "preview region")
