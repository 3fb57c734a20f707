"""A trained start that gets every painted voxel right is shown and returned unchanged; one stroke it gets wrong,
or a pixel classifier that calls much of its objects background, lets the fine-tuned candidates take over.
Real images (tests/data/dsb2018) and the shipped default start, ``nuclei-2d-dsb``."""

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_unet.core.api import load_model, predict, train
from napari_unet.core.train.selection import START_CONTRADICTED_MAX

DATA = Path(__file__).parents[1] / "data" / "dsb2018"
STEPS = 20


def _load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(DATA / f"{name}.npz") as data:
        return data["image"], data["labels"], data["strokes"]


def _train(image: np.ndarray, strokes: np.ndarray):
    return train(image, strokes, steps=STEPS, time_budget=None, seed=0, precision="fp32")


@pytest.fixture(scope="module")
def start():
    return load_model("nuclei-2d-dsb")


def test_a_start_that_gets_every_stroke_right_is_returned_unchanged(start):
    image, _, strokes = _load("05040e2e959c")  # fluorescence, where the start is good
    model = _train(image, strokes)
    assert model.config.selection["start_kept"] and model.config.selection["held_out_accuracy"]["start"] == 1.0
    assert model.config.history[-1]["chosen"] == "start" and model.chosen == "unet"
    for name, value in start.network.state_dict().items():
        torch.testing.assert_close(model.network.state_dict()[name], value, rtol=0, atol=0)
    np.testing.assert_array_equal(predict(model, image).labels, predict(start, image).labels)


def test_one_stroke_the_start_gets_wrong_lets_fine_tuning_take_over(start):
    image, labels, strokes = _load("05040e2e959c")
    wrong = np.argwhere((predict(start, image).labels == 2) != (labels > 0))
    y, x = wrong[len(wrong) // 2]
    corrected = strokes.copy()
    corrected[y, x] = 2 if labels[y, x] > 0 else 1  # one painted voxel that says the start is wrong there
    model = _train(image, corrected)
    assert not model.config.selection["start_kept"] and model.config.history[-1]["chosen"] != "start"
    assert model.config.selection["held_out_accuracy"]["start"] < 1.0


def test_a_start_the_pixel_classifier_contradicts_is_not_kept():
    image, _, strokes = _load("4217e25defac")  # brightfield: the start paints whole cells, the strokes all agree
    model = _train(image, strokes)
    selection = model.config.selection
    assert selection["held_out_accuracy"]["start"] == 1.0 and selection["start_contradicted"] > START_CONTRADICTED_MAX
    assert not selection["start_kept"]
