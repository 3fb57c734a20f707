"""Speed: napari-unet's tiled prediction against MONAI's ``sliding_window_inference`` (same network
object, input and device; MONAI roi 256 in 2D, overlap 0.25, gaussian, ``--sw-batch-size`` 4), and
napari-unet's trainer against a plain PyTorch loop of the same network (overhead, FLOP rate, layouts).

Runs on CPU, or CUDA with ``--device cuda``; needs ``pip install monai``. ``--precision`` (default
auto: bf16 on CUDA and on CPUs with native bfloat16, else fp32) applies to every side alike; every
prediction result records the precision and whether the CPU computes bfloat16 natively. Prediction
runs take turns (``--repeats`` rounds, medians), so a shared machine slows every side alike. Model
FLOPs utilisation is the achieved FLOP rate over the device's dense peak for that precision (known
GPUs). Prints one JSON object::

    python benchmarks/speed.py --threads 2                                   # CPU
    python benchmarks/speed.py --precision fp32 --parts prediction --dims 2  # issue 21's case
    python benchmarks/speed.py --device cuda                                 # a GPU machine
"""

from __future__ import annotations

import argparse
import copy
import datetime
import functools
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_unet.core.models.precision import CHOICES, cpu_has_native_bfloat16

# Dense tensor-core peaks in TFLOP/s for bf16/fp16 (NVIDIA data sheets), by device-name fragments.
PEAK_TFLOPS_16BIT = (("H200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("A100", 312.0))

# Images, and MONAI's window (issue 21: 256 in 2D); our tiles are predict_normalized's defaults.
CASES = {
    "cpu": {2: {"image": (3072, 3072), "roi": 256}, 3: {"image": (64, 192, 192), "roi": 96}},
    "cuda": {2: {"image": (4096, 4096), "roi": 256}, 3: {"image": (128, 512, 512), "roi": 128}},
}


def _mean_rate(step, steps: int, device: torch.device) -> float:
    """Steps per second over ``steps`` consecutive steps after 5 warm-up steps: timed like the trainer."""
    for _ in range(5):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - started)


def peak_tflops(device: torch.device, dtype: torch.dtype) -> float | None:
    """The device's dense peak for ``dtype``, where known (16-bit floats on the GPUs listed)."""
    if device.type != "cuda" or dtype == torch.float32:
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for fragment, peak in PEAK_TFLOPS_16BIT if fragment in name), None)


def trained_model(dim: int, seconds: float, device: str, precision: str):
    """A model trained briefly on the bundled sample, so predictions are not constant, saved and loaded
    back as a user would (the trainer leaves its network channels-last; a loaded one is not)."""
    from napari_unet.core.api import train
    from napari_unet.core.models.model import Model
    from napari_unet.sample_data import nuclei_sample

    sample = nuclei_sample(dim)
    settings = {"time_budget": seconds, "seed": 0, "device": device, "precision": precision}
    trained = train(sample.image, sample.strokes, spacing=sample.spacing, **settings)
    with tempfile.TemporaryDirectory() as folder:
        return Model.load(trained.save(Path(folder) / "model"))


def _interleaved_medians(works: dict, repeats: int, device: torch.device) -> dict[str, dict]:
    """Median and all seconds of each of ``works`` over ``repeats`` rounds after one warm-up round,
    the works taking turns within each round (so a busy machine slows them alike)."""
    for work in works.values():
        work()
    times: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(repeats):
        for name, work in works.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            work()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - started)
    return {name: {"seconds": statistics.median(all_), "all": all_} for name, all_ in times.items()}


@torch.inference_mode()
def prediction_case(
    model, dim: int, case: dict, device: torch.device, precision: str, repeats: int, sw_batch_size: int
) -> dict:
    """``predict_normalized`` at its defaults against MONAI's sliding window (roi ``case["roi"]``, overlap
    0.25, gaussian, ``sw_batch_size``) given the network as the user has it (as loaded: default layout,
    eval mode) and a channels-last copy of it, on the same normalised input, timed interleaved."""
    from monai.inferers import sliding_window_inference

    from napari_unet.core.data.synthetic import synthetic_nuclei
    from napari_unet.core.infer.inference import predict_normalized
    from napari_unet.core.models.precision import autocast, precision_name, resolve_precision

    dtype = resolve_precision(precision, device)
    sample = synthetic_nuclei(case["image"], spacing=(2.0, 1.0, 1.0) if dim == 3 else None, seed=7)
    normalized = model.normalize(sample.image[None])
    as_loaded = model.network.eval()  # the caller's network as loaded, untouched by predict_normalized
    channels_last = copy.deepcopy(as_loaded).place(device)
    inputs = torch.from_numpy(normalized)[None].to(device)

    def monai(network):
        def predictor(tiles):  # the network in the same precision as ours, blending in float32
            with autocast(device, dtype):
                return network(tiles).float()

        roi = (case["roi"],) * dim
        return sliding_window_inference(inputs, roi, sw_batch_size, predictor, overlap=0.25, mode="gaussian")

    works = {
        "ours": functools.partial(predict_normalized, model, normalized, device=device, precision=precision),
        "monai_default_layout": functools.partial(monai, as_loaded),
        "monai_channels_last": functools.partial(monai, channels_last),
    }
    timings = _interleaved_medians(works, repeats, device)
    ours = predict_normalized(model, normalized, device=device, precision=precision)
    monai_labels = monai(as_loaded)[0].argmax(0).cpu().numpy()
    ours_seconds = timings["ours"]["seconds"]
    return {
        "dim": dim,
        "image": list(case["image"]),
        "precision": precision_name(dtype),
        "cpu_native_bf16": cpu_has_native_bfloat16(),
        "monai": {"roi": case["roi"], "overlap": 0.25, "mode": "gaussian", "sw_batch_size": sw_batch_size},
        "timings": timings,
        "ours_mvoxel_per_s": float(np.prod(case["image"])) / ours_seconds / 1e6,
        "speedup_vs_monai_default_layout": timings["monai_default_layout"]["seconds"] / ours_seconds,
        "speedup_vs_monai_channels_last": timings["monai_channels_last"]["seconds"] / ours_seconds,
        "label_agreement": float((monai_labels == ours.argmax(0)).mean()),
    }


def training_case(dim: int, device: torch.device, precision: str, steps: int) -> dict:
    """Steps/s of ``train_steps`` (sampling, augmentation, sparse loss) and of plain loops (random
    batches of the same shape, Adam, the same precision) on the same network: with cross-entropy, and
    with our loss (so the difference is the trainer's own work: sampling, augmentation, bookkeeping)."""
    from torch.utils.flop_counter import FlopCounterMode

    from napari_unet.core.api import prepare_model
    from napari_unet.core.models.config import TrainConfig
    from napari_unet.core.models.precision import autocast, resolve_precision
    from napari_unet.core.train.losses import sparse_loss
    from napari_unet.core.train.patch_plan import default_batch_size, default_patch_size
    from napari_unet.core.train.training import train_steps
    from napari_unet.sample_data import nuclei_sample

    sample = nuclei_sample(dim)
    torch.manual_seed(0)
    model, annotations = prepare_model(sample.image[None], sample.strokes, dim=dim, spacing=sample.spacing)
    network = copy.deepcopy(model.network)
    config = TrainConfig(steps=steps + 5, seed=0, device=str(device), precision=precision)
    dtype = resolve_precision(precision, device)
    loop = train_steps(model, sample.image[None], annotations, config)
    stamps = []
    for _report in loop:
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
    ours = (len(stamps) - 6) / (stamps[-1] - stamps[5])  # after 5 warm-up steps

    batch = default_batch_size(model)
    patch = default_patch_size(model, sample.image.shape)
    inputs = torch.randn(batch, 1, *patch, device=device)
    targets = torch.randint(0, 2, (batch, *patch), device=device)

    strokes = torch.randint(0, 3, (batch, *patch), device=device, dtype=torch.uint8)  # 0 = unpainted

    def cross_entropy(logits):
        return torch.nn.functional.cross_entropy(logits, targets)

    def our_loss(logits):
        settings = (config.smoothness_weight, config.smoothness_sigma, model.config.history[-1]["region_weight"])
        return sparse_loss(logits, strokes, inputs, *settings)

    def plain_rate(layout_network, loss_function=cross_entropy) -> float:
        optimizer = torch.optim.Adam(layout_network.parameters(), lr=1e-3)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                logits = layout_network(inputs)
            scaler.scale(loss_function(logits.float())).backward()
            scaler.step(optimizer)
            scaler.update()

        return _mean_rate(step, steps, device)

    placed = copy.deepcopy(network).place(device).train()
    contiguous = copy.deepcopy(network).to(device).train()
    plain = plain_rate(placed)
    plain_same_loss = plain_rate(placed, our_loss)
    plain_contiguous = plain_rate(contiguous)
    with FlopCounterMode(display=False) as counter, autocast(device, dtype):
        torch.nn.functional.cross_entropy(placed(inputs).float(), targets).backward()
    flops = counter.get_total_flops()
    voxels = batch * float(np.prod(patch))
    peak = peak_tflops(device, dtype)
    return {
        "dim": dim,
        "batch": batch,
        "patch": list(patch),
        "ours_steps_per_s": ours,
        "plain_loop_steps_per_s": plain,
        "overhead_vs_plain_loop": plain / ours - 1,
        "plain_loop_same_loss_steps_per_s": plain_same_loss,
        "overhead_vs_plain_loop_same_loss": plain_same_loss / ours - 1,
        "plain_loop_default_layout_steps_per_s": plain_contiguous,
        "channels_last_speedup": plain / plain_contiguous,
        "ours_mvoxel_per_s": voxels * ours / 1e6,
        "gflop_per_step": flops / 1e9,
        "achieved_gflop_per_s_ours": flops * ours / 1e9,
        "achieved_gflop_per_s_plain": flops * plain / 1e9,
        "peak_tflop_per_s": peak,
        "mfu_ours": flops * ours / (peak * 1e12) if peak else None,
        "mfu_plain": flops * plain / (peak * 1e12) if peak else None,
    }


def run(
    device: str,
    precision: str,
    repeats: int,
    train_steps: int,
    dims: list[int],
    sw_batch_size: int = 4,
    parts: tuple[str, ...] = ("prediction", "training"),
) -> dict:
    """The whole speed benchmark as a JSON-ready dict."""
    from napari_unet.core.models.precision import precision_name, resolve_precision

    torch_device = torch.device(device)
    prediction, training = [], []
    for dim in dims:
        if "prediction" in parts:
            model = trained_model(dim, 10.0, device, precision)
            case = CASES[torch_device.type][dim]
            prediction.append(prediction_case(model, dim, case, torch_device, precision, repeats, sw_batch_size))
        if "training" in parts:
            training.append(training_case(dim, torch_device, precision, train_steps))
    return {
        "benchmark": "speed",
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name() if torch_device.type == "cuda" else platform.processor() or "cpu",
        "cpu_native_bf16": cpu_has_native_bfloat16(),
        "precision": precision_name(resolve_precision(precision, torch_device)),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "prediction": prediction,
        "training": training,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=CHOICES)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed rounds (medians reported)")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--sw-batch-size", type=int, default=4, help="MONAI's windows per pass")
    parser.add_argument("--parts", nargs="+", default=["prediction", "training"], choices=["prediction", "training"])
    parser.add_argument("--threads", type=int, help="torch threads for every side (default: torch's)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run(
        args.device, args.precision, args.repeats, args.train_steps, args.dims, args.sw_batch_size, tuple(args.parts)
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
