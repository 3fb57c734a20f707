"""Mixed precision: the reduced-precision paths run (on the CPU here, on CUDA in test_gpu.py), and
overflow falls back to float32 instead of ruining weights or masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.core.api import predict, train
from napari_unet.core.errors import UserInputError
from napari_unet.core.models.model import UNET
from napari_unet.core.models.network import Bf16SafeConv3d
from napari_unet.core.models.precision import cpu_has_native_bfloat16, resolve_precision


@pytest.mark.parametrize(
    ("name", "expected"), [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_precision_names_on_the_cpu(name, expected):
    assert resolve_precision(name, "cpu") == expected


def test_auto_precision_on_the_cpu_is_bfloat16_only_where_the_cpu_computes_it():
    expected = torch.bfloat16 if cpu_has_native_bfloat16() else torch.float32  # emulated bf16 is slower
    assert resolve_precision("auto", "cpu") == expected


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_bfloat16_weight_gradients_of_3d_convolutions_are_right_at_every_depth(depth):
    """oneDNN's AVX512-BF16 kernel gets weight gradients wrong (1e30 and more) for depth-2 inputs;
    :class:`Bf16SafeConv3d` computes those in float32. Other depths: bfloat16 rounding only."""
    generator = torch.Generator().manual_seed(depth)
    conv = Bf16SafeConv3d(32, 64, 3, padding=1, bias=False)
    inputs = torch.randn(4, 32, depth, 4, 4, generator=generator)
    upstream = torch.randn(4, 64, depth, 4, 4, generator=generator)
    conv(inputs).backward(upstream)
    exact = conv.weight.grad.clone()
    conv.weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = conv(inputs)
    output.backward(upstream.to(output.dtype))
    assert torch.linalg.norm(conv.weight.grad - exact) < 0.02 * torch.linalg.norm(exact)


def test_unknown_precision_is_one_line():
    with pytest.raises(UserInputError, match="unknown precision 'half': use one of auto, fp32, bf16, fp16"):
        resolve_precision("half", "cpu")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_training_runs_in_reduced_precision(nuclei_2d, precision):
    losses = []
    model = train(
        nuclei_2d.image,
        nuclei_2d.strokes,
        steps=4,
        seed=0,
        precision=precision,
        batch_size=2,
        patch_size=[32, 32],
        callback=lambda report: losses.append(report.loss) if report.step else None,  # step 0: no U-Net step yet
    )
    assert model.config.history[-1]["precision"] == precision
    assert len(losses) == 4 and np.isfinite(losses).all()  # a skipped step reports NaN
    assert all(torch.isfinite(p).all() for p in model.network.parameters())


def _hot_pixel_image(shape=(32, 32), seed=0):
    """Noise with one pixel far brighter than the rest: 1 of 1024 pixels stays above the 99.8th
    percentile, so the normalised image holds a value near 1e9, past float16's 65504."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 10, shape).astype(np.float32)
    image[16, 16] = 1e10
    return image


def test_training_that_overflows_float16_goes_on_in_float32():
    image = _hot_pixel_image()
    strokes = np.zeros(image.shape, np.uint8)
    strokes[2:6, 2:30], strokes[26:30, 2:30] = 1, 2
    with pytest.warns(RuntimeWarning, match="training overflowed fp16: it goes on in float32"):
        model = train(
            image, strokes, steps=3, time_budget=None, seed=0, precision="fp16", patch_size=[32, 32], augment=False
        )
    run = model.config.history[-1]
    assert run["precision"] == "fp32"
    assert run["steps"] == 3 and np.isfinite(run["final_loss"])
    assert all(torch.isfinite(p).all() for p in model.network.parameters())


def test_reduced_precision_prediction_agrees_with_float32(nuclei_2d):
    sample = nuclei_2d
    model = train(sample.image, sample.strokes, steps=20, seed=0)
    full = predict(model, sample.image, precision="fp32", probabilities=True)
    reduced = predict(model, sample.image, precision="bf16", probabilities=True)
    assert reduced.probabilities.dtype == np.float32
    assert np.mean(reduced.labels == full.labels) > 0.98
    assert np.abs(reduced.probabilities - full.probabilities).max() < 0.1


def test_prediction_that_overflows_float16_is_redone_in_float32(nuclei_2d):
    sample = nuclei_2d
    model = train(sample.image, sample.strokes, steps=2, seed=0)
    model.config.selection = {**model.config.selection, "chosen": UNET}  # the network's precision is tested
    image = _hot_pixel_image(sample.image.shape)
    full = predict(model, image, precision="fp32", probabilities=True)
    with pytest.warns(RuntimeWarning, match="prediction overflowed fp16: redone in float32"):
        half = predict(model, image, precision="fp16", probabilities=True)
    np.testing.assert_array_equal(half.probabilities, full.probabilities)
    assert np.isfinite(half.probabilities).all()


def test_unknown_precision_stops_prediction_before_any_work(nuclei_2d, tmp_path):
    from napari_unet.core.infer.zarr_output import predict_to_zarr

    model = train(nuclei_2d.image, nuclei_2d.strokes, steps=1, seed=0)
    with pytest.raises(UserInputError, match="unknown precision"):
        predict_to_zarr(model, _as_image_data(nuclei_2d.image), tmp_path / "out.zarr", precision="half")
    assert not (tmp_path / "out.zarr").exists()


def _as_image_data(array):
    from napari_unet.core.io.io import ImageData

    return ImageData(array)


def test_non_finite_gradients_with_a_finite_loss_skip_the_update(nuclei_2d):
    """A NaN gradient (as a faulty reduced-precision kernel can give) must not reach the weights."""
    from napari_unet.core.api import prepare_model
    from napari_unet.core.models.config import TrainConfig
    from napari_unet.core.train.training import train_steps

    model, annotations = prepare_model(nuclei_2d.image[None], nuclei_2d.strokes, dim=2, base_channels=4, depth=2)
    broken_calls = {"left": 2}

    def nan_for_two_steps(gradient):
        if broken_calls["left"]:
            broken_calls["left"] -= 1
            return gradient * float("nan")
        return gradient

    model.network.head.weight.register_hook(nan_for_two_steps)
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    settings = TrainConfig(steps=2, device="cpu", seed=0, precision="fp32")  # bf16 would first redo it in fp32
    reports = [r for r in train_steps(model, nuclei_2d.image[None], annotations, settings) if r.step]
    assert [np.isnan(r.loss) for r in reports] == [True, True]
    for name, value in model.network.state_dict().items():
        assert torch.equal(value, before[name]), name  # weights and norm statistics untouched
    settings = TrainConfig(steps=2, device="cpu", seed=0, precision="fp32")  # bf16 would first redo it in fp32
    reports = [r for r in train_steps(model, nuclei_2d.image[None], annotations, settings) if r.step]
    assert np.isfinite([r.loss for r in reports]).all()
    assert all(torch.isfinite(p).all() for p in model.network.parameters())


def test_float16_gradients_that_overflow_even_unscaled_move_training_to_float32(nuclei_2d):
    """The loss scaler skips steps whose float16 gradients overflow; once its scale is below 1,
    float16 cannot hold them at all and the run goes on in float32."""
    from napari_unet.core.api import prepare_model
    from napari_unet.core.models.config import TrainConfig
    from napari_unet.core.train.training import train_steps

    model, annotations = prepare_model(nuclei_2d.image[None], nuclei_2d.strokes, dim=2, base_channels=4, depth=2)
    model.network.head.weight.register_hook(lambda gradient: gradient * float("inf"))  # every step overflows
    settings = TrainConfig(steps=20, device="cpu", seed=0, precision="fp16", patch_size=[32, 32], batch_size=2)
    with pytest.warns(RuntimeWarning, match="training overflowed fp16: it goes on in float32"):
        list(train_steps(model, nuclei_2d.image[None], annotations, settings))
    run = model.config.history[-1]
    assert (run["precision"], run["started_in"]) == ("fp32", "fp16")  # the record says it fell back
    from napari_unet.core.models.model_card import model_card

    assert "cpu (fp16 → fp32)" in model_card(model.config)
