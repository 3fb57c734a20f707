"""Quality from sparse strokes: napari-unet vs scikit-image's random forest, same strokes, same run.

Synthetic nuclei (2D and 3D) with about 0.2% of pixels painted; scores against dense truth:
foreground IoU and instance F1 at IoU 0.5 (connected components of each semantic mask, and the
seeded-watershed split of ``napari-unet predict --instances``).
Prints one JSON object. Example::

    python benchmarks/quality.py --time-budget 30 --seeds 10 11 12
"""

from __future__ import annotations

import argparse
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
from napari_unet.core.instances.metrics import connected_instances, foreground_iou, instance_f1
from napari_unet.core.instances.postprocess import certainty, instances_from_labels
from napari_unet.core.models.precision import CHOICES

CASES = {
    2: {"shape": (512, 512), "spacing": (1.0, 1.0)},
    3: {"shape": (48, 128, 128), "spacing": (2.0, 1.0, 1.0)},
}


def _scores(labels: np.ndarray, instances: np.ndarray, spacing, probabilities: np.ndarray | None = None) -> dict:
    """Foreground IoU; instance F1 of connected components ("f1") and of the watershed split
    napari-unet uses for instances ("f1_split", where the model is unsure when ``probabilities``
    ``(K, *spatial)`` are given), both at IoU 0.5."""
    foreground = labels == 2
    sure = None if probabilities is None else certainty(probabilities)
    return {
        "iou": round(foreground_iou(foreground, instances > 0), 4),
        "f1": round(instance_f1(connected_instances(foreground), instances), 4),
        "f1_split": round(instance_f1(instances_from_labels(labels, spacing, certainty=sure), instances), 4),
    }


def _probability_scores(probabilities: np.ndarray, sample, keep_specks: bool = False) -> dict[str, float]:
    """:func:`_scores` of class probabilities ``(K, *spatial)`` against a synthetic sample's truth (their mask
    as ``predict`` returns it, unless ``keep_specks``: the forest's as scikit-image gives it)."""
    labels = labels_from_probabilities(probabilities, keep_specks)
    return _scores(labels, sample.instances, sample.spacing, probabilities)


def run_case(dim: int, seed: int, time_budget: float, device: str, stroke_fraction: float, **settings) -> dict:
    case = CASES[dim]
    sample = synthetic_nuclei(case["shape"], spacing=case["spacing"], seed=seed, stroke_fraction=stroke_fraction)
    started = time.perf_counter()
    forest = random_forest_probabilities(sample.image, sample.strokes, seed=seed)
    forest_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model = train(
        sample.image,
        sample.strokes,
        spacing=sample.spacing,
        time_budget=time_budget,
        device=device,
        seed=seed,
        **settings,
    )
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    unet = predict(model, sample.image, probabilities=True, device=device).probabilities
    predict_seconds = time.perf_counter() - started
    return {
        "dim": dim,
        "seed": seed,
        "painted_fraction": round(float((sample.strokes > 0).mean()), 5),
        "random_forest": {**_probability_scores(forest, sample, keep_specks=True), "seconds": round(forest_seconds, 2)},
        "napari_unet": {
            **_probability_scores(unet, sample),
            "train_seconds": round(train_seconds, 2),
            "predict_seconds": round(predict_seconds, 2),
            "steps": model.config.history[-1]["steps"],
        },
        "truth_cc_f1": _scores(sample.semantic, sample.instances, sample.spacing)["f1"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-budget", type=float, default=30.0)
    parser.add_argument("--seeds", type=int, nargs="*", default=[10, 11, 12])
    parser.add_argument("--seeds-3d", type=int, nargs="*", default=[10])
    parser.add_argument("--stroke-fraction", type=float, default=0.002)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--region-weight", type=float, help="weight of the region term (default: the trainer's)")
    parser.add_argument("--precision", choices=CHOICES, help="the network's float type in training (default: auto)")
    args = parser.parse_args()
    settings = {} if args.region_weight is None else {"region_weight": args.region_weight}
    if args.precision is not None:
        settings["precision"] = args.precision
    case = {"time_budget": args.time_budget, "device": args.device, "stroke_fraction": args.stroke_fraction, **settings}
    results = [run_case(2, s, **case) for s in args.seeds]
    results += [run_case(3, s, **case) for s in args.seeds_3d]
    summary = {}
    for dim in (2, 3):
        rows = [r for r in results if r["dim"] == dim]
        if rows:
            summary[f"{dim}d"] = {
                f"{method}_{metric}": round(float(np.mean([r[method][metric] for r in rows])), 4)
                for method in ("napari_unet", "random_forest")
                for metric in ("iou", "f1", "f1_split")
            }
    report = {
        "benchmark": "quality",
        "time_budget_s": args.time_budget,
        "settings": settings,
        "device": str(args.device),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "summary": summary,
        "cases": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
