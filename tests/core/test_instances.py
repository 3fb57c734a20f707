"""Instances: touching objects are split, objects cut by block borders keep one id; uncertainty is
high where the model cannot decide and suggestions point there."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core.instances.instance_blocks import instances_to_array
from napari_unet.core.instances.metrics import instance_f1
from napari_unet.core.instances.postprocess import certainty, instances_from_labels, split_touching
from napari_unet.core.instances.uncertainty import entropy, suggest_regions


def _discs(shape, centres, radius, spacing=None):
    """Labels 1..N of discs/balls (radius in physical units), later ones on top."""
    spacing = np.asarray(spacing or [1.0] * len(shape))
    grid = np.indices(shape).astype(float)
    labels = np.zeros(shape, np.int32)
    for i, centre in enumerate(centres, start=1):
        distance = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)))
        labels[distance <= radius] = i
    return labels


def test_two_touching_discs_become_two_objects():
    truth = _discs((60, 90), [(30, 30), (30, 56)], 14)  # overlapping by 2 px: one connected blob
    assert np.unique(truth).size == 3
    instances = split_touching(truth > 0)
    assert instances.max() == 2
    assert instance_f1(instances, truth) == 1.0


def test_a_line_the_model_is_unsure_of_splits_a_blob_the_shape_alone_keeps_whole():
    truth = _discs((60, 90), [(30, 36), (30, 48)], 14)  # centres 12 px apart: the neck is nearly as wide
    blob = truth > 0
    assert split_touching(blob).max() == 1
    sure = np.ones(blob.shape, np.float32)
    sure[:, 41:43] = 0.2  # a network trained on touching nuclei hesitates on the line between them
    instances = split_touching(blob, certainty=sure)
    assert instances.max() == 2 and instance_f1(instances, truth) == 1.0


def test_specks_and_pieces_the_model_doubts_are_left_out():
    truth = _discs((40, 90), [(20, 15), (20, 45), (20, 75)], 7)
    mask = (truth > 0) | (_discs((40, 90), [(5, 30)], 1) > 0)  # and a 5-px speck
    sure = np.ones(mask.shape, np.float32)
    sure[truth == 3] = 0.2  # the model barely prefers object over background on the third disc
    instances = split_touching(mask, certainty=sure)
    assert instances.max() == 2
    assert instance_f1(instances, np.where(truth == 3, 0, truth)) == 1.0


def test_certainty_is_how_sure_the_model_is_of_object_or_background():
    background = np.array([[0.1, 0.5, 0.8]], np.float32)
    objects = (1 - background) / 2  # two object classes sharing the rest: a tie between them is still object
    probabilities = np.stack([background, objects, objects])
    np.testing.assert_allclose(certainty(probabilities), [[0.8, 0.0, 0.6]], atol=1e-6)


def test_h_is_in_voxels_of_the_finest_axis_whatever_the_unit():
    truth = _discs((60, 90), [(30, 30), (30, 56)], 14)
    in_pixels = split_touching(truth > 0)
    in_micrometres = split_touching(truth > 0, spacing=(0.1, 0.1))
    np.testing.assert_array_equal(in_micrometres, in_pixels)


def test_anisotropic_balls_are_split_in_physical_units():
    spacing = (3.0, 1.0, 1.0)
    truth = _discs((16, 48, 70), [(8, 24, 22), (8, 24, 46)], 12, spacing)
    instances = split_touching(truth > 0, spacing)
    assert instances.max() == 2 and instance_f1(instances, truth) == 1.0


def test_each_class_gets_its_own_ids():
    labels = np.ones((40, 80), np.uint8)
    labels[10:30, 5:25] = 2
    labels[10:30, 50:70] = 3
    instances = instances_from_labels(labels)
    assert sorted(np.unique(instances)) == [0, 1, 2]
    assert len(np.unique(instances[labels == 2])) == 1 and len(np.unique(instances[labels == 3])) == 1


@pytest.mark.parametrize("block", [(32, 32), (25, 41)])
def test_objects_cut_by_block_borders_keep_one_id(block):
    rng = np.random.default_rng(1)
    centres = [(rng.uniform(10, 90), rng.uniform(10, 110)) for _ in range(14)]
    truth = _discs((100, 120), centres, 9)
    semantic = np.where(truth > 0, 2, 1).astype(np.uint8)
    whole = instances_from_labels(semantic)
    blocked = np.zeros(semantic.shape, np.int32)
    count = instances_to_array(semantic, blocked, block, halo=(16, 16))
    assert count == whole.max()
    assert instance_f1(blocked, whole, threshold=0.9) == 1.0  # the same objects, one id each
    assert sorted(np.unique(blocked))[1:] == list(range(1, count + 1))


def test_distinct_objects_meeting_at_a_block_face_stay_apart():
    truth = _discs((40, 64), [(20, 16), (20, 47)], 15.6)  # the two discs touch at x = 31 / 32
    semantic = np.where(truth > 0, 2, 1).astype(np.uint8)
    blocked = np.zeros(semantic.shape, np.int32)
    assert instances_to_array(semantic, blocked, (40, 32), halo=(8, 8)) == 2
    assert instance_f1(blocked, truth) == 1.0


def test_entropy_is_one_where_classes_tie_and_zero_where_sure():
    probabilities = np.stack([np.array([[0.5, 1.0, 0.0]]), np.array([[0.5, 0.0, 1.0]])])
    np.testing.assert_allclose(entropy(probabilities), [[1.0, 0.0, 0.0]], atol=1e-5)


def test_suggestions_go_to_uncertain_unpainted_regions_first():
    uncertainty = np.zeros((100, 100), np.float32)
    uncertainty[10:30, 60:80] = 0.9  # most uncertain, but already painted
    uncertainty[60:80, 10:30] = 0.6
    uncertainty[40:50, 40:50] = 0.3
    painted = np.zeros((100, 100), np.uint8)
    painted[10:30, 60:80] = 2
    suggestions = suggest_regions(uncertainty, window=20, count=3, painted=painted)
    assert [s.center for s in suggestions[:1]] == [(70, 20)]
    assert suggestions[0].score > suggestions[1].score
    boxes = [s.box for s in suggestions]
    assert all(
        not (a[0].start < b[0].stop and b[0].start < a[0].stop and a[1].start < b[1].stop and b[1].start < a[1].stop)
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
    )


def test_uncertainty_is_high_where_the_strokes_disagree():
    from napari_unet.core.api import predict, train
    from napari_unet.core.models.model import Model

    rng = np.random.default_rng(0)
    centres = [(16 + 32 * i, 16 + 32 * j) for i in range(3) for j in range(4)]
    blobs = _discs((96, 128), centres, 9)
    bright_ids = [1, 4, 6, 7, 9, 12]
    bright = np.isin(blobs, bright_ids)
    grey = (blobs > 0) & ~bright
    image = np.where(bright, 220.0, np.where(grey, 120.0, 40.0)) + rng.normal(0, 5, blobs.shape)
    strokes = np.zeros(blobs.shape, np.uint8)
    strokes[(blobs == 0) & (np.indices(blobs.shape)[0] % 16 == 0)] = 1
    for k, (y, x) in enumerate(centres, start=1):  # bright: object; grey: object (2, 8, 11) or background
        strokes[y - 2 : y + 2, x - 4 : x + 4] = 2 if k in (*bright_ids, 2, 8, 11) else 1
    trained = train(image.astype(np.float32), strokes, steps=150, seed=0, base_channels=8, depth=2, device="cpu")
    network = Model(trained.network, trained.config)  # the U-Net's own probabilities, whichever candidate is shown
    uncertainty = entropy(predict(network, image, probabilities=True, device="cpu").probabilities)
    assert uncertainty[grey].mean() > 1.5 * uncertainty[bright].mean()  # ~2.5x over repeated runs


def test_suggestions_reach_the_far_edges():
    uncertainty = np.zeros((10, 100), np.float32)
    uncertainty[:, 90:] = 1.0
    best = suggest_regions(uncertainty, window=(10, 20), count=1)[0]
    assert best.box[1] == slice(80, 100)
