"""GPU smoke tests: training and prediction on CUDA give the same kind of result as on CPU.

Marked ``gpu`` and skipped without a CUDA device (CI has none); run them with ``pytest -m gpu``
on a machine that has one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.core.api import predict, train
from napari_unet.core.instances.metrics import foreground_iou

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("fixture", ["nuclei_2d", "nuclei_3d"])
def test_training_and_prediction_run_on_cuda(request, fixture):
    sample = request.getfixturevalue(fixture)
    model = train(sample.image, sample.strokes, spacing=sample.spacing, steps=60, seed=0, device="cuda")
    assert model.config.history[-1]["device"].startswith("cuda")
    on_gpu = predict(model, sample.image, probabilities=True, device="cuda")
    on_cpu = predict(model, sample.image, probabilities=True, device="cpu")
    assert np.isfinite(on_gpu.probabilities).all()
    assert np.mean(on_gpu.labels == on_cpu.labels) > 0.98  # bfloat16 (or float16) on the GPU, float32 here
    assert foreground_iou(on_gpu.labels == 2, sample.instances > 0) > 0.3


def test_cuda_computes_in_16_bit_by_default_and_float32_on_request(nuclei_2d):
    sample = nuclei_2d
    model = train(sample.image, sample.strokes, steps=20, seed=0, device="cuda")
    expected = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    assert model.config.history[-1]["precision"] == expected
    assert torch.backends.cudnn.benchmark
    exact = train(sample.image, sample.strokes, steps=20, seed=0, device="cuda", precision="fp32")
    assert exact.config.history[-1]["precision"] == "fp32"
    reduced = predict(model, sample.image, device="cuda", probabilities=True)
    full = predict(model, sample.image, device="cuda", precision="fp32", probabilities=True)
    assert np.mean(reduced.labels == full.labels) > 0.98
    assert np.abs(reduced.probabilities - full.probabilities).max() < 0.1
