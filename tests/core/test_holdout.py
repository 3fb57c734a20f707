"""Held-out strokes: disjoint from training, a gap from it, deterministic, whole pieces."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_unet.core.train.holdout import GAP, held_out_score, split_strokes


def _check(strokes: np.ndarray, seed: int = 0):
    split = split_strokes(strokes, seed)
    held = np.zeros(strokes.shape, bool)
    held.ravel()[split.voxels] = True
    assert not (held & (split.training > 0)).any()
    np.testing.assert_array_equal(split.labels, strokes.ravel()[split.voxels])
    assert (split.training[split.training > 0] == strokes[split.training > 0]).all()
    distance = ndi.distance_transform_cdt(split.training == 0, metric="chessboard")
    assert (distance[held] > GAP).all()
    return split


def test_split_of_many_strokes_is_disjoint_deterministic_and_about_a_fifth(nuclei_2d):
    split = _check(nuclei_2d.strokes)
    again = split_strokes(nuclei_2d.strokes, 0)
    np.testing.assert_array_equal(split.voxels, again.voxels)
    np.testing.assert_array_equal(split.training, again.training)
    assert not np.array_equal(split_strokes(nuclei_2d.strokes, 1).voxels, split.voxels)
    assert split.classes == [1, 2]
    for value in (1, 2):
        painted, kept = (nuclei_2d.strokes == value).sum(), (split.training == value).sum()
        assert 0.55 < kept / painted < 0.95


def test_one_long_stroke_per_class_is_cut_into_chunks():
    strokes = np.zeros((40, 200), np.uint8)
    strokes[10, 5:195] = 1
    strokes[30, 5:195] = 2
    split = _check(strokes)
    assert split.classes == [1, 2]
    assert (split.training == 1).any() and (split.training == 2).any()


def test_a_single_dot_per_class_is_never_held_out():
    strokes = np.zeros((20, 20), np.uint8)
    strokes[3, 3], strokes[15, 15] = 1, 2
    split = _check(strokes)
    assert len(split.voxels) == 0
    np.testing.assert_array_equal(split.training, strokes)
    assert held_out_score(np.zeros((2, 0)), split.labels) is None


def test_scores_are_balanced_over_classes():
    labels = np.array([1, 1, 1, 2])
    probabilities = np.array([[0.9, 0.8, 0.4, 0.3], [0.1, 0.2, 0.6, 0.7]])
    assert held_out_score(probabilities, labels) == (2 / 3 + 1) / 2


def test_the_split_depends_on_the_strokes_not_on_the_empty_image_around_them(nuclei_2d):
    """Only the strokes' box is looked at; a shift along the chunk grid gives the same split, shifted."""
    from napari_unet.core.train.holdout import PIECE_EDGE

    strokes = nuclei_2d.strokes
    offset = 3 * PIECE_EDGE
    bigger = np.zeros((strokes.shape[0] + 2 * offset, strokes.shape[1] + offset), strokes.dtype)
    bigger[offset:-offset, offset:] = strokes
    split, shifted = split_strokes(strokes, 0), _check(bigger)
    np.testing.assert_array_equal(shifted.training[offset:-offset, offset:], split.training)
    rows, cols = np.unravel_index(split.voxels, strokes.shape)
    np.testing.assert_array_equal(shifted.voxels, np.ravel_multi_index((rows + offset, cols + offset), bigger.shape))


def test_nothing_painted_holds_nothing_out():
    split = split_strokes(np.zeros((8, 8), np.uint8))
    assert len(split.voxels) == 0 and not split.training.any()
