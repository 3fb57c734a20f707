"""Patches always contain a painted voxel and classes are drawn evenly."""

import numpy as np
import pytest

from napari_unet.core.train.sampling import PatchSampler


@pytest.mark.parametrize(
    ("spatial", "patch"), [((64, 80), (16, 16)), ((9, 200), (32, 32)), ((6, 40, 50), (4, 16, 16)), ((5, 30), (1, 8))]
)
def test_every_patch_holds_an_annotation(rng, spatial, patch):
    annotations = np.zeros(spatial, np.uint8)
    annotations[(0,) * len(spatial)] = 1  # a single voxel in a corner
    annotations[tuple(s - 1 for s in spatial)] = 2  # and one in the opposite corner
    sampler = PatchSampler(rng.random((2, *spatial), dtype=np.float32), annotations, patch, rng)
    images, targets = sampler.sample(200)
    assert images.shape == (200, 2, *sampler.patch_size)
    assert targets.shape == (200, *sampler.patch_size)
    assert np.all(targets.reshape(200, -1).max(1) > 0)


def test_classes_are_balanced(rng):
    annotations = np.zeros((100, 100), np.uint8)
    annotations[:50, :] = 1  # 5000 background voxels
    annotations[99, 99] = 2  # a single object voxel
    sampler = PatchSampler(np.zeros((1, 100, 100), np.float32), annotations, (8, 8), rng)
    _, targets = sampler.sample(400)
    with_object = np.mean([(t == 2).any() for t in targets])
    assert 0.4 < with_object < 0.6


def test_update_switches_to_new_strokes(rng):
    annotations = np.zeros((40, 40), np.uint8)
    annotations[0, 0], annotations[0, 1] = 1, 2
    sampler = PatchSampler(np.zeros((1, 40, 40), np.float32), annotations, (8, 8), rng)
    moved = np.zeros_like(annotations)
    moved[39, 39], moved[39, 38], moved[39, 37] = 1, 2, 3
    sampler.update(moved)
    assert sampler.classes == [1, 2, 3]
    _, targets = sampler.sample(50)
    assert all(set(np.unique(t)) - {0} <= {1, 2, 3} and t.max() > 0 for t in targets)
    assert not any((t == 2).any() and t[0, 1] == 2 for t in targets)


def test_patch_is_clipped_to_small_images(rng):
    annotations = np.array([[1, 2, 0]], np.uint8)
    sampler = PatchSampler(np.zeros((1, 1, 3), np.float32), annotations, (64, 64), rng)
    images, targets = sampler.sample(3)
    assert images.shape == (3, 1, 1, 3) and targets.shape == (3, 1, 3)


def test_uniform_share_places_patches_anywhere(rng):
    annotations = np.zeros((200, 200), np.uint8)
    annotations[0, 0], annotations[0, 1] = 1, 2  # strokes in one corner only
    sampler = PatchSampler(np.zeros((1, 200, 200), np.float32), annotations, (8, 8), rng, uniform_share=0.5)
    _, targets = sampler.sample(400)
    stroked = targets.reshape(400, -1).max(1) > 0
    assert stroked[200:].all()  # the second half is centred on strokes
    assert stroked[:200].mean() < 0.1  # the first half lies anywhere: rarely in that corner


def test_patches_are_cut_from_targets_but_centred_on_strokes(rng):
    strokes = np.zeros((60, 60), np.uint8)
    strokes[30, 30] = 2
    strokes[5, 5] = 1
    targets = np.where(strokes > 0, strokes, 129).astype(np.uint8)  # everything else: a pseudo-label
    sampler = PatchSampler(np.zeros((1, 60, 60), np.float32), strokes, (4, 4), rng)
    sampler.update(strokes, targets)
    assert sampler.classes == [1, 2]
    _, patches = sampler.sample(100)
    assert np.all([(p == 1).any() or (p == 2).any() for p in patches])
    assert np.all(np.isin(patches, [1, 2, 129]))
