"""Time to quality: foreground IoU and instance F1 after 1, 3, 10 and 30 s of training (separate runs with
that time budget, as a user would set it), beside scikit-image's random forest on the same strokes.

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

from baselines import random_forest_segmentation

from napari_unet.core.api import predict, train
from napari_unet.core.metrics import foreground_iou, instance_f1
from napari_unet.core.postprocess import instances_from_labels
from napari_unet.core.synthetic import synthetic_nuclei

SHAPES = {2: ((512, 512), (1.0, 1.0)), 3: ((48, 128, 128), (2.0, 1.0, 1.0))}


def scores(labels: np.ndarray, truth: np.ndarray, spacing) -> dict[str, float]:
    return {
        "iou": round(foreground_iou(labels == 2, truth > 0), 4),
        "f1": round(instance_f1(instances_from_labels(labels, spacing), truth), 4),
    }


def environment() -> dict:
    """Date, CPU, torch version and threads, for the head of a benchmark's JSON."""
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def run_case(dim: int, seed: int, budgets: list[float], device: str) -> dict:
    shape, spacing = SHAPES[dim]
    sample = synthetic_nuclei(shape, spacing=spacing, seed=seed)
    started = time.perf_counter()
    forest = random_forest_segmentation(sample.image, sample.strokes, seed=seed)
    forest_seconds = time.perf_counter() - started
    curve = []
    for budget in budgets:
        model = train(sample.image, sample.strokes, spacing=spacing, time_budget=budget, seed=seed, device=device)
        labels = predict(model, sample.image, device=device).labels
        steps = model.config.history[-1]["steps"]
        curve.append({"seconds": budget, "steps": steps, **scores(labels, sample.instances, spacing)})
    return {
        "dim": dim,
        "seed": seed,
        "random_forest": {"seconds": round(forest_seconds, 2), **scores(forest, sample.instances, spacing)},
        "napari_unet": curve,
    }


def plot(cases: list[dict], path: str) -> None:
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
        axis.set(xscale="log", xlabel="training time budget (s, 2 CPU cores)", title=f"{dim}D synthetic nuclei")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("foreground IoU")
    axes[0].legend(title="dashed: random forest", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[1, 3, 10, 30])
    parser.add_argument("--seeds", type=int, nargs="*", default=[10, 11])
    parser.add_argument("--seeds-3d", type=int, nargs="*", default=[10])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--plot", help="PNG of IoU against training time")
    args = parser.parse_args()
    cases = [run_case(2, seed, args.budgets, args.device) for seed in args.seeds]
    cases += [run_case(3, seed, args.budgets, args.device) for seed in args.seeds_3d]
    if args.plot:
        plot(cases, args.plot)
    report = {"benchmark": "time_to_quality", **environment(), "cases": cases}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
