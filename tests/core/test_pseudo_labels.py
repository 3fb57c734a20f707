"""Pseudo-labels: confident pixel-classifier voxels become weaker targets beside the strokes."""

import numpy as np
import pytest
import torch

from napari_unet.core.train.losses import sparse_loss
from napari_unet.core.train.pseudo_labels import (
    PSEUDO_OFFSET,
    START_OFFSET,
    StartLabels,
    confident_labels,
    merged_targets,
    pseudo_targets,
    split_targets,
    start_contradicted,
    vetoed_by_start,
)


def test_only_confident_voxels_get_a_pseudo_label():
    probabilities = np.array([[[0.9, 0.55, 0.1]], [[0.1, 0.45, 0.9]]], np.float32)  # (K=2, 1, 3)
    assert confident_labels(probabilities, 0.8).tolist() == [[1, 0, 2]]


def test_strokes_win_over_pseudo_labels_and_split_back():
    strokes = np.array([[0, 1, 2, 0]], np.uint8)
    pseudo = np.array([[2, 2, 1, 0]], np.uint8)
    merged = merged_targets(strokes, pseudo)
    assert merged.tolist() == [[PSEUDO_OFFSET + 2, 1, 2, 0]]
    painted, guessed, started = split_targets(torch.from_numpy(merged)[None])
    assert painted[0].tolist() == [[0, 1, 2, 0]]
    assert guessed[0].tolist() == [[2, 0, 0, 0]]
    assert started[0].tolist() == [[0, 0, 0, 0]]


def test_the_starts_labels_fill_in_only_where_strokes_and_classifier_say_nothing():
    strokes = np.array([[0, 1, 0, 0, 0]], np.uint8)
    classifier = np.array([[[0.9, 0.9, 0.5, 0.5, 0.5]], [[0.1, 0.1, 0.5, 0.5, 0.5]]], np.float32)
    start = np.array([[[0.95, 0.95, 0.05, 0.6, 0.95]], [[0.05, 0.05, 0.95, 0.4, 0.05]]], np.float32)
    start = StartLabels.of(start, confidence=0.8, veto=0.5)
    merged = pseudo_targets(strokes, classifier, 0.8, start, fill=True)
    assert merged.tolist() == [[PSEUDO_OFFSET + 1, 1, START_OFFSET + 2, 0, START_OFFSET + 1]]
    assert pseudo_targets(strokes, classifier, 0.8, start).tolist() == [[PSEUDO_OFFSET + 1, 1, 0, 0, 0]]
    _, _, started = split_targets(torch.from_numpy(merged)[None])
    assert started[0].tolist() == [[0, 0, 2, 0, 1]]


def test_too_many_classes_for_pseudo_labels_are_refused():
    with pytest.raises(ValueError, match="fewer than"):
        merged_targets(np.full((2, 2), START_OFFSET, np.uint8), np.zeros((2, 2), np.uint8))


def test_pseudo_labels_count_only_with_their_weight_and_pull_towards_their_class():
    logits = torch.zeros(1, 2, 1, 4, requires_grad=True)
    targets = torch.tensor([[[1, 2, PSEUDO_OFFSET + 2, 0]]], dtype=torch.uint8)
    strokes_only = sparse_loss(logits, torch.tensor([[[1, 2, 0, 0]]], dtype=torch.uint8))
    assert torch.allclose(sparse_loss(logits, targets), strokes_only)  # weight 0: ignored
    sparse_loss(logits, targets, pseudo_label_weight=1.0).backward()
    gradient = logits.grad[0, :, 0]
    assert gradient[1, 2] < 0 < gradient[0, 2]  # the pseudo-labelled voxel is pushed towards class 2
    assert torch.all(gradient[:, 3] == 0)  # neither painted nor pseudo-labelled: no gradient


def test_a_trained_start_vetoes_object_pseudo_labels_where_it_is_sure_of_background():
    pseudo = np.array([[2, 2, 1, 0, 3]], np.uint8)
    start_background = np.array([[0.9, 0.5, 0.1, 0.9, 0.95]], np.float32)
    assert vetoed_by_start(pseudo, start_background >= 0.8).tolist() == [[0, 2, 1, 0, 0]]  # background labels stay


def test_the_starts_labels_keep_its_veto_and_confident_labels_only():
    probabilities = np.array([[[0.95, 0.6, 0.1]], [[0.05, 0.4, 0.9]]], np.float32)  # (K=2, 1, 3)
    start = StartLabels.of(probabilities, confidence=0.8, veto=0.5)
    assert start.vetoes.tolist() == [[True, True, False]]
    assert start.confident.tolist() == [[1, 0, 2]] and start.confident.dtype == np.uint8


def test_only_a_trained_start_is_asked_for_its_background(nuclei_2d):
    from napari_unet.core.api import prepare_model
    from napari_unet.core.models.config import TrainConfig
    from napari_unet.core.train.training import _Run

    image = nuclei_2d.image[None]
    for init, expect_map in ((None, False), ("nuclei-2d-dsb", True)):
        model, strokes = prepare_model(image, nuclei_2d.strokes, init=init)
        run = _Run(model, image, strokes, TrainConfig(steps=1, device="cpu", seed=0, learning_rate=1e-3))
        run.begin()
        assert (run.start is not None) == expect_map
        if expect_map:
            assert run.start.vetoes.shape == run.start.confident.shape == image.shape[1:]
            assert run.start.vetoes.any() and (run.start.confident == 2).any()
        run.close()


def test_the_starts_labels_do_not_fill_in_where_the_classifier_contradicts_its_objects():
    """On brightfield the start paints whole cells, which the classifier confidently calls background."""
    strokes = np.zeros((1, 6), np.uint8)
    classifier = np.array([[[0.9, 0.9, 0.5, 0.5, 0.9, 0.5]], [[0.1, 0.1, 0.5, 0.5, 0.1, 0.5]]], np.float32)
    start = np.array([[[0.05, 0.05, 0.05, 0.05, 0.95, 0.95]], [[0.95, 0.95, 0.95, 0.95, 0.05, 0.05]]], np.float32)
    assert start_contradicted(confident_labels(classifier, 0.8), confident_labels(start, 0.8)) == 0.5
    merged = pseudo_targets(strokes, classifier, 0.8, StartLabels.of(start, 0.8, 0.5), fill=True)
    assert merged.tolist() == [[PSEUDO_OFFSET + 1] * 2 + [0, 0, PSEUDO_OFFSET + 1, 0]]  # nothing fills in
    trusted = start.copy()
    trusted[:, 0, :2] = trusted[::-1, 0, :2]  # the start agrees with the classifier's background there
    merged = pseudo_targets(strokes, classifier, 0.8, StartLabels.of(trusted, 0.8, 0.5), fill=True)
    assert merged.tolist() == [[PSEUDO_OFFSET + 1] * 2 + [START_OFFSET + 2] * 2 + [PSEUDO_OFFSET + 1, START_OFFSET + 1]]
