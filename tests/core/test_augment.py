"""Augmentation moves images and strokes together; intensity changes only the chosen share of samples."""

import pytest
import torch

from napari_unet.core.train.augment import augment


@pytest.mark.parametrize("spatial", [(16, 16), (6, 8, 8)])
def test_flips_and_rotations_move_strokes_with_the_image(spatial):
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 3, (6, *spatial), generator=generator, dtype=torch.uint8)
    images = targets.float().unsqueeze(1) * 10 + 0.5  # the image spells out its strokes
    out_images, out_targets = augment(images, targets, generator, elastic_probability=0.0)
    assert torch.equal(out_images[:, 0], out_targets.float() * 10 + 0.5)
    assert not torch.equal(out_targets, targets)  # something was flipped or turned


def test_intensity_probability_zero_keeps_every_value():
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(8, 2, 12, 12, generator=generator)
    targets = torch.zeros(8, 12, 12, dtype=torch.uint8)
    out, _ = augment(images, targets, generator, elastic_probability=0.0, intensity_probability=0.0)
    for before, after in zip(images, out):  # flips and rot90 only permute the pixels of each sample
        assert torch.equal(before.flatten(1).sort(1).values, after.flatten(1).sort(1).values)


@pytest.mark.parametrize("probability", [0.5, 1.0])
def test_intensity_changes_about_the_chosen_share_of_samples(probability):
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(200, 1, 8, 8, generator=generator)
    targets = torch.zeros(200, 8, 8, dtype=torch.uint8)
    out, _ = augment(images, targets, generator, elastic_probability=0.0, intensity_probability=probability)
    unchanged = [torch.equal(a.flatten().sort().values, b.flatten().sort().values) for a, b in zip(images, out)]
    changed_share = 1 - sum(unchanged) / len(unchanged)
    assert changed_share == pytest.approx(probability, abs=0.1)
