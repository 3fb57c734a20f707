"""Time to quality: foreground IoU and instance F1 after 1, 3, 10 and 30 s of training (separate runs with
that time budget, as a user would set it), beside scikit-image's random forest on the same strokes.

"First useful" is the wall time of training (set-up included) plus prediction of the first run whose IoU
comes within 0.05 of the forest's: the first mask a user would rather keep than the forest's.

Prints one JSON object; ``--plot PATH`` also draws IoU against training time (needs matplotlib)::

    python benchmarks/time_to_quality.py --plot docs/time_to_quality.png
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from baselines import random_forest_probabilities

from napari_unet.core.api import predict, train
from napari_unet.core.data.synthetic import synthetic_nuclei
from napari_unet.core.infer.inference import labels_from_probabilities
from napari_unet.core.instances.metrics import foreground_iou, instance_f1
from napari_unet.core.instances.postprocess import certainty, instances_from_labels
from napari_unet.core.models.devices import resolve_device
from napari_unet.core.models.precision import CHOICES

SHAPES = {2: ((512, 512), (1.0, 1.0)), 3: ((48, 128, 128), (2.0, 1.0, 1.0))}


def scores(probabilities: np.ndarray, truth: np.ndarray, spacing, keep_specks: bool = False) -> dict[str, float]:
    """Foreground IoU and ``--instances`` F1 of class probabilities ``(K, *spatial)`` against instance ``truth``
    (their mask as ``predict`` returns it, unless ``keep_specks``: the forest's as scikit-image gives it)."""
    labels = labels_from_probabilities(probabilities, keep_specks)
    return {
        "iou": round(foreground_iou(labels == 2, truth > 0), 4),
        "f1": round(instance_f1(instances_from_labels(labels, spacing, certainty=certainty(probabilities)), truth), 4),
    }


def environment() -> dict:
    """Date, CPU, torch version and threads, for the head of a benchmark's JSON."""
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


USEFUL_MARGIN = 0.05  # IoU below the forest's that still counts as a useful first mask


def run_case(dim: int, seed: int, budgets: list[float], device: str, precision: str = "auto") -> dict:
    shape, spacing = SHAPES[dim]
    sample = synthetic_nuclei(shape, spacing=spacing, seed=seed)
    started = time.perf_counter()
    forest = random_forest_probabilities(sample.image, sample.strokes, seed=seed)
    forest_seconds = time.perf_counter() - started
    forest_scores = scores(forest, sample.instances, spacing, keep_specks=True)
    curve = []
    for budget in budgets:
        started = time.perf_counter()
        model = train(
            sample.image,
            sample.strokes,
            spacing=spacing,
            time_budget=budget,
            seed=seed,
            device=device,
            precision=precision,
        )
        train_seconds = round(time.perf_counter() - started, 3)  # set-up and the last step's overshoot included
        started = time.perf_counter()
        prediction = predict(model, sample.image, probabilities=True, device=device, precision=precision)
        predict_seconds = round(time.perf_counter() - started, 3)
        run = model.config.history[-1]
        point = {"seconds": budget, "steps": run["steps"], "train_seconds": train_seconds}
        point["predict_seconds"] = predict_seconds
        point["precision"] = run["precision"]
        curve.append({**point, **scores(prediction.probabilities, sample.instances, spacing)})
    useful = [p for p in curve if p["iou"] >= forest_scores["iou"] - USEFUL_MARGIN]
    return {
        "dim": dim,
        "seed": seed,
        "random_forest": {"seconds": round(forest_seconds, 2), **forest_scores},
        "napari_unet": curve,
        "first_useful_seconds": round(useful[0]["train_seconds"] + useful[0]["predict_seconds"], 3) if useful else None,
    }


def plot(cases: list[dict], path: str, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for axis, dim in zip(axes, (2, 3)):
        for case in (c for c in cases if c["dim"] == dim):
            seconds = [point["seconds"] for point in case["napari_unet"]]
            line = axis.plot(
                seconds, [p["iou"] for p in case["napari_unet"]], "o-", label=f"U-Net, seed {case['seed']}"
            )
            axis.axhline(case["random_forest"]["iou"], color=line[0].get_color(), ls="--", lw=1)
        axis.set(xscale="log", xlabel=f"training time budget (s, {device})", title=f"{dim}D synthetic nuclei")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("foreground IoU")
    axes[0].legend(title="dashed: random forest", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def run(budgets: list[float], seeds: list[int], seeds_3d: list[int], device: str, precision: str) -> dict:
    """The whole time-to-quality benchmark as a JSON-ready dict."""
    cases = [run_case(2, seed, budgets, device, precision) for seed in seeds]
    cases += [run_case(3, seed, budgets, device, precision) for seed in seeds_3d]
    gpu = torch.cuda.get_device_name() if resolve_device(device).type == "cuda" else None
    return {"benchmark": "time_to_quality", **environment(), "gpu": gpu, "cases": cases}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budgets", type=float, nargs="+", default=[1, 3, 10, 30])
    parser.add_argument("--seeds", type=int, nargs="*", default=[10, 11])
    parser.add_argument("--seeds-3d", type=int, nargs="*", default=[10])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=CHOICES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--plot", help="PNG of IoU against training time")
    args = parser.parse_args()
    report = run(args.budgets, args.seeds, args.seeds_3d, args.device, args.precision)
    if args.plot:
        plot(report["cases"], args.plot, report["gpu"] or f"{report['threads']} CPU threads")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
