"""The shipped pretrained starting points: present, documented, and better than scratch when time is short."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core.api import predict, train
from napari_unet.core.data.synthetic import Style, synthetic_nuclei
from napari_unet.core.errors import UserInputError
from napari_unet.core.infer.inference import predict_normalized
from napari_unet.core.instances.metrics import foreground_iou
from napari_unet.core.models.model_sources import PRETRAINED, open_model, pretrained_path


@pytest.mark.parametrize("name", list(PRETRAINED))
def test_shipped_models_load_with_their_recipe_in_the_card(name):
    model = open_model(name)
    assert model.dim == int(name.split("-")[1][0]) and model.in_channels == 1
    assert model.config.class_names == ["background", "nucleus"]
    runs = model.config.history
    assert len(runs) >= 4 and all("scripts/pretrain.py" in run["image"]["name"] for run in runs)
    card = (pretrained_path(name) / "MODEL_CARD.md").read_text()
    assert "scripts/pretrain.py" in card and "nucleus" in card


def test_unknown_pretrained_name_lists_the_known_ones():
    with pytest.raises(UserInputError, match="nuclei-2d, nuclei-3d"):
        pretrained_path("cells-2d")


def _held_out_2d():
    """A look the pretraining never drew (fixed, other seed): dim, noisy, blurred nuclei."""
    return synthetic_nuclei(
        (256, 256), radius_range=(8.0, 12.0), style=Style(photons=40, read_noise=12, psf_sigma=2.4), seed=77
    )


def test_pretrained_start_beats_scratch_at_equal_short_budgets():
    sample = _held_out_2d()

    def iou_after(init, steps: int) -> float:
        model = train(sample.image, sample.strokes, init=init, steps=steps, seed=0, device="cpu")
        # the network itself: predict gives the pixel classifier unless the held-out strokes show the U-Net ahead
        unet = predict_normalized(model, model.normalize(sample.image[None]), device="cpu")
        return foreground_iou(unet.argmax(0) == 1, sample.instances > 0)

    for steps in (5, 20):
        pretrained, scratch = iou_after("nuclei-2d", steps), iou_after(None, steps)
        assert pretrained > 0.7 and pretrained > scratch + 0.1, (steps, pretrained, scratch)


def test_pretrained_3d_segments_the_sample_volume_without_strokes(nuclei_3d):
    labels = predict("nuclei-3d", nuclei_3d.image, device="cpu").labels
    assert foreground_iou(labels == 2, nuclei_3d.instances > 0) > 0.6
    assert np.isin(labels, [1, 2]).all()


def test_real_data_start_takes_rgb_by_its_recorded_reduction_and_says_where_it_comes_from(nuclei_2d):
    model = open_model("nuclei-2d-dsb")
    assert model.config.normalization.rgb_weights is not None and model.accepts_channels(3)
    card = (pretrained_path("nuclei-2d-dsb") / "MODEL_CARD.md").read_text()
    assert all(word in card for word in ("Data Science Bowl", "CC0", "Caicedo", "--data", "RGB images"))
    rgb = np.stack([nuclei_2d.image] * 3, axis=-1)  # grey saved as RGB: the same mask as the grey image
    from_rgb = predict(model, rgb, channel_axis=-1, device="cpu").labels
    assert (from_rgb == predict(model, nuclei_2d.image, device="cpu").labels).mean() > 0.999
    assert foreground_iou(from_rgb == 2, nuclei_2d.instances > 0) > 0.6
