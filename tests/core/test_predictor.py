"""The predictor works on a private copy: the caller's model keeps its device, layout, mode and weights."""

import copy

import numpy as np
import pytest
import torch

from napari_unet.core.api import train
from napari_unet.core.infer.inference import predict
from napari_unet.core.infer.predictor import fold_batch_norms, inference_copy
from napari_unet.core.models.model import Model


def _state(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in network.state_dict().items()}


def _assert_same_state(before: dict[str, torch.Tensor], network: torch.nn.Module) -> None:
    after = network.state_dict()
    assert before.keys() == after.keys()
    for name, value in before.items():
        assert torch.equal(value, after[name]), name


@pytest.mark.parametrize("dim", [2, 3])
def test_prediction_leaves_the_model_alone(rng, dim):
    torch.manual_seed(0)
    model = Model.create(dim=dim, in_channels=1, num_classes=3, base_channels=4, depth=3)
    model.network.train()
    before = _state(model.network)
    shape = (40, 36) if dim == 2 else (10, 24, 20)
    predict(model, rng.random(shape).astype(np.float32), device="cpu", tile_size=16)
    assert model.network.training
    assert model.network.memory_format == torch.contiguous_format
    assert all(p.is_contiguous() for p in model.network.parameters())
    assert next(model.network.parameters()).device == torch.device("cpu")
    _assert_same_state(before, model.network)


@pytest.mark.parametrize("dim", [2, 3])
def test_folded_batch_norms_predict_what_the_eval_network_does(rng, dim):
    torch.manual_seed(0)
    model = Model.create(dim=dim, in_channels=1, num_classes=3, base_channels=4, depth=3)
    with torch.no_grad():  # running statistics away from their defaults, as after training
        for module in model.network.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    shape = (1, 1, 32, 40) if dim == 2 else (1, 1, 8, 16, 24)
    x = torch.from_numpy(rng.random(shape).astype(np.float32))
    reference = copy.deepcopy(model.network).eval()
    copied = inference_copy(model.network, torch.device("cpu"))
    norms = [m for m in copied.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.inference_mode():
        np.testing.assert_allclose(copied(x).numpy(), reference(x).numpy(), atol=1e-4)
    assert not norms


def test_folding_leaves_other_norms_alone():
    torch.manual_seed(0)
    network = Model.create(dim=2, in_channels=1, num_classes=2, base_channels=4, depth=2, norm="instance").network
    kinds = [type(m) for m in network.modules()]
    fold_batch_norms(network)
    assert [type(m) for m in network.modules()] == kinds


def test_training_from_a_model_leaves_that_model_alone(nuclei_2d):
    torch.manual_seed(0)
    start = train(nuclei_2d.image, nuclei_2d.strokes, steps=3, time_budget=None, seed=0, device="cpu")
    before, config = _state(start.network), start.config.to_dict()
    training = start.network.training
    tuned = train(nuclei_2d.image, nuclei_2d.strokes, init=start, steps=3, time_budget=None, seed=1, device="cpu")
    assert tuned is not start and tuned.network is not start.network
    assert start.network.training == training and start.config.to_dict() == config
    _assert_same_state(before, start.network)
