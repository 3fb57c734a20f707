"""The default start (``init="auto"``): the real-image pretrained model where it fits, a new network elsewhere,
and a lower learning rate when training goes on from a trained model."""

import numpy as np
import pytest

from napari_unet.core.api import train
from napari_unet.core.models.config import TrainConfig
from napari_unet.core.models.model import Model
from napari_unet.core.models.model_sources import DEFAULT_START, default_start
from napari_unet.core.train.schedule import FINE_TUNING_LR, NEW_NETWORK_LR, with_learning_rate

GREY = np.zeros((1, 32, 32), np.uint16)
RGB = np.zeros((3, 32, 32), np.uint8)


@pytest.mark.parametrize(
    ("image", "num_classes", "dim", "own_shape", "expected"),
    [
        (GREY, 2, None, False, DEFAULT_START),
        (RGB, 2, 2, False, DEFAULT_START),
        (GREY, 3, None, False, None),  # two object classes: the start knows one
        (np.zeros((1, 8, 32, 32), np.uint16), 2, None, False, None),  # a volume
        (GREY, 2, 3, False, None),  # a 3D network asked for
        (np.zeros((2, 32, 32), np.uint16), 2, None, False, None),  # two fluorescence channels
        (RGB.astype(np.float32), 2, None, False, None),  # three channels, but not 8-bit RGB
        (GREY, 2, None, True, None),  # the caller shaped the network
    ],
)
def test_default_start_fits_only_what_it_was_trained_on(image, num_classes, dim, own_shape, expected):
    assert default_start(image, num_classes, dim, new_network_shape=own_shape) == expected


def test_train_starts_2d_grey_images_from_the_default_start(nuclei_2d):
    options = {"steps": 1, "time_budget": None, "device": "cpu", "seed": 0, "batch_size": 2}
    started = train(nuclei_2d.image, nuclei_2d.strokes, **options)
    new = train(nuclei_2d.image, nuclei_2d.strokes, init=None, **options)
    assert len(started.config.history) > 1 and len(new.config.history) == 1
    assert started.config.history[-1]["settings"]["learning_rate"] == FINE_TUNING_LR
    assert new.config.history[-1]["settings"]["learning_rate"] == NEW_NETWORK_LR


def test_a_learning_rate_given_is_kept():
    model = Model.create(dim=2, in_channels=1, num_classes=2)
    assert with_learning_rate(TrainConfig(learning_rate=1e-2), model).learning_rate == 1e-2
    assert with_learning_rate(TrainConfig(), model).learning_rate == NEW_NETWORK_LR
