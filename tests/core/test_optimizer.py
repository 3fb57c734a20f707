"""The hand-written AdamW (napari_unet.core.train.optimizer) against torch.optim.AdamW, and the reason it
exists: training never imports torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import torch

from napari_unet.core.train.optimizer import AdamW


def _network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 1, 1))


def test_steps_match_torch_adamw_with_a_changing_learning_rate():
    ours, theirs = _network(), _network()
    optimizers = [
        AdamW(ours.parameters(), lr=3e-3, weight_decay=0.05),
        torch.optim.AdamW(theirs.parameters(), lr=3e-3, weight_decay=0.05),
    ]
    generator = torch.Generator().manual_seed(1)
    for step in range(8):
        images = torch.randn(3, 2, 9, 9, generator=generator)
        for network, optimizer in zip((ours, theirs), optimizers):
            for group in optimizer.param_groups:
                group["lr"] = 3e-3 * (1 - step / 8)
            optimizer.zero_grad(set_to_none=True)
            network(images).square().mean().backward()
            optimizer.step()
    for mine, reference in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-7)
    assert not torch.equal(next(ours.parameters()), next(_network().parameters()))  # it did train


def test_a_grad_scaler_steps_it_as_torch_adamw_and_skips_a_step_with_infinite_gradients():
    ours, theirs = _network(), _network()
    optimizers = [AdamW(ours.parameters(), lr=1e-2), torch.optim.AdamW(theirs.parameters(), lr=1e-2)]
    images = torch.randn(2, 2, 9, 9, generator=torch.Generator().manual_seed(2))
    for network, optimizer in zip((ours, theirs), optimizers):
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        scaler.scale(network(images).square().mean()).backward()
        scaler.step(optimizer)
    for mine, reference in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-7)
    before = [p.detach().clone() for p in ours.parameters()]
    optimizers[0].zero_grad()
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(ours(images).sum() * float("inf")).backward()
    scaler.step(optimizers[0])
    assert all(torch.equal(p, b) for p, b in zip(ours.parameters(), before))


def test_parameters_without_gradients_are_left_alone():
    network = _network()
    frozen = network[2].weight.detach().clone()
    optimizer = AdamW(network.parameters(), lr=0.1)
    network[0](torch.randn(1, 2, 5, 5)).sum().backward()
    optimizer.step()
    assert torch.equal(network[2].weight, frozen)
    assert network[2].weight not in optimizer.state


def test_training_and_prediction_never_import_torch_dynamo():
    code = (
        "import sys, numpy as np\n"
        "from napari_unet.core import api\n"
        "image = np.random.default_rng(0).random((64, 64), dtype=np.float32)\n"
        "labels = np.zeros((64, 64), np.uint8); labels[5, 5:40] = 1; labels[40, 5:40] = 2\n"
        "model = api.train(image, labels, init=None, steps=2, time_budget=None, base_channels=4, depth=2)\n"
        "api.predict(model, image)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
