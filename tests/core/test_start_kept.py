"""A trained start that gets every painted voxel right is shown and returned unchanged; one stroke it gets wrong,
or a pixel classifier that calls much of its objects background, lets the fine-tuned candidates take over.
Real images (tests/data/dsb2018) and the shipped default start, ``nuclei-2d-dsb``."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_unet.core.api import load_model, predict, prepare_model, train
from napari_unet.core.models.config import TrainConfig
from napari_unet.core.models.model import BLEND_WEIGHT, Model
from napari_unet.core.models.model_card import model_card
from napari_unet.core.train import selection as selection_module
from napari_unet.core.train import training
from napari_unet.core.train.messages import NewAnnotations, StopTraining
from napari_unet.core.train.selection import (
    MIN_JUDGING_VOXELS,
    NETWORK_START_AGREEMENT,
    START_CONTRADICTED_MAX,
    VOUCHED_BLEND_WEIGHT,
    object_overlap,
)
from napari_unet.core.train.training import train_steps

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


def test_a_start_that_gets_every_stroke_right_is_returned_unchanged(start, tmp_path):
    image, _, strokes = _load("05040e2e959c")  # fluorescence, where the start is good
    model = _train(image, strokes)
    selection = model.config.selection
    assert selection["start_kept"] and selection["held_out_accuracy"] == {"pixel classifier": 1.0, "start": 1.0}
    assert model.config.history[-1]["chosen"] == "start" and model.chosen == "unet"
    for name, value in start.network.state_dict().items():
        torch.testing.assert_close(model.network.state_dict()[name], value, rtol=0, atol=0)
    np.testing.assert_array_equal(predict(model, image).labels, predict(start, image).labels)
    model.save(tmp_path / "m")
    assert "Masks come from the **U-Net as it was before this training**" in (tmp_path / "m/MODEL_CARD.md").read_text()


def test_a_model_trained_on_the_strokes_is_not_its_own_start():
    """Training again from a model this trainer made (the dock's next round, ``--init`` of one's own model):
    it has seen strokes, so it cannot be checked on them as a start."""
    image, _, strokes = _load("05040e2e959c")
    again = train(image, strokes, init=_train(image, strokes), steps=STEPS, time_budget=None, seed=0, precision="fp32")
    assert not again.config.selection["start_kept"] and "start" not in again.config.selection["held_out_accuracy"]


def test_a_network_grown_for_a_new_class_is_not_given_back_as_the_start():
    """A class painted and then erased during training: the head grew, so the start (two classes) is not
    restored even though every stroke agrees with it again."""
    image, _, strokes = _load("05040e2e959c")
    model, annotations = prepare_model(image[None], strokes)
    loop = train_steps(model, image[None], annotations, TrainConfig(steps=None, time_budget=None, seed=0))
    next(loop)
    assert next(loop).showing == "start"
    more = annotations.copy()
    more[:2, :2] = 3
    assert loop.send(NewAnnotations(more)).showing != "start"
    assert loop.send(NewAnnotations(annotations)).showing != "start" and model.num_classes == 3
    with pytest.raises(StopIteration) as finished:
        loop.send(StopTraining())
    assert finished.value.value.network.head.out_channels == 3 and not model.config.selection["start_kept"]


def _one_voxel_corrected(start, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The image and its strokes plus one painted voxel that says the start is wrong there."""
    image, labels, strokes = _load(name)
    channel_axis = -1 if image.ndim == 3 else None
    wrong = np.argwhere((predict(start, image, channel_axis=channel_axis).labels == 2) != (labels > 0))
    y, x = wrong[len(wrong) // 2]
    corrected = strokes.copy()
    corrected[y, x] = 2 if labels[y, x] > 0 else 1
    return image, corrected


def test_one_stroke_the_start_gets_wrong_lets_fine_tuning_take_over(start):
    image, corrected = _one_voxel_corrected(start, "05040e2e959c")
    model = _train(image, corrected)
    assert not model.config.selection["start_kept"] and model.config.history[-1]["chosen"] != "start"
    assert model.config.selection["held_out_accuracy"]["start"] < 1.0


@pytest.mark.parametrize("name", ["05040e2e959c", "4d4f254f3b8b"])  # fluorescence, stained tissue (RGB)
def test_a_start_that_gets_most_strokes_right_vouches_for_the_unet(start, name, monkeypatch, tmp_path):
    """The start is wrong on one painted voxel, so it is not kept, but it still vouches for the fine-tuned
    U-Net that agrees with it: the saved model's blend gives the U-Net more weight, and so does predict."""
    monkeypatch.setattr(training, "MIN_SCORED_UPDATES", 10)  # the U-Net is scored within the test's steps
    image, corrected = _one_voxel_corrected(start, name)
    channel_axis = -1 if image.ndim == 3 else None
    model = train(image, corrected, channel_axis=channel_axis, steps=STEPS, time_budget=None, seed=0, precision="fp32")
    selection = model.config.selection
    assert 0.9 <= selection["held_out_accuracy"]["start"] < 1.0 and not selection["start_kept"]
    assert selection["start_vouched"] and selection["network_start_agreement"] >= NETWORK_START_AGREEMENT
    assert model.chosen == "blend" and model.blend_weight == VOUCHED_BLEND_WEIGHT
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert "so the blend leans on the U-Net" in (tmp_path / "m/MODEL_CARD.md").read_text()

    def probabilities(model: Model) -> np.ndarray:
        return predict(model, image, channel_axis=channel_axis, probabilities=True).probabilities

    classifier_config = replace(loaded.config, selection={**selection, "chosen": "pixel classifier"})
    forest = probabilities(Model(loaded.network, classifier_config, loaded.pixel_classifier))
    unet = probabilities(Model(loaded.network, loaded.config))
    returned = probabilities(loaded)
    np.testing.assert_allclose(returned, loaded.combine(forest, unet, VOUCHED_BLEND_WEIGHT), atol=1e-5)
    assert np.abs(returned - loaded.combine(forest, unet, BLEND_WEIGHT)).max() > 0.01


def test_a_model_without_a_recorded_blend_weight_blends_half_and_half(start):
    assert start.config.selection is None and start.blend_weight == BLEND_WEIGHT == 0.5


def test_object_overlap_counts_same_class_objects_over_either_objects():
    first = np.array([[1, 2, 2, 3], [1, 1, 2, 1]], np.uint8)
    second = np.array([[1, 2, 3, 3], [2, 1, 1, 1]], np.uint8)
    np.testing.assert_array_equal(object_overlap(first, second), [2, 5])


def test_a_start_the_pixel_classifier_contradicts_is_not_kept_and_vouches_for_nothing(monkeypatch):
    monkeypatch.setattr(training, "MIN_SCORED_UPDATES", 10)  # the U-Net is scored within the test's steps
    image, _, strokes = _load("4217e25defac")  # brightfield: the start paints whole cells, the strokes all agree
    model = _train(image, strokes)
    selection = model.config.selection
    assert selection["held_out_accuracy"]["start"] == 1.0 and selection["start_contradicted"] > START_CONTRADICTED_MAX
    assert not selection["start_kept"] and not selection["start_vouched"]
    assert selection["held_out_accuracy"]["unet"] is not None  # the U-Net was scored: the choice was made


def test_a_model_trained_on_the_strokes_and_given_a_new_class_is_not_taken_for_a_start():
    """Adapted to a new class count, the model loses its pixel classifier but not the record that it was
    trained on strokes: it is not judged, kept or restored as a pretrained start."""
    image, _, strokes = _load("05040e2e959c")
    own = _train(image, strokes)
    adapted = own.adapted_to(3, own.in_channels)
    assert adapted.config.selection == own.config.selection and adapted.chosen == "unet"
    assert "## Prediction" not in model_card(adapted.config)
    more = strokes.copy()
    more[:3, :3] = 3
    again = train(image, more, init=own, steps=STEPS, time_budget=None, seed=0, precision="fp32")
    assert again.num_classes == 3 and not again.config.selection["start_kept"]
    assert "start" not in again.config.selection["held_out_accuracy"]


def test_a_classifier_that_saw_a_handful_of_nucleus_voxels_does_not_judge_the_start(monkeypatch, tmp_path):
    """The brightfield crop with its nucleus strokes cut to one short line (4 voxels, nothing of it held out):
    fitted on fewer nucleus voxels than MIN_JUDGING_VOXELS, the classifier's map of nuclei is no evidence, so the
    start that every stroke agrees with is kept (until a stroke corrects it), and the record and the model card
    say why. With the threshold at 4, the same strokes are judged and the start is contradicted."""
    image, _, strokes = _load("4217e25defac")
    few = np.where(strokes == 2, 0, strokes).astype(np.uint8)
    few[236:240, 187] = 2
    assert np.array_equal(strokes[236:240, 187], few[236:240, 187]) and MIN_JUDGING_VOXELS > 4
    model = _train(image, few)
    selection = model.config.selection
    assert selection["start_unjudged_classes"] == [2] and selection["start_contradicted"] == 0.0
    assert selection["start_kept"]
    model.save(tmp_path / "m")
    assert "too few painted voxels of class(es) [2]" in (tmp_path / "m/MODEL_CARD.md").read_text()
    monkeypatch.setattr(selection_module, "MIN_JUDGING_VOXELS", 4)
    judged = _train(image, few).config.selection
    assert judged["start_unjudged_classes"] == [] and judged["start_contradicted"] > START_CONTRADICTED_MAX
    assert not judged["start_kept"]
