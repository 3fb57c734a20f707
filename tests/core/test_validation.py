"""Bad strokes and images are refused with a message saying what to do."""

import numpy as np
import pytest

from napari_unet.core.errors import UserInputError
from napari_unet.core.validation import as_channels_first, check_annotations, check_spatial_ndim


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
