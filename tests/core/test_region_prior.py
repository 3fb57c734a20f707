"""The region term fits brightness per class, and counts only when the strokes differ in brightness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.core.api import train
from napari_unet.core.models.config import TrainConfig
from napari_unet.core.train.losses import region_fit
from napari_unet.core.train.region_prior import brightness_separation, scaled_region_weight


def _voxels(annotations: np.ndarray) -> dict[int, np.ndarray]:
    flat = annotations.ravel()
    return {int(k): np.flatnonzero(flat == k) for k in np.unique(flat) if k}


def test_separation_is_one_for_disjoint_brightness_and_near_zero_for_texture(rng):
    strokes = np.zeros((64, 64), np.uint8)
    strokes[:, :32], strokes[:, 32:] = 1, 2
    bright = np.where(strokes == 2, 1.0, 0.0) + rng.normal(0, 0.1, strokes.shape)
    texture = rng.normal(0, np.where(strokes == 2, 2.0, 0.5))  # same mean, different spread
    assert brightness_separation(bright[None], _voxels(strokes)) == pytest.approx(1.0)
    assert brightness_separation(texture[None], _voxels(strokes)) < 0.2
    # the channel that separates the classes counts, the other one does not
    assert brightness_separation(np.stack([texture, bright]), _voxels(strokes)) == pytest.approx(1.0)


def test_separation_takes_the_worst_pair_of_classes(rng):
    strokes = np.repeat(np.array([1, 2, 3], np.uint8), 100)[None]
    image = np.where(strokes == 1, 0.0, 1.0) + rng.normal(0, 0.05, strokes.shape)  # classes 2 and 3 look alike
    assert brightness_separation(image[None], _voxels(strokes)) < 0.3
    assert brightness_separation(image[None], _voxels(np.where(strokes == 3, 0, strokes))) == pytest.approx(1.0)


def test_one_painted_class_gives_no_separation():
    assert brightness_separation(np.zeros((1, 4, 4)), {1: np.arange(5)}) == 0.0


@pytest.mark.parametrize(("separation", "expected"), [(0.2, 0.0), (0.5, 0.0), (0.7, 1.0), (0.9, 2.0), (1.0, 2.0)])
def test_weight_ramps_from_none_to_full(separation, expected):
    assert scaled_region_weight(separation, 2.0) == pytest.approx(expected)


def test_region_fit_is_lowest_when_classes_follow_the_brightness_edge():
    image = torch.zeros(1, 1, 16, 16)
    image[..., 8:] = 1.0

    def fit(edge: int) -> float:
        foreground = torch.zeros(1, 1, 16, 16)
        foreground[..., edge:] = 1.0
        return float(region_fit(torch.cat([1 - foreground, foreground], 1), image))

    assert fit(8) == pytest.approx(0.0, abs=1e-4)
    assert fit(8) < fit(6) < fit(3)
    assert fit(8) < fit(10)


def _two_nuclei(dim_level: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A bright and a dim disk on a dark 32² background: the image and each disk's mask."""
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    bright = (((y - 8) ** 2 + (x - 8) ** 2) <= 16).float()
    dim = (((y - 24) ** 2 + (x - 24) ** 2) <= 16).float()
    return (bright + dim_level * dim)[None, None], bright, dim


@pytest.mark.parametrize("dim_level", [0.2, 0.3, 0.4])
def test_local_class_means_keep_a_dim_object_that_one_mean_per_patch_drops(dim_level):
    image, bright, dim = _two_nuclei(dim_level)

    def fit(foreground: torch.Tensor, block) -> float:
        foreground = foreground[None, None]
        return float(region_fit(torch.cat([1 - foreground, foreground], 1), image, block))

    assert fit(bright, None) < fit(bright + dim, None)  # one foreground brightness: the dim disk is "background"
    assert fit(bright + dim, (8, 8)) < fit(bright, (8, 8))  # its own neighbourhood: it is an object


def test_region_fit_over_one_box_the_size_of_the_patch_is_the_patch_wide_fit():
    image, _, _ = _two_nuclei(0.3)
    probabilities = torch.softmax(torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(0)), 1)
    assert float(region_fit(probabilities, image, (32, 32))) == pytest.approx(float(region_fit(probabilities, image)))


def test_region_fit_gradient_reaches_unpainted_voxels():
    torch.manual_seed(0)
    logits = torch.randn(1, 2, 8, 8, requires_grad=True)
    image = torch.rand(1, 1, 8, 8)
    region_fit(torch.softmax(logits, 1), image).backward()
    assert (logits.grad.abs().sum(1) > 0).all()


def test_training_uses_the_region_term_only_when_strokes_differ_in_brightness(nuclei_2d, rng):
    model = train(nuclei_2d.image, nuclei_2d.strokes, steps=1, seed=0)
    run = model.config.history[-1]
    assert run["brightness_separation"] > 0.9 and run["region_weight"] == TrainConfig().region_weight > 0
    strokes = np.zeros((64, 64), np.uint8)
    strokes[4:8, 4:60], strokes[56:60, 4:60] = 1, 2
    texture = rng.normal(100, np.where(np.arange(64)[:, None] >= 32, 20.0, 5.0), (64, 64)).astype(np.float32)
    model = train(texture, strokes, steps=1, seed=0)
    run = model.config.history[-1]
    assert run["brightness_separation"] < 0.5 and run["region_weight"] == 0.0


def test_training_leaves_the_region_term_out_on_images_of_several_channels(nuclei_2d):
    rgb = np.stack([nuclei_2d.image, nuclei_2d.image * 0.5, 255 - nuclei_2d.image], axis=-1)
    model = train(rgb, nuclei_2d.strokes, channel_axis=-1, steps=1, seed=0)
    run = model.config.history[-1]
    assert run["brightness_separation"] > 0.9 and run["region_weight"] == 0.0
    assert scaled_region_weight(1.0, 2.0, channels=3) == 0.0 < scaled_region_weight(1.0, 2.0, channels=1)
