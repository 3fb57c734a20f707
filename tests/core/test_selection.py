"""The trainer's candidates: the pixel classifier first, the best on held-out strokes shown and returned,
and the choice kept through saving, loading and block-wise prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_unet.core.api import load_model, predict, prepare_model, train
from napari_unet.core.infer.inference import predict_normalized
from napari_unet.core.infer.zarr_output import predict_to_zarr
from napari_unet.core.models.config import TrainConfig
from napari_unet.core.models.model import BLEND, PIXEL_CLASSIFIER, UNET, Model
from napari_unet.core.train.pixel_classifier import CLASSIFIER_FILE
from napari_unet.core.train.selection import MIN_LEAD_VOXELS, best_candidate, lead_in_voxels
from napari_unet.core.train.training import train_steps

TINY = {"base_channels": 4, "depth": 2, "device": "cpu", "seed": 0, "batch_size": 2}


@pytest.fixture(scope="module")
def trained(nuclei_2d):
    return train(nuclei_2d.image, nuclei_2d.strokes, steps=20, time_budget=None, **TINY)


def test_the_pixel_classifier_is_shown_before_the_first_unet_step(nuclei_2d):
    image = nuclei_2d.image[None]
    model, strokes = prepare_model(image, nuclei_2d.strokes, base_channels=4, depth=2)
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    loop = train_steps(model, image, strokes, TrainConfig(steps=3, time_budget=None, device="cpu", seed=0))
    first = next(loop)
    assert first.step == 0 and first.showing == PIXEL_CLASSIFIER and 0.5 < first.held_out_score <= 1
    assert first.preview.labels.shape == nuclei_2d.image.shape
    truth = nuclei_2d.instances > 0
    assert ((first.preview.labels == 2) == truth).mean() > 0.85  # already a usable mask
    for name, value in model.network.state_dict().items():
        torch.testing.assert_close(value, before[name])  # no U-Net step yet
    loop.close()


def test_the_returned_model_predicts_its_chosen_candidate(trained, nuclei_2d):
    selection = trained.config.selection
    assert selection["chosen"] in (UNET, PIXEL_CLASSIFIER, BLEND) and selection["held_out_voxels"] > 0
    assert set(selection["held_out_accuracy"]) == {UNET, PIXEL_CLASSIFIER, BLEND}
    lead = selection["classifier_lead_voxels"]
    assert selection["chosen"] == best_candidate(selection["held_out_accuracy"], selection["pseudo_labels"], lead)
    image = trained.normalize(nuclei_2d.image[None])
    forest = trained.pixel_classifier.probabilities(image)
    unet = predict_normalized(trained, image)
    expected = {PIXEL_CLASSIFIER: forest, UNET: unet, BLEND: trained.combine(forest, unet)}
    for chosen, probabilities in expected.items():
        trained.config.selection = {**selection, "chosen": chosen}
        result = predict(trained, nuclei_2d.image, probabilities=True)
        np.testing.assert_allclose(result.probabilities, probabilities, atol=1e-6)
    trained.config.selection = selection


@pytest.mark.parametrize("chosen", [PIXEL_CLASSIFIER, UNET, BLEND])
def test_a_prediction_of_any_candidate_stops_when_interrupted(trained, nuclei_2d, chosen):
    """The dock's final prediction quits inside a piece: asked between tiles and the classifier's blocks."""
    from napari_unet.core.infer.inference import chosen_probabilities
    from napari_unet.core.train.features import Interrupted

    selection = trained.config.selection
    trained.config.selection = {**selection, "chosen": chosen}
    image = trained.normalize(nuclei_2d.image[None])
    asked = []
    try:
        with pytest.raises(Interrupted):
            chosen_probabilities(trained, image, interrupted=lambda: asked.append(1) or True, device="cpu")
        expected = chosen_probabilities(trained, image, device="cpu")
        np.testing.assert_array_equal(chosen_probabilities(trained, image, interrupted=lambda: False), expected)
    finally:
        trained.config.selection = selection
    assert len(asked) == 1


def test_the_pixel_classifier_stays_unless_clearly_beaten_then_the_blend_goes_first():
    assert best_candidate({PIXEL_CLASSIFIER: 1.0, UNET: 1.0, BLEND: 1.0}) == PIXEL_CLASSIFIER
    assert best_candidate({PIXEL_CLASSIFIER: 0.9, UNET: 0.96, BLEND: 0.97}) == PIXEL_CLASSIFIER  # within the margin
    assert best_candidate({PIXEL_CLASSIFIER: 0.7, UNET: 1.0, BLEND: 0.85}) == BLEND
    assert best_candidate({PIXEL_CLASSIFIER: 0.7, UNET: 1.0, BLEND: 0.75}) == UNET
    assert best_candidate({PIXEL_CLASSIFIER: 0.8, UNET: None, BLEND: None}) == PIXEL_CLASSIFIER
    assert best_candidate({PIXEL_CLASSIFIER: None, UNET: 1.0, BLEND: 1.0}) == PIXEL_CLASSIFIER  # nothing held out


def test_a_unet_guided_by_pseudo_labels_is_blended_in_unless_it_scores_clearly_worse():
    assert best_candidate({PIXEL_CLASSIFIER: 1.0, UNET: 1.0, BLEND: 1.0}, guided=True) == BLEND
    assert best_candidate({PIXEL_CLASSIFIER: 1.0, UNET: 0.9, BLEND: 0.985}, guided=True) == BLEND
    assert best_candidate({PIXEL_CLASSIFIER: 1.0, UNET: 0.9, BLEND: 0.97}, guided=True) == PIXEL_CLASSIFIER
    assert best_candidate({PIXEL_CLASSIFIER: 1.0, UNET: None, BLEND: None}, guided=True) == PIXEL_CLASSIFIER
    # a lead of a few held-out voxels is noise: the blend stays
    assert best_candidate({PIXEL_CLASSIFIER: 0.97, UNET: 0.9, BLEND: 0.9}, guided=True, classifier_lead=2) == BLEND
    lead = MIN_LEAD_VOXELS
    assert best_candidate({PIXEL_CLASSIFIER: 0.97, UNET: 0.9, BLEND: 0.9}, True, lead) == PIXEL_CLASSIFIER


def test_the_classifiers_lead_counts_the_voxels_only_it_gets_right():
    labels = np.array([1, 1, 2, 2, 2])
    first = np.array([[0.9, 0.9, 0.1, 0.1, 0.9], [0.1, 0.1, 0.9, 0.9, 0.1]])  # right, right, right, right, wrong
    second = np.array([[0.1, 0.9, 0.9, 0.1, 0.1], [0.9, 0.1, 0.1, 0.9, 0.9]])  # wrong, right, wrong, right, right
    assert lead_in_voxels(first, second, labels) == 1 and lead_in_voxels(second, first, labels) == -1


@pytest.mark.parametrize("chosen", [PIXEL_CLASSIFIER, BLEND])
def test_saved_and_loaded_models_predict_the_same(trained, nuclei_2d, tmp_path, chosen):
    trained.config.selection = {**trained.config.selection, "chosen": chosen}
    expected = predict(trained, nuclei_2d.image, probabilities=True)
    trained.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["selection"]["chosen"] == chosen and config["pixel_classifier"]["trees"] > 0
    assert chosen in (tmp_path / "m" / "MODEL_CARD.md").read_text()
    with np.load(tmp_path / "m" / CLASSIFIER_FILE, allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["features", "labels"]
    loaded = load_model(tmp_path / "m")
    assert loaded.chosen == chosen
    result = predict(loaded, nuclei_2d.image, probabilities=True)
    np.testing.assert_allclose(result.probabilities, expected.probabilities, atol=1e-6)


def test_an_older_model_without_a_classifier_loads_as_a_unet(tmp_path, nuclei_2d):
    model = Model.create(dim=2, base_channels=4, depth=2)
    model.config.normalization.fitted = [[0.0, 1000.0]]
    model.save(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    for key in ("pixel_classifier", "selection"):  # as written before the classifier existed
        config.pop(key)
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    loaded = load_model(tmp_path / "old")
    assert loaded.pixel_classifier is None and loaded.chosen == UNET
    unet = predict_normalized(loaded, loaded.normalize(nuclei_2d.image[None]))
    np.testing.assert_allclose(predict(loaded, nuclei_2d.image, probabilities=True).probabilities, unet, atol=1e-6)


def test_a_missing_classifier_file_is_a_clear_error(trained, tmp_path):
    from napari_unet.core.errors import UserInputError

    trained.save(tmp_path / "m")
    (tmp_path / "m" / CLASSIFIER_FILE).unlink()
    with pytest.raises(UserInputError, match="re-save or re-train"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("chosen", [PIXEL_CLASSIFIER, BLEND])
def test_block_wise_prediction_gives_the_whole_image_result(trained, tmp_path, chosen):
    import zarr

    from napari_unet.core.data.synthetic import synthetic_nuclei
    from napari_unet.core.io.io import ImageData

    image = synthetic_nuclei((300, 230), seed=21).image
    trained.config.selection = {**trained.config.selection, "chosen": chosen}
    expected = predict(trained, image, tile_size=64, device="cpu", keep_specks=True).labels
    # kept: each block measures its own reference size for specks, the whole image one
    out = tmp_path / "out.zarr"
    predict_to_zarr(trained, ImageData(image), out, tile_size=64, block_size=96, device="cpu", keep_specks=True)
    written = np.asarray(zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["0"])
    assert (written == expected).mean() > 0.97  # blocks see other U-Net tiles (see test_out_of_core.py)
    if chosen == PIXEL_CLASSIFIER:
        np.testing.assert_array_equal(written, expected)


def test_fine_tuning_refits_the_classifier_on_the_new_strokes(trained, nuclei_2d):
    strokes = np.zeros_like(nuclei_2d.strokes)
    strokes[5:8, 5:60] = 1
    strokes[nuclei_2d.strokes == 2] = 2
    tuned = train(nuclei_2d.image, strokes, init=trained, steps=2, time_budget=None, **TINY)  # a copy is tuned
    labels = tuned.pixel_classifier.labels
    assert (labels == 1).sum() == (strokes == 1).sum() and (labels == 2).sum() == (strokes == 2).sum()
    assert tuned.config.selection["held_out_accuracy"][UNET] is None  # a trained start waits for updates too


def test_the_unet_is_scored_on_held_out_strokes_only_once_trained_enough(nuclei_2d, trained, monkeypatch):
    from napari_unet.core.train import training

    assert trained.config.selection["held_out_accuracy"][UNET] is None  # 20 updates: too few to be scored
    monkeypatch.setattr(training, "MIN_SCORED_UPDATES", 5)
    model = train(nuclei_2d.image, nuclei_2d.strokes, steps=10, time_budget=None, **TINY)
    accuracy = model.config.selection["held_out_accuracy"]
    assert all(0 <= accuracy[name] <= 1 for name in (PIXEL_CLASSIFIER, UNET, BLEND))
    record = model.config.selection
    assert model.chosen == best_candidate(accuracy, record["pseudo_labels"], record["classifier_lead_voxels"])


def test_an_interrupted_pseudo_label_map_is_made_again_on_the_next_call(nuclei_2d):
    from napari_unet.core.train.features import Interrupted
    from napari_unet.core.train.selection import Selection

    image = nuclei_2d.image[None]
    model, strokes = prepare_model(image, nuclei_2d.strokes, base_channels=4, depth=2)
    normalized = model.normalize(image)
    selection = Selection(model, normalized, strokes, seed=0, training_map=True)
    with pytest.raises(Interrupted):
        selection.training_probabilities(interrupted=lambda: True)
    again = selection.training_probabilities()
    expected = Selection(model, normalized, strokes, seed=0, training_map=True).training_probabilities()
    assert again is not None and again.shape == (2, *nuclei_2d.image.shape)
    np.testing.assert_array_equal(again, expected)


def test_small_regions_are_mapped_alone_until_they_add_up_to_most_of_the_image(nuclei_2d, monkeypatch):
    from napari_unet.core.train import selection as selection_module
    from napari_unet.core.train.selection import Selection

    monkeypatch.setattr(selection_module, "PREDICT_BLOCK", 1000)  # slabs of 6 rows: the last one partial
    image = nuclei_2d.image[None]
    model, strokes = prepare_model(image, nuclei_2d.strokes, base_channels=4, depth=2)
    selection = Selection(model, model.normalize(image), strokes, seed=0)
    small = (slice(10, 40), slice(100, 150))
    alone = selection.forest_probabilities(small)
    assert selection._forest_map is None  # one plane of a 3D box costs a plane, not the box
    whole = selection.forest_probabilities((slice(0, 128), slice(0, 160)))
    assert selection._forest_map is not None
    np.testing.assert_allclose(alone, whole[(slice(None), *small)], atol=1e-6)
    selection.update(strokes, seed=0)  # a refit: the map is made again, once the pieces asked for add up
    for rows in range(0, 96, 32):
        assert selection._forest_map is None
        piece = selection.forest_probabilities((slice(rows, rows + 32), slice(0, 160)))
        np.testing.assert_allclose(piece, whole[:, rows : rows + 32], atol=1e-6)
    selection.forest_probabilities((slice(96, 128), slice(0, 160)))  # past 3/4 of the image in all
    assert selection._forest_map is not None


def test_the_first_report_previews_the_region_asked_for(nuclei_2d):
    image = nuclei_2d.image[None]
    model, strokes = prepare_model(image, nuclei_2d.strokes, base_channels=4, depth=2)
    region = (slice(32, 96), slice(0, 80))
    config = TrainConfig(steps=1, time_budget=None, device="cpu", seed=0)
    loop = train_steps(model, image, strokes, config, preview_region=region)
    first = next(loop)
    assert first.step == 0 and first.preview.region == region and first.preview.labels.shape == (64, 80)
    loop.close()
