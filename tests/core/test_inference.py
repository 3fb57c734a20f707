"""Tiled prediction: same result as one whole-image pass away from the border, any size, 2D on stacks."""

import numpy as np
import pytest
import torch

from napari_unet.core.errors import UserInputError
from napari_unet.core.infer.inference import predict, predict_normalized
from napari_unet.core.infer.tiling import gaussian_weights, tile_starts
from napari_unet.core.models.model import Model
from napari_unet.core.models.network import UNet


def _model(dim, channels=1, classes=3, spacing=None):
    torch.manual_seed(0)
    model = Model.create(dim=dim, in_channels=channels, num_classes=classes, base_channels=4, depth=3, spacing=spacing)
    return model


def _smooth_image(rng, shape, channels=1):
    from scipy import ndimage as ndi

    return np.stack([ndi.gaussian_filter(rng.random(shape, dtype=np.float32), 2) * 4 for _ in range(channels)])


@pytest.mark.parametrize(("dim", "shape", "tile"), [(2, (150, 133), 64), (3, (20, 70, 61), 32)])
def test_tiled_equals_untiled_away_from_the_border(rng, dim, shape, tile):
    model = _model(dim)
    image = _smooth_image(rng, shape)
    whole = predict_normalized(model, image, tile_size=max(shape))
    tiled = predict_normalized(model, image, tile_size=tile, overlap=0.5)
    inner = (slice(None), *tuple(slice(8, s - 8) for s in shape))
    assert np.abs(whole[inner] - tiled[inner]).max() < 0.02
    assert np.mean(whole.argmax(0) == tiled.argmax(0)) > 0.99


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 200), (255, 257), (2, 3, 5)])
def test_any_size_gives_valid_labels(rng, shape):
    dim = 2 if len(shape) == 2 else 3
    prediction = predict(_model(dim), rng.random(shape), probabilities=True, tile_size=64, device="cpu")
    assert prediction.labels.shape == shape and prediction.labels.dtype == np.uint8
    assert set(np.unique(prediction.labels)) <= {1, 2, 3}
    assert np.allclose(prediction.probabilities.sum(0), 1, atol=1e-4)


def test_2d_model_on_a_stack_goes_plane_by_plane(rng):
    model = _model(2)
    stack = rng.random((4, 40, 50)).astype(np.float32) * 1000
    plane_by_plane = predict(model, stack, probabilities=True, device="cpu").probabilities
    normalized = model.normalize(stack[None])
    for z in range(4):
        single = predict_normalized(model, normalized[:, z])
        assert np.allclose(plane_by_plane[:, z], single, atol=1e-5)


def test_multichannel_needs_the_channel_axis(rng):
    model = _model(2, channels=2)
    image = rng.random((30, 40, 2))
    assert predict(model, image, channel_axis=-1, device="cpu").labels.shape == (30, 40)
    with pytest.raises(UserInputError, match="channel"):
        predict(model, image, device="cpu")


def test_tiles_cover_the_axis_on_the_pooling_grid():
    for size in (1, 17, 64, 65, 300, 1001):
        starts = tile_starts(size, 64, 0.25, multiple=8)
        covered = np.zeros(size, bool)
        for s in starts:
            covered[s : s + min(64, size)] = True
        assert covered.all() and starts[-1] == max(0, size - 64)
        assert all(s % 8 == 0 for s in starts[:-1])


def test_gaussian_weights_peak_in_the_middle_and_stay_positive():
    weights = gaussian_weights((1, 9, 12))
    assert weights.shape == (1, 9, 12) and weights.min() > 0
    assert weights[0, 4, 5] == pytest.approx(weights.max())


def test_tiles_smaller_than_the_pooling_factor_still_cover_the_image(rng):
    prediction = predict(_model(2), rng.random((37, 29)), probabilities=True, tile_size=4, device="cpu")
    assert np.isfinite(prediction.probabilities).all()
    assert np.allclose(prediction.probabilities.sum(0), 1, atol=1e-4)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tile_size": 0}, "tile size"),
        ({"overlap": 1.0}, "overlap"),
        ({"overlap": -0.1}, "overlap"),
        ({"batch_size": 0}, "batch size"),
    ],
)
def test_bad_tiling_options_are_refused(rng, options, message):
    with pytest.raises(UserInputError, match=message):
        predict(_model(2), rng.random((20, 20)), device="cpu", **options)


def test_out_of_memory_halves_the_batch_then_the_tiles_and_gives_the_same_result(rng, monkeypatch):
    model = _model(2)
    image = _smooth_image(rng, (96, 80))
    expected = predict_normalized(model, image, tile_size=32, batch_size=1)
    real_forward = UNet.forward

    def forward_with_little_memory(network, x):  # fakes a GPU that holds one 32² tile at a time
        if x.shape[0] > 1 or max(x.shape[2:]) > 32:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (faked)")
        return real_forward(network, x)

    monkeypatch.setattr(UNet, "forward", forward_with_little_memory)
    with pytest.warns(RuntimeWarning, match="out of cpu memory") as warned:
        result = predict_normalized(model, image, tile_size=64, batch_size=4)
    messages = [str(w.message) for w in warned]
    assert messages == [
        "out of cpu memory: retrying with 2 tile(s) per pass",
        "out of cpu memory: retrying with 1 tile(s) per pass",
        "out of cpu memory: retrying with tiles of 32×32",
    ]
    np.testing.assert_allclose(result, expected, atol=1e-6)


def test_out_of_memory_for_the_smallest_tile_is_a_clear_error(rng, monkeypatch):
    model = _model(2)

    def no_memory(network, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (faked)")

    monkeypatch.setattr(UNet, "forward", no_memory)
    ending = r"even for one tile of 4×4: close other programs$"
    with pytest.warns(RuntimeWarning), pytest.raises(UserInputError, match=ending):
        predict_normalized(model, _smooth_image(rng, (40, 40)), tile_size=16, batch_size=1)
